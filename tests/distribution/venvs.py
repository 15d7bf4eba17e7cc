"""Fresh virtualenvs for the packaging tests (``from venvs import fresh_venv``).

They install from the distributions built by the ``dists`` fixture (conftest.py) and from
PyPI: these tests need the network, which CI has.
"""

from __future__ import annotations

import os
import subprocess
import venv
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Dists:
    """The built sdist and wheel."""

    sdist: Path
    wheel: Path


def fresh_venv(where: Path, *requirements: str) -> Path:
    """A new virtualenv (this interpreter's version) with ``requirements`` installed: its bin."""
    venv.EnvBuilder(with_pip=True).create(where)
    bin_dir = where / "bin"
    if requirements:
        pip(bin_dir, "install", *requirements)
    return bin_dir


def pip(bin_dir: Path, *args: str) -> str:
    proc = subprocess.run(
        [str(bin_dir / "python"), "-m", "pip", "--quiet", *args],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    assert proc.returncode == 0, f"pip {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def venv_env(bin_dir: Path, **extra: str) -> dict[str, str]:
    """A shell environment whose ``python``/``ironpush``/``celery`` are the virtualenv's."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("IRON", "VIRTUAL_ENV")) and k != "PYTHONPATH"
    }
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(bin_dir.parent)
    return env | extra
