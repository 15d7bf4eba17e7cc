"""A small fault-injecting HTTP/1.1 proxy for reliability tests.

It sits in front of a real server (the dev server's API) on 127.0.0.1 and, for the requests a
plan selects, answers 503 without forwarding, drops the connection before forwarding (the
request never arrives), or forwards and then drops the connection (the request took effect but
its answer is lost — the nastiest case for an ack). Everything else is relayed byte for byte.

It understands just enough HTTP/1.1 for our clients and servers: requests and responses framed by
``Content-Length`` or ``Transfer-Encoding: chunked``, keep-alive connections.
"""

from __future__ import annotations

import asyncio
import enum
import random
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field


class Fault(enum.Enum):
    PASS = "pass"
    STATUS_503 = "503"
    DROP_BEFORE = "drop-before"  # close without forwarding: the request never arrives
    DROP_AFTER = "drop-after"  # forward, then close without answering: the answer is lost


@dataclass
class BurstPlan:
    """Deterministic fault plan for requests whose method and path match.

    Every ``period`` matching requests, a burst of ``burst`` faults starts; within a burst each
    request gets a 503, a drop before or a drop after, in the proportions of ``weights``.
    """

    method: str = "DELETE"
    path_contains: str = "/messages/"
    period: int = 10
    burst: int = 3
    weights: tuple[int, int, int] = (2, 1, 1)
    seed: int = 7
    enabled: bool = True
    _seen: int = 0
    _rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        self._rng.seed(self.seed)

    def __call__(self, method: str, path: str) -> Fault:
        if not self.enabled or method != self.method or self.path_contains not in path:
            return Fault.PASS
        self._seen += 1
        if (self._seen - 1) % self.period >= self.burst:
            return Fault.PASS
        kinds = [Fault.STATUS_503, Fault.DROP_BEFORE, Fault.DROP_AFTER]
        return self._rng.choices(kinds, weights=self.weights)[0]


Plan = Callable[[str, str], Fault]

_503 = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
    b'content-length: 33\r\n\r\n{"msg": "injected: please retry"}'
)


class FaultProxy:
    """Run the proxy in a background thread: ``with FaultProxy(port, plan) as proxy: proxy.url``."""

    def __init__(self, upstream_port: int, plan: Plan, *, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.plan = plan
        self.counts: Counter[Fault] = Counter()
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FaultProxy:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        future.result(timeout=10)
        return self

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        try:
            while True:
                request = await read_message(reader)
                if request is None:
                    return
                method, path = request_line(request)
                fault = self.plan(method, path)
                self.counts[fault] += 1
                if fault is Fault.STATUS_503:
                    writer.write(_503)
                    await writer.drain()
                    continue
                if fault is Fault.DROP_BEFORE:
                    return
                if upstream is None:
                    upstream = await asyncio.open_connection(*self.upstream)
                upstream[1].write(request)
                await upstream[1].drain()
                response = await read_message(upstream[0])
                if response is None or fault is Fault.DROP_AFTER:
                    return
                writer.write(response)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()
            if upstream is not None:
                upstream[1].close()


def request_line(message: bytes) -> tuple[str, str]:
    line = message.split(b"\r\n", 1)[0].decode("latin-1")
    method, path, _ = line.split(" ", 2)
    return method, path


async def read_message(reader: asyncio.StreamReader) -> bytes | None:
    """One whole HTTP/1.1 message (head + body) as raw bytes, or None at end of stream."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    headers = {}
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip().lower()
    if headers.get(b"transfer-encoding") == b"chunked":
        body = b""
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            chunk = await reader.readexactly(size + 2)
            body += size_line + chunk
            if size == 0:
                return head + body
    length = int(headers.get(b"content-length", b"0"))
    return head + (await reader.readexactly(length) if length else b"")
