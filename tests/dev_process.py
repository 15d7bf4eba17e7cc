"""A real dev server in a child process (``python -m ironpush dev`` or ``python -m
ironpush.devserver``), its output read live, its URL taken from its banner.

::

    dev = DevProcess("--strict")
    try:
        dev.wait_for("push q …")
    finally:
        assert dev.stop() == 0
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading

from support import wait_until

from ironpush.client import IronMQ

__all__ = ["DevProcess"]


class DevProcess:
    """The dev command with ``ARGS`` on a free port; stdout and stderr merged into ``lines``."""

    def __init__(
        self, *args: str, env: dict[str, str] | None = None, module: str = "ironpush"
    ) -> None:
        command = ["dev"] if module == "ironpush" else []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module, *command, "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, **(env or {})},
        )
        self.lines: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()
        try:
            self.wait_for("Press Ctrl-C")
        except BaseException:
            self.kill()
            raise
        found = re.search(r"listening on (http://\S+)", self.text())
        assert found is not None, self.text()
        self.url = found.group(1)

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def text(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, needle: str, timeout: float = 20.0) -> str:
        """The first output line containing ``needle`` (fails if the process ends first)."""

        def line() -> str | None:
            found = next((line for line in self.lines if needle in line), None)
            assert found is not None or self.proc.poll() is None, self.text()
            return found

        found: str = wait_until(line, timeout, f"a line with {needle!r}", report=self.text)
        return found

    def client(self, *, project_id: str = "dev", token: str = "dev") -> IronMQ:
        return IronMQ(cloud=self.url, project_id=project_id, token=token)

    def stop(self, sig: signal.Signals = signal.SIGINT) -> int:
        """Ask it to stop (Ctrl-C by default) and return its exit code (killed after 15 s)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                return self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait()

    def kill(self) -> None:
        """``kill -9``."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
