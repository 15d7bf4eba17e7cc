"""A counting push subscriber in its own process, for ``bench_devserver_scaling``.

``python -m benchmarks.scaling_subscriber PORT`` answers every ``POST`` with an empty 200 and
counts the pushes it answered and the TCP connections they came on (a connection that only
asked for ``/stats`` is not counted); when a body is a Unix time (``"1700000000.123"``) it
records the post→push latency. ``GET /stats`` gives
``{"connections", "requests", "latencies"}``; ``POST /reset`` zeroes them. asyncio + httptools
only (no framework), so the subscriber is never what a run measures.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import subprocess
import sys
import time
from types import TracebackType
from typing import Any, cast

import httptools

from ironpush.client._lean import LeanHTTPClient

__all__ = ["SubscriberProcess"]


class _Counts:
    def __init__(self) -> None:
        self.connections = 0
        self.requests = 0
        self.latencies: list[float] = []


class _Connection(asyncio.Protocol):
    def __init__(self, counts: _Counts) -> None:
        self.counts = counts
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.body = bytearray()
        self.url = b""
        self.pushed = False  # this connection carried a push (then it is counted)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            assert self.transport is not None
            self.transport.close()

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        method = self.parser.get_method()
        payload = b""
        if self.url == b"/stats":
            c = self.counts
            stats = {"connections": c.connections, "requests": c.requests, "latencies": c.latencies}
            payload = json.dumps(stats).encode()
        elif self.url == b"/reset":
            self.counts.__init__()  # type: ignore[misc]
        elif method == b"POST":
            if not self.pushed:
                self.pushed = True
                self.counts.connections += 1
            self.counts.requests += 1
            with contextlib.suppress(ValueError):
                self.counts.latencies.append(time.time() - float(self.body))
        head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(payload)}\r\n\r\n".encode()
        assert self.transport is not None
        self.transport.write(head + payload)
        self.body.clear()
        self.url = b""


async def _serve(port: int) -> None:
    counts = _Counts()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Connection(counts), "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


class SubscriberProcess:
    """The subscriber as a subprocess (``cmd_prefix`` e.g. ``taskset -c 0``)."""

    def __init__(self, cmd_prefix: list[str]) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [*cmd_prefix, sys.executable, "-m", "benchmarks.scaling_subscriber", str(self.port)]
        self._cmd = cmd
        self._proc: subprocess.Popen[bytes] | None = None
        self._client = LeanHTTPClient(max_idle_per_origin=1)

    def __enter__(self) -> SubscriberProcess:
        self._proc = subprocess.Popen(self._cmd)
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)):
                return self
            if time.monotonic() > deadline:
                raise RuntimeError("the subscriber did not start")
            time.sleep(0.05)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._client.close()
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(10)

    async def reset(self) -> None:
        await self._client.request("POST", self.url + "/reset", headers=[], timeout=10)

    async def stats(self) -> dict[str, Any]:
        response = await self._client.request("GET", self.url + "/stats", headers=[], timeout=10)
        stats: dict[str, Any] = json.loads(response.body)
        return stats


if __name__ == "__main__":
    asyncio.run(_serve(int(sys.argv[1])))
