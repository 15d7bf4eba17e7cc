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
    "AckTokens",
    "Alert",
    "AsyncIronMQ",
    "AsyncQueue",
    "BadRequest",
    "ConfigError",
    "Defer",
    "Drop",
    "ErrorReport",
    "Health",
    "InvalidPayload",
    "IronMQ",
    "IronPushError",
    "Leases",
    "Limits",
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
    "Shutdown",
    "SignatureError",
    "Store",
    "StoreUnavailable",
    "SubscribeReport",
    "Subscriber",
    "TransportError",
    "Unauthorized",
    "ValidationError",
    "__version__",
    "generate_key",
    "subscribe_app",
    "subscribe_app_async",
]
LAZY = ["PostgresStore", "RedisStore"]
OTHER_MODULES = {
    "ironpush.devserver": ["DevServer", "DevConfig", "create_app", "PushSettings", "Retention"],
    "ironpush.testing": [
        "PushSimulator",
        "SyncPushSimulator",
        "build_push",
        "PushResult",
        "RecordedAck",
        "RecordedPost",
        "ironmq_devserver",
        "ironmq_devserver_session",
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
    defined = [
        obj
        for obj in vars(errors).values()
        if isinstance(obj, type) and issubclass(obj, BaseException)
    ]
    assert len(defined) >= 12, "the error module was not read"
    for cls in defined:
        assert issubclass(cls, ironpush.IronPushError)
        assert getattr(ironpush, cls.__name__) is cls


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


# Every module users may import, and what it exports. Anything else is private: a leading
# underscore on the module or on a package above it. A new public module, or a new name in one
# of these, is a decision: it fails here until it is added on purpose.
PUBLIC_MODULES: dict[str, list[str] | None] = {
    "ironpush": EXPECTED_ALL,
    "ironpush.__main__": None,
    "ironpush.celery": ["ACK_TOKEN_HEADER", "acknowledge_pushes", "enqueue", "push_token"],
    "ironpush.cli": ["main"],
    "ironpush.client": None,
    "ironpush.devserver": ["DevConfig", "DevServer", "PushSettings", "Retention", "create_app"],
    "ironpush.devserver.__main__": None,
    # INSTALLED_APPS = [..., "ironpush.django"]; Django finds its parts by these names.
    "ironpush.django": ["managed_connections"],
    "ironpush.django.apps": None,
    "ironpush.django.management": None,
    "ironpush.django.management.commands": None,
    "ironpush.django.management.commands.ironpush_subscribe": None,
    "ironpush.integrations": None,
    "ironpush.integrations.acks": [
        "DEFAULT_DEDUPE_TTL",
        "AckResult",
        "PushAcks",
        "acknowledge",
        "message_key",
        "newest_delivery",
        "newest_delivery_sync",
        "release",
        "settle",
    ],
    "ironpush.receiver": None,
    "ironpush.receiver.mount": ["PushMount"],
    "ironpush.receiver.stores": [
        "STORE_ENV",
        "Claim",
        "MemoryStore",
        "NullStore",
        "OutboxItem",
        "Owner",
        "PostgresStore",
        "RedisStore",
        "SQLiteStore",
        "Store",
        "StoreProblem",
        "open_store",
        "store_from_env",
        "this_owner",
    ],
    "ironpush.server_thread": ["ServerThread"],
    "ironpush.testing": [
        "PushResult",
        "PushSimulator",
        "RecordedAck",
        "RecordedPost",
        "SyncPushSimulator",
        "build_push",
        "ironmq_devserver",
        "ironmq_devserver_session",
    ],
}


def package_modules() -> list[str]:
    found = []
    for path in (ROOT / "ironpush").rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found.append(".".join(parts))
    return sorted(found)


def is_private(module: str) -> bool:
    return any(part.startswith("_") and part != "__main__" for part in module.split("."))


def declares_all(module: str) -> bool:
    path = ROOT / module.replace(".", "/")
    source = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    for node in ast.parse(source.read_text()).body:
        targets = node.targets if isinstance(node, ast.Assign) else []
        if isinstance(node, ast.AnnAssign):
            targets = [node.target]
        if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
            return True
    return False


def test_every_module_is_either_private_or_a_pinned_public_one() -> None:
    public = [m for m in package_modules() if not is_private(m)]
    assert sorted(public) == sorted(PUBLIC_MODULES), "a module became public (or stopped being)"


@pytest.mark.parametrize("module", sorted(m for m, names in PUBLIC_MODULES.items() if names))
def test_public_modules_export_exactly_their_pinned_names(module: str) -> None:
    imported = __import__(module, fromlist=["__all__"])
    assert sorted(imported.__all__) == sorted(PUBLIC_MODULES[module] or [])


def test_only_modules_users_import_declare_all() -> None:
    declaring = [m for m in package_modules() if declares_all(m)]
    assert not [m for m in declaring if is_private(m)], "a private module declares __all__"
    assert len(declaring) <= 20


def test_facade_names_say_where_users_import_them() -> None:
    for name in PUBLIC:
        obj = getattr(ironpush, name)
        assert obj.__module__ == "ironpush", name
