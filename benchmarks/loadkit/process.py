"""The load receiver as a subprocess: start it, sample it, stop it, read its log."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from .app import MOUNT

ROOT = Path(__file__).resolve().parents[2]
CLEAN_EXITS = (0, -signal.SIGTERM, None)


class ReceiverProcess:
    """The load app in a subprocess on a socket bound here (no free-port race)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.proc: asyncio.subprocess.Process | None = None
        self.port = 0
        self.url = ""
        self._log = tempfile.NamedTemporaryFile(prefix="load-app-", suffix=".log", delete=False)  # noqa: SIM115
        self.http = httpx.AsyncClient(timeout=30.0)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def start(self, timeout: float = 30.0) -> ReceiverProcess:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        sock.listen(2048)
        self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, **self.env}
        env.pop("IRONPUSH_SECRET_KEYS", None)
        try:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "benchmarks.loadkit.app",
                "--fd",
                str(sock.fileno()),
                cwd=ROOT,
                env=env,
                pass_fds=(sock.fileno(),),
                stdout=self._log,
                stderr=subprocess.STDOUT,
            )
        finally:
            sock.close()  # the child has its own copy
        await poll_until(self._healthy, timeout, "the receiver to start")
        return self

    async def _healthy(self) -> bool:
        assert self.proc is not None
        if self.proc.returncode is not None:
            raise RuntimeError(f"receiver exited with {self.proc.returncode}:\n{self.log_text()}")
        try:
            return (await self.http.get(self.url + MOUNT + "/_health")).status_code == 200
        except httpx.TransportError:
            return False

    def rss_kb(self) -> int:
        return _proc_status(self.pid, "VmRSS")

    def hwm_kb(self) -> int:
        return _proc_status(self.pid, "VmHWM")

    def rss_parts_mb(self) -> dict[str, float]:
        """RSS split into anonymous memory (the heap), mapped files and shared memory."""
        return {
            name: mb(_proc_status(self.pid, name)) for name in ("RssAnon", "RssFile", "RssShmem")
        }

    async def health(self) -> dict[str, Any]:
        """``/_health``'s figures; also when it answers 503 (the receiver refuses pushes: under
        back-pressure that is the point of the run, and the figures are still there)."""
        response = await self.http.get(self.url + MOUNT + "/_health")
        if response.status_code not in (200, 503):
            response.raise_for_status()
        return dict(response.json())

    async def stats(self) -> dict[str, Any]:
        response = await self.http.get(self.url + "/control/stats")
        response.raise_for_status()
        return dict(response.json())

    async def release(self) -> None:
        (await self.http.post(self.url + "/control/release")).raise_for_status()

    async def stop(self, timeout: float = 20.0) -> int:
        await self.http.aclose()
        if self.proc is None:
            return 0
        if self.proc.returncode is None:
            # SIGTERM: uvicorn shuts down gracefully (the router drains), then re-raises the
            # signal, so a clean stop exits with -SIGTERM.
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), timeout)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
                return -signal.SIGKILL
        return await self.proc.wait()

    def log_text(self) -> str:
        self._log.flush()
        return Path(self._log.name).read_text(errors="replace")

    def log_problems(self) -> list[str]:
        text = self.log_text()
        problems = [
            line
            for line in text.splitlines()
            if line.startswith(("ERROR", "CRITICAL", "Traceback")) or "Exception" in line
        ]
        stopped = self.proc is not None and self.proc.returncode is not None
        if stopped and "Application shutdown complete" not in text:
            problems.append("no graceful shutdown (lifespan shutdown did not complete)")
        return problems

    def cleanup(self) -> None:
        self._log.close()
        with contextlib.suppress(OSError):
            os.unlink(self._log.name)


def _proc_status(pid: int, field_name: str) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field_name} for pid {pid}")


async def poll_until(
    predicate: Callable[[], bool | Awaitable[bool]],
    timeout: float,
    what: str = "a condition",
    interval: float = 0.02,
) -> None:
    """Poll ``predicate`` (sync or async) until it is true; TimeoutError after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(interval)


@dataclass
class Sample:
    t: float
    rss_kb: int
    inflight: int
    outbox: int


class Sampler:
    """Reads the receiver's RSS and ``/_health`` every ``interval`` seconds in the background."""

    def __init__(self, receiver: ReceiverProcess, interval: float = 0.5) -> None:
        self.receiver = receiver
        self.interval = interval
        self.samples: list[Sample] = []
        self.started = time.monotonic()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> Sampler:
        self.started = time.monotonic()
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    async def sample(self) -> Sample:
        rss = self.receiver.rss_kb()
        health = await self.receiver.health()
        sample = Sample(
            time.monotonic() - self.started, rss, health["inflight_jobs"], health["outbox_depth"]
        )
        self.samples.append(sample)
        return sample

    async def _run(self) -> None:
        while True:
            await self.sample()
            await asyncio.sleep(self.interval)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def mb(kb: float) -> float:
    return round(kb / 1024, 1)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def slope_mb_per_min(samples: list[Sample]) -> float:
    if len(samples) < 3:
        return 0.0
    xs = [s.t for s in samples]
    ys = [s.rss_kb / 1024 for s in samples]
    return round(statistics.linear_regression(xs, ys).slope * 60, 2)
