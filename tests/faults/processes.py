"""The process harness: servers run as subprocesses that can be ``kill -9``'d and restarted.

Each :class:`Process` keeps its output in a log file (the last lines are quoted when it fails to
start or a run gives up), and every wait has a deadline.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
from pathlib import Path

import httpx
from support import wait_until

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"


def python_path() -> str:
    """``PYTHONPATH`` for a subprocess: ``tests/`` (for ``faults.*``, ``multihost.*``, ``support``),
    whatever the caller has, then the repository root."""
    parts = [str(TESTS), os.environ.get("PYTHONPATH", ""), str(ROOT)]
    return os.pathsep.join(p for p in parts if p)


def http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


class Process:
    """A server subprocess that can be killed with SIGKILL and started again on its port.

    ``health`` is a URL answering 200 once the server serves (None: no check).
    """

    def __init__(
        self,
        argv: list[str],
        env: dict[str, str],
        health: str | None,
        *,
        name: str,
        start_timeout: float = 60.0,
        cwd: Path = ROOT,
    ) -> None:
        self.argv, self.env, self.health, self.name = argv, env, health, name
        self.cwd = cwd
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self.pids: list[int] = []
        self._log = tempfile.NamedTemporaryFile(prefix=f"{name}-", suffix=".log", delete=False)  # noqa: SIM115

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.argv, env=self.env, cwd=self.cwd, stdout=self._log, stderr=subprocess.STDOUT
        )
        self.pids.append(self.proc.pid)
        if self.health is not None:
            health = self.health
            wait_until(
                lambda: self._alive() and http_ok(health),
                self.start_timeout,
                f"{self.name} to serve {health}",
                interval=0.05,
                report=self.tail,
            )

    def _alive(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}")
        return True

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> int:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        return self.proc.pid

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=timeout)

    def tail(self, lines: int = 30) -> str:
        self._log.flush()
        text = Path(self._log.name).read_text(errors="replace").splitlines()
        return f"--- last lines of {self.name} ---\n" + "\n".join(text[-lines:])

    def log_text(self) -> str:
        self._log.flush()
        return Path(self._log.name).read_text(errors="replace")

    def cleanup(self) -> None:
        """Stop it and delete its log (kept, and its path printed, with ``FAULT_KEEP_LOGS=1``)."""
        self.stop()
        self._log.close()
        if os.environ.get("FAULT_KEEP_LOGS"):
            print(f"{self.name} log kept: {self._log.name}")
            return
        with contextlib.suppress(OSError):
            os.unlink(self._log.name)
