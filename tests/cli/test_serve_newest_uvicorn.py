"""The serve limits hold with the newest uvicorn release, not only with the one pinned here.

``ironpush serve`` builds on uvicorn's private httptools protocol (guarded: a uvicorn that no
longer fits falls back with a warning, see ``test_serve_protocol.py``). This test installs the
newest uvicorn and ironpush's other runtime dependencies, as a new user would get them, into a
fresh virtualenv, and runs the serve-limit and hook tests there: a uvicorn release that breaks
the hook fails CI here instead of silently dropping the limits for users.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
TESTS = ["tests/cli/test_serve_limits.py", "tests/cli/test_serve_protocol.py"]


@pytest.mark.slow
def test_serve_limits_hold_with_the_newest_uvicorn(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = str(venv / "bin" / "python")
    runtime = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pip = [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--upgrade"]
    subprocess.run([*pip, *runtime, "pytest"], check=True, timeout=900)
    installed = subprocess.run(
        [python, "-c", "import importlib.metadata as m; print(m.version('uvicorn'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    print(f"newest uvicorn: {installed}")  # shown with -s / in the report of a failure
    done = subprocess.run(
        [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", *TESTS],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, f"uvicorn {installed}:\n{done.stdout[-4000:]}{done.stderr[-2000:]}"
    assert " passed" in done.stdout, done.stdout[-2000:]
    assert "skipped" not in done.stdout, done.stdout[-2000:]
