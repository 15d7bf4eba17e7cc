"""The distributions the tests of this folder check, built once per session.

``python -m build`` builds the sdist, then the wheel from the sdist (as installing from the
sdist would), into a session directory.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from venvs import ROOT, Dists


@pytest.fixture(scope="session")
def dists(tmp_path_factory: pytest.TempPathFactory) -> Dists:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    [sdist] = out.glob("ironpush-*.tar.gz")
    [wheel] = out.glob("ironpush-*-py3-none-any.whl")
    return Dists(sdist, wheel)
