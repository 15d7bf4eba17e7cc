"""The sdist is a complete, testable source release, and both distributions render on PyPI.

- every module the tests import from this tree (``benchmarks.loadkit``, ``examples``...) and
  every document the README links to is in the sdist;
- ``twine check --strict`` passes on the sdist and the wheel (the README renders as the
  long description);
- unpacked into a temporary directory and installed (with every extra and the ``test``
  dependency group) into a fresh virtualenv, the sdist collects its whole suite without an
  error and passes its fast form. ``IRONPUSH_SDIST_PYTEST`` replaces the fast form's pytest
  arguments, e.g. ``IRONPUSH_SDIST_PYTEST='-m "not slow"'`` for the whole fast suite.
"""

from __future__ import annotations

import ast
import os
import re
import shlex
import subprocess
import sys
import tarfile
import tomllib
from pathlib import Path

import pytest
from venvs import ROOT, Dists, fresh_venv, pip, venv_env

#: The fast form run from the sdist: tests that read the tree (the documents, examples and
#: Dockerfiles). Collecting the whole suite first proves every test module imports (e.g.
#: tests/faults/test_load.py, which imports benchmarks.loadkit).
FAST_FORM = [
    "-m",
    "not slow",
    "tests/test_public_api.py",
    "tests/test_dockerfile.py",
    "tests/test_examples.py",
]


def members(sdist: Path) -> set[str]:
    with tarfile.open(sdist) as archive:
        return {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}


def tree_imports() -> set[str]:
    """Modules of this tree (outside ``tests/``) that the tests import."""
    top = {p.name for p in ROOT.iterdir() if p.is_dir() and p.name != "tests"}
    found = set()
    for path in (ROOT / "tests").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            found |= {name for name in names if name.split(".")[0] in top}
    return found


def test_the_sdist_carries_the_modules_its_tests_import(dists: Dists) -> None:
    inside = members(dists.sdist)
    imported = tree_imports()
    assert "benchmarks.loadkit.app" in imported  # what tests/faults/test_load.py needs
    missing = [
        name
        for name in sorted(imported)
        if (p := name.replace(".", "/")) + ".py" not in inside and f"{p}/__init__.py" not in inside
    ]
    assert not missing, missing


def test_the_sdist_carries_the_documents_and_no_development_clutter(dists: Dists) -> None:
    inside = members(dists.sdist)
    for document in ("README.md", "RELIABILITY.md", "CHANGELOG.md", "LICENSE", "pyproject.toml"):
        assert document in inside
    assert {"Dockerfile", "examples/docker/Dockerfile", "benchmarks/README.md"} <= inside
    assert "docs/inspector.png" in inside  # the README's image (its link is absolute on PyPI)
    clutter = [n for n in inside if n.startswith((".venv", ".git/", ".ci", "dist/"))]
    assert not clutter, clutter
    assert not [n for n in inside if "__pycache__" in n or n.endswith(".pyc")]


def test_twine_check_passes_on_the_sdist_and_the_wheel(dists: Dists) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", str(dists.sdist), str(dists.wheel)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("PASSED") == 2, proc.stdout


def group_requirements(pyproject: Path, group: str) -> list[str]:
    """A PEP 735 dependency group, its ``include-group`` entries resolved."""
    groups = tomllib.loads(pyproject.read_text())["dependency-groups"]
    out: list[str] = []
    for item in groups[group]:
        out += (
            group_requirements(pyproject, item["include-group"])
            if isinstance(item, dict)
            else [item]
        )
    return out


@pytest.mark.slow
def test_the_unpacked_sdist_installs_collects_its_suite_and_passes_its_fast_form(
    dists: Dists, tmp_path: Path
) -> None:
    with tarfile.open(dists.sdist) as archive:
        archive.extractall(tmp_path, filter="data")
    [tree] = tmp_path.glob("ironpush-*")
    bin_dir = fresh_venv(tmp_path / "venv")
    pip(
        bin_dir,
        "install",
        f"ironpush[all] @ {dists.sdist.as_uri()}",
        *group_requirements(tree / "pyproject.toml", "test"),
    )
    env = venv_env(bin_dir) | {
        k: v for k, v in os.environ.items() if k.startswith("IRONPUSH_TEST_")
    }

    def pytest_in_tree(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(bin_dir / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
            cwd=tree,
            env=env,
            capture_output=True,
            text=True,
            timeout=3600,
            check=False,
        )

    collected = pytest_in_tree("--collect-only")
    assert collected.returncode == 0, collected.stdout[-5000:] + collected.stderr[-3000:]
    assert re.search(r"^\d+ tests collected", collected.stdout, flags=re.M), collected.stdout[-500:]

    chosen = os.environ.get("IRONPUSH_SDIST_PYTEST")
    ran = pytest_in_tree(*(shlex.split(chosen) if chosen else FAST_FORM))
    assert ran.returncode == 0, ran.stdout[-8000:] + ran.stderr[-3000:]
    assert " passed" in ran.stdout.splitlines()[-1], ran.stdout[-500:]
