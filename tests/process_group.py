"""A server process started in a session of its own (``start_new_session=True``, so that
``killpg`` reaches its workers) with its stdout and stderr in files: what the serve tests
(``tests/cli/serve_process.py``) and the log tests (``tests/observability/log_kit.py``) share.

::

    proc = subprocess.Popen(argv, stdout=out.open("wb"), stderr=err.open("wb"),
                            start_new_session=True)
    try:
        ...
    finally:
        stop_group(proc)
    assert "Traceback" not in output(out, err)
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path


def output(out: Path, err: Path) -> str:
    """What the process wrote so far: stdout, then stderr (undecodable bytes replaced)."""
    return out.read_text(errors="replace") + err.read_text(errors="replace")


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the process group, then SIGKILL if it is still there after 30 s."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
