"""Shared by the CLI tests of tail, replay, the queue commands and logging.

``cli`` runs ``ironpush ARGS`` in-process (click's runner) against a real dev server;
:class:`Proc` runs a command as a real subprocess and collects its output lines as they come.
The scripted subscriber servers are the dev-server tests' (``tests/devserver``).
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import pytest
from click.testing import CliRunner, Result
from devserver.subscriber_servers import Subscribers
from support import wait_until

from ironpush.cli import main
from ironpush.devserver import DevServer

__all__ = ["TOKEN", "Proc", "Subscribers", "cli", "dev", "env_for", "subs"]

TOKEN = "observe-TOKEN-0123456789abcdef"
ROOT = Path(__file__).resolve().parent.parent.parent


@pytest.fixture(scope="module")
def dev() -> Iterator[DevServer]:
    with DevServer(token=TOKEN) as server:
        yield server


@pytest.fixture(scope="module")
def subs() -> Iterator[Subscribers]:
    with Subscribers() as servers:
        yield servers


def env_for(dev: DevServer, home: Path) -> dict[str, str]:
    return {
        "HOME": str(home),  # no stray ~/.iron.json
        "IRONMQ_EMULATOR_HOST": dev.url,
        "IRON_PROJECT_ID": dev.project_id,
        "IRON_TOKEN": TOKEN,
        "PYTHONPATH": str(ROOT),
    }


@pytest.fixture
def cli(dev: DevServer, tmp_path: Path) -> Callable[..., Result]:
    """``cli(*args, input=None, code=0)``: run ``ironpush ARGS``; the token is never printed."""

    def run(*args: str, input: str | None = None, code: int = 0) -> Result:
        result = CliRunner().invoke(
            main, list(args), env=env_for(dev, tmp_path), input=input, prog_name="ironpush"
        )
        output = result.stdout + result.stderr
        assert result.exit_code == code, output
        assert TOKEN not in output
        assert "Traceback" not in output
        return result

    return run


class Proc:
    """``python -m ironpush ARGS`` as a subprocess; stdout and stderr lines collected live."""

    def __init__(self, *args: str, env: dict[str, str], read_stdout: bool = True) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ironpush", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
        )
        self.out: list[str] = []
        self.err: list[str] = []
        self._queues: dict[str, queue.Queue[str]] = {}
        self._pumps: list[threading.Thread] = []
        assert self.proc.stderr is not None
        self._pump(self.proc.stderr, self.err)
        if read_stdout:
            self.read_stdout()

    def read_stdout(self) -> None:
        assert self.proc.stdout is not None
        self._pump(self.proc.stdout, self.out)

    def _pump(self, stream: IO[str], into: list[str]) -> None:
        def run() -> None:
            for line in stream:
                into.append(line.rstrip("\n"))

        pump = threading.Thread(target=run, daemon=True)
        pump.start()
        self._pumps.append(pump)

    def wait_for(
        self, predicate: Callable[[list[str]], Any], *, timeout: float = 20.0, err: bool = False
    ) -> Any:
        """Wait until ``predicate(lines)`` is truthy (stdout lines, or stderr with ``err``)."""
        lines = self.err if err else self.out

        def seen() -> Any:
            found = predicate(list(lines))
            if found or self.proc.poll() is None:
                return found
            for pump in self._pumps:  # they end at EOF: every last line is in
                pump.join(timeout=10)
            found = predicate(list(lines))
            assert found, f"exited {self.proc.returncode}: {self.out[-20:]} {self.err[-20:]}"
            return found

        return wait_until(
            seen, timeout, "the expected output", report=lambda: (self.out[-20:], self.err[-20:])
        )

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def __enter__(self) -> Proc:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
