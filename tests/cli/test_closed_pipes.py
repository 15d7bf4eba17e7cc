"""``ironpush … | head``: when stdout's reader goes away the CLI ends quietly (status 141).

Real subprocesses writing into real pipes whose reading end is closed: before the command
starts (so the first write fails, whatever the timing), or by ``head -1`` after one line while
``ironpush tail`` waits for an event that never comes.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from observe_cli import TOKEN, Subscribers, dev, env_for, subs
from support import wait_until

from ironpush.cli._pipes import EXIT_CLOSED_PIPE, ReaderWatch, pipe_reader_gone
from ironpush.devserver import DevServer

__all__ = ["dev", "subs"]  # fixtures


def run_into_closed_pipe(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``python -m ironpush ARGS`` with stdout a pipe nobody reads any more."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first byte is written
    try:
        return subprocess.run(
            [sys.executable, "-m", "ironpush", *args],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **env},
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)


@pytest.mark.parametrize(
    "args",
    [["queues"], ["queues", "--json"], ["info", "pipes-q"], ["--help"], ["tail", "--help"]],
    ids=["queues", "queues-json", "info", "help", "command-help"],
)
def test_a_closed_stdout_ends_the_command_quietly_with_141(
    args: list[str], dev: DevServer, tmp_path: Path
) -> None:
    dev.client().queue("pipes-q").post("x")

    proc = run_into_closed_pipe(args, env_for(dev, tmp_path))

    assert proc.returncode == EXIT_CLOSED_PIPE, proc.stderr
    assert proc.stderr == ""  # no "error: unexpected BrokenPipeError", no "Exception ignored"


def test_only_a_pipe_without_reader_counts_as_closed() -> None:
    # A BrokenPipeError from elsewhere (a socket, a subprocess) must not pass for `| head`.
    read_end, write_end = os.pipe()
    try:
        assert not pipe_reader_gone(write_end)
        os.close(read_end)
        assert pipe_reader_gone(write_end)
    finally:
        os.close(write_end)


def test_tail_into_head_stops_at_once_not_at_the_next_event(
    dev: DevServer, subs: Subscribers, queue_name: str, tmp_path: Path
) -> None:
    dev.client().create_queue(queue_name, subscribers=[{"name": "one", "url": subs.url(200)}])
    before = dev.engine.events.streams
    script = (
        f'"{sys.executable}" -m ironpush tail {queue_name} | head -1; '
        'echo "status=${PIPESTATUS[0]}" >&2'
    )
    pipeline = subprocess.Popen(  # `ironpush tail | head -1` through a real shell pipeline
        ["bash", "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env_for(dev, tmp_path)},
    )
    try:
        wait_until(lambda: dev.engine.events.streams > before, 30, "tail to connect")
        dev.client().queue(queue_name).post("the one event head reads")
        # No second event ever comes: before the fix, tail waited for one for ever.
        out, err = pipeline.communicate(timeout=30)
    finally:
        if pipeline.poll() is None:
            pipeline.kill()
            pipeline.wait()
    assert " delivered " in out
    assert f"status={EXIT_CLOSED_PIPE}" in err, err
    assert "Traceback" not in err
    assert "error:" not in err
    assert TOKEN not in out + err
    wait_until(lambda: dev.engine.events.streams == before, 30, "the tail's stream to close")


def test_the_watch_wakes_a_read_blocked_on_its_socket_when_the_reader_leaves() -> None:
    read_end, write_end = os.pipe()
    left, right = socket.socketpair()
    try:
        watch = ReaderWatch(write_end).start()
        watch.attach(left)
        left.settimeout(30)  # a watch that never fires fails the test instead of hanging it
        assert not watch.wait(0.1)
        threading.Timer(0.2, os.close, args=(read_end,)).start()

        assert left.recv(1) == b""  # blocked until the watch shut the socket down
        assert watch.gone
    finally:
        left.close()
        right.close()
        os.close(write_end)
