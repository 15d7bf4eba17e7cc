"""Every module imports alone, library code never imports the CLI, and no import circle exists.

An import circle can hide behind import order: ``import ironpush`` first loads the modules in
an order that works, while ``import ironpush.receiver._registration`` alone fails. So each
module is imported in its own fresh interpreter (in parallel, so the whole walk takes
seconds), and the import graph is read from the source (every ``import`` counts: module level,
inside functions, and under ``TYPE_CHECKING``) and must have no strongly connected component.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "ironpush"
#: The entry points that exist to run the CLI (``python -m ironpush``, ``python -m
#: ironpush.devserver``) may import it; the library itself never does.
CLI_ENTRY_POINTS = {"ironpush.__main__", "ironpush.devserver.__main__"}


def modules_of(package: Path) -> dict[str, Path]:
    """Dotted name → file, for every module of ``package`` (packages by their __init__)."""
    found = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = modules_of(PACKAGE)


# --------------------------------------------------------------------------- the import graph


def imported_names(module: str, path: Path) -> Iterator[str]:
    """Every dotted name ``module`` imports, wherever the import statement stands."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            # ``from pkg import sub`` imports the module pkg.sub; ``from pkg import name``, pkg
            # (import_graph takes the nearest enclosing module of each name).
            yield from (f"{target}.{alias.name}" for alias in node.names)


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """module → the modules of the same package it imports (the nearest enclosing module)."""
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        edges = set()
        for name in imported_names(module, path):
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name and name != module:
                edges.add(name)
        graph[module] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def describe(component: list[str], graph: dict[str, set[str]]) -> str:
    members = set(component)
    lines = [f"{len(component)} modules:"]
    for module in component:
        inside = sorted(graph[module] & members)
        lines.append(f"  {MODULES[module].relative_to(ROOT)} -> {', '.join(inside)}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- the checks


@pytest.fixture(scope="module")
def imported_alone() -> dict[str, subprocess.CompletedProcess[str]]:
    """``python -c "import M"`` for every module M, each in a fresh interpreter, in parallel."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IRON", "PYTHONSTARTUP"))}

    def run(module: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", f"import {module}"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        return dict(zip(MODULES, pool.map(run, MODULES), strict=True))


def test_the_walk_finds_every_part_of_the_package() -> None:
    assert len(MODULES) > 80
    for part in ("ironpush", "ironpush.receiver._registration", "ironpush.cli._serve_http"):
        assert part in MODULES


@pytest.mark.parametrize("module", sorted(MODULES))
def test_every_module_imports_alone_in_a_fresh_interpreter(
    module: str, imported_alone: dict[str, subprocess.CompletedProcess[str]]
) -> None:
    result = imported_alone[module]
    last = result.stderr.strip().splitlines()[-1:] or ["(no output)"]
    assert result.returncode == 0, f"import {module} failed: {last[0]}"


def test_library_code_never_imports_the_cli() -> None:
    graph = import_graph(MODULES)
    offenders = {
        module: sorted(e for e in edges if e == "ironpush.cli" or e.startswith("ironpush.cli."))
        for module, edges in graph.items()
        if not module.startswith("ironpush.cli") and module not in CLI_ENTRY_POINTS
    }
    assert not {m: e for m, e in offenders.items() if e}


def test_no_import_cycle_in_the_package() -> None:
    graph = import_graph(MODULES)
    found = cycles(graph)
    assert not found, "import cycles:\n" + "\n".join(describe(c, graph) for c in found)


def test_the_cycle_check_sees_a_type_only_circle(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from . import b\n")
    (pkg / "a.py").write_text("from .sub.b import thing\n")
    (pkg / "sub" / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..a import other\n"
    )
    (pkg / "c.py").write_text("def f():\n    import pkg.a\n")
    graph = import_graph(modules_of(pkg))
    assert graph["pkg.a"] == {"pkg.sub.b"}
    assert graph["pkg.sub"] == {"pkg.sub.b"}
    assert graph["pkg.c"] == {"pkg.a"}
    assert cycles(graph) == [["pkg.a", "pkg.sub.b"]]
    (pkg / "sub" / "b.py").write_text("thing = 1\n")
    assert cycles(import_graph(modules_of(pkg))) == []
