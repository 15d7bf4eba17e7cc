"""The public surface: what ``ironpush`` exports, and one documented import path per name.

Everything a user configures or catches (clients, the router and its outcomes, stores, the
outbox and retry settings, results, errors) is imported from ``ironpush``; the README's
"Public names" table says so for each name, and no README block or example imports one of
them from anywhere else.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

import ironpush
from ironpush import _errors as errors

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()

EXPECTED_ALL = [
    "APIError",
    "Ack",
    "Alert",
    "AsyncIronMQ",
    "AsyncQueue",
    "BadRequest",
    "ConfigError",
    "Defer",
    "Drop",
    "ErrorReport",
    "IronMQ",
    "IronPushError",
    "MemoryStore",
    "Message",
    "NotFound",
    "OutboxSettings",
    "PushConfig",
    "PushMessage",
    "PushRouter",
    "PushStatus",
    "Queue",
    "QueueInfo",
    "ReservationExpired",
    "Retry",
    "RetryPolicy",
    "SQLiteStore",
    "ServiceUnavailable",
    "SignatureError",
    "Store",
    "StoreUnavailable",
    "Subscriber",
    "TransportError",
    "Unauthorized",
    "ValidationError",
    "__version__",
    "generate_key",
]
LAZY = ["PostgresStore", "RedisStore"]
OTHER_MODULES = {
    "ironpush.devserver": ["DevServer"],
    "ironpush.testing": [
        "PushSimulator",
        "SyncPushSimulator",
        "build_push",
        "PushResult",
        "RecordedAck",
        "RecordedPost",
    ],
}
PUBLIC = [n for n in EXPECTED_ALL if n != "__version__"] + LAZY


def test_all_is_pinned_and_sorted() -> None:
    assert ironpush.__all__ == EXPECTED_ALL
    assert sorted(EXPECTED_ALL) == EXPECTED_ALL
    assert sorted(ironpush.LAZY_NAMES) == LAZY


@pytest.mark.parametrize("name", PUBLIC)
def test_every_public_name_imports_from_ironpush(name: str) -> None:
    assert getattr(ironpush, name) is not None
    assert name in dir(ironpush)


def test_every_error_class_is_in_the_one_tree_and_exported() -> None:
    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, ironpush.IronPushError)
        assert getattr(ironpush, name) is cls


def test_star_import_and_import_ironpush_load_no_extra() -> None:
    code = (
        "import sys\n"
        "from ironpush import *\n"
        "assert 'redis' not in sys.modules and 'psycopg' not in sys.modules, 'an extra loaded'\n"
        "assert 'ironpush.devserver' not in sys.modules\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_importing_the_cli_loads_neither_the_dev_server_nor_uvicorn() -> None:
    # Every command pays for what `import ironpush.cli` loads: the dev server and uvicorn are
    # imported inside the commands that run them.
    code = (
        "import sys\n"
        "import ironpush.cli\n"
        "heavy = ('uvicorn', 'ironpush.devserver')\n"
        "loaded = [m for m in sys.modules if m.startswith(heavy)]\n"
        "assert not loaded, loaded\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def public_names_table() -> dict[str, str]:
    """``name -> module`` from the README's "Public names" table; each name listed once."""
    section = README.split("## Public names", 1)[1].split("\n## ", 1)[0]
    table: dict[str, str] = {}
    for row in section.splitlines():
        cells = [c.strip() for c in row.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[1].startswith("`ironpush"):
            continue
        module = cells[1].strip("`")
        for name in re.findall(r"`(\w+)`", cells[0]):
            assert name not in table, f"{name} is listed twice"
            table[name] = module
    return table


def test_the_readme_names_one_module_for_every_public_name() -> None:
    table = public_names_table()
    assert {n for n, m in table.items() if m == "ironpush"} == set(PUBLIC)
    for module, names in OTHER_MODULES.items():
        assert {n for n, m in table.items() if m == module} == set(names)
        imported = __import__(module, fromlist=names)
        assert all(hasattr(imported, n) for n in names)


def documented_imports() -> list[tuple[str, str, str]]:
    """``(where, module, name)`` for each ``from ironpush.X import name`` in README blocks
    and examples."""
    sources = [("README.md", block) for block in re.findall(r"```python\n(.*?)```", README, re.S)]
    sources += [
        (str(p.relative_to(ROOT)), p.read_text()) for p in (ROOT / "examples").rglob("*.py")
    ]
    found = []
    for where, code in sources:
        for node in ast.walk(ast.parse(code)):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ironpush"):
                found += [(where, node.module or "", alias.name) for alias in node.names]
    return found


def test_documents_import_each_public_name_from_its_one_module() -> None:
    table = public_names_table()
    imports = documented_imports()
    assert imports, "no imports found: the scan is broken"
    wrong = [(w, m, n) for w, m, n in imports if n in table and table[n] != m]
    assert not wrong, f"imported from a second path: {wrong}"
