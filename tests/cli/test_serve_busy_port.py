"""``ironpush serve`` on a port another process holds: one line naming the port and the fix,
exit 1, as ``ironpush dev`` says it (the same function words both), with one process, with
``--workers 2`` and with ``--reload``; nothing of uvicorn's start-up is printed.

Before, uvicorn printed its start-up lines, then ``[Errno 98] error while attempting to bind
... address already in use``, ran the app's shutdown and exited 3.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from serve_process import HERE, ROOT, run_serve


def _busy_line(port: int) -> str:
    return (
        f"error: port {port} on 127.0.0.1 is already in use (another server?) — pass another "
        "--port, or --port 0 for a free one"
    )


def _serve(port: int, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ironpush", "serve", "serve_app:app", "--port", str(port), *args],
        cwd=HERE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def held_port() -> Iterator[int]:
    """A port some other process listens on (here: a plain listening socket)."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


@pytest.mark.parametrize(
    "args",
    [[], ["--workers", "2", "--allow-unshared-store"], ["--reload"]],
    ids=["one-process", "workers", "reload"],
)
def test_serve_on_a_held_port_says_so_in_one_line_and_exits_1(
    held_port: int, args: list[str]
) -> None:
    proc = _serve(held_port, *args)

    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.splitlines() == [_busy_line(held_port)]
    assert proc.stdout == ""


def test_a_second_serve_on_the_port_of_a_running_one_says_so(tmp_path: Path) -> None:
    first = run_serve(tmp_path, "--log-level", "warning")
    try:
        proc = _serve(first.port)
        assert proc.returncode == 1, proc.stderr
        assert proc.stderr.splitlines() == [_busy_line(first.port)]
        assert first.healthy()  # the first one is untouched
    finally:
        first.stop()


def test_serve_and_dev_word_a_held_port_alike(held_port: int, tmp_path: Path) -> None:
    dev = subprocess.run(
        [sys.executable, "-m", "ironpush", "dev", "--port", str(held_port)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    serve = _serve(held_port)

    assert dev.returncode == serve.returncode == 1
    # The same sentence and fix; only who probably holds the port differs.
    assert dev.stderr.replace("another `ironpush dev`", "another server") == serve.stderr
