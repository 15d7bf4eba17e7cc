"""The README's "Public names" table covers every public name, each with a path that works.

``tests/test_public_api.py`` pins which modules are public and what each one's ``__all__``
holds; this checks the other direction: every name a public module exports is in the table
once, under a module it can be imported from, and the table names nothing that is not there.
A name exported by two modules (the stores: ``ironpush`` and ``ironpush.receiver.stores``) is
listed once, under the one path the README uses.
"""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

import ironpush

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def table_rows() -> list[tuple[list[str], str]]:
    """``(names, module)`` for each row of the table whose module cell is one module."""
    section = README.split("\n## Public names\n", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and re.fullmatch(r"`ironpush[\w.]*`", cells[1]):
            rows.append((re.findall(r"`(\w+)`", cells[0]), cells[1].strip("`")))
    return rows


def public_modules() -> dict[str, list[str]]:
    """Every module of the package with no private part, and its ``__all__`` (read from the
    source: importing would need every extra)."""
    found = {"ironpush": list(ironpush.__all__) + list(ironpush.LAZY_NAMES)}
    for path in sorted((ROOT / "ironpush").rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        module = ".".join(parts)
        if module == "ironpush" or any(p.startswith("_") for p in parts):
            continue
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
            ):
                found[module] = list(ast.literal_eval(node.value))
    return found


def exported() -> dict[str, set[str]]:
    """``name -> the public modules that export it`` (dunders such as ``__version__`` aside)."""
    where: dict[str, set[str]] = {}
    for module, names in public_modules().items():
        for name in names:
            if not name.startswith("__"):
                where.setdefault(name, set()).add(module)
    return where


def test_the_table_is_found_and_read() -> None:
    rows = table_rows()
    assert len(rows) >= 10, "the table was not found: the scan is broken"
    assert ("PushRouter", "ironpush") in [(n, m) for names, m in rows for n in names]


def test_public_modules_are_found() -> None:
    modules = public_modules()
    assert {"ironpush", "ironpush.testing", "ironpush.devserver", "ironpush.celery"} <= set(modules)


def test_every_public_name_is_in_the_table_once() -> None:
    listed = [name for names, _ in table_rows() for name in names]
    twice = sorted({n for n in listed if listed.count(n) > 1})
    assert not twice, f"listed more than once: {twice}"
    missing = sorted(set(exported()) - set(listed))
    assert not missing, f"public names missing from the README's table: {missing}"


def test_every_table_name_is_exported_by_the_module_it_names() -> None:
    where = exported()
    wrong = [
        (name, module)
        for names, module in table_rows()
        for name in names
        if module not in where.get(name, set())
    ]
    assert not wrong, f"the table names a module that does not export these: {wrong}"


@pytest.mark.parametrize(
    ("module", "name"),
    [(m, n) for names, m in table_rows() for n in names],
)
def test_every_table_name_imports_from_its_module(module: str, name: str) -> None:
    # The suite runs with every extra (`pip install -e ".[all]" --group dev`): a name whose
    # extra is missing fails here with the import error, it is not skipped.
    assert getattr(importlib.import_module(module), name) is not None
