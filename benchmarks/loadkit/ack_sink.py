"""Stand-ins for both sides of IronMQ in the load tests, on asyncio + httptools.

- :class:`AckSink` plays the API: it answers every v3 acknowledgement
  (``DELETE /3/projects/{p}/queues/{q}/messages/{id}`` with ``{"reservation_id",
  "subscriber_name"}``) with 200 and records it, so a test can count acks per message.
- :class:`LoadPusher` plays the pusher: ``connections`` keep-alive connections, each posting one
  push at a time with a unique message id and a fresh reservation id. Like IronMQ, it pushes a
  message that got 503 (or no answer) again after ``retry_delay`` with a new reservation id, and
  it can push a 202'd message again while its job may still run (``redeliver_ratio``: the v3
  reservation of a 202 lasts only ``retries_delay``). It records every answer per message.

Both run in the caller's event loop; neither is a general HTTP implementation (one request at a
time per connection, ``Content-Length`` bodies only), which keeps them cheap enough that the
receiver, not the load generator, is what a run measures.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import json
import random
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, cast

import httptools

__all__ = ["AckSink", "LoadPusher", "PushTemplate", "RecordedAck"]

_OK = b'{"msg":"Deleted"}'


# ============================================================================ the API side


@dataclass(frozen=True, slots=True)
class RecordedAck:
    queue: str
    message_id: str
    reservation_id: str | None
    subscriber_name: str | None


class _SinkConnection(asyncio.Protocol):
    def __init__(self, sink: AckSink) -> None:
        self.sink = sink
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.body = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.sink.connections += 1

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.sink.unexpected["unparsable request"] += 1
            if self.transport is not None:
                self.transport.close()

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.url = b""
        self.body = bytearray()

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        method = self.parser.get_method().decode()
        status, answer = self.sink.handle(method, self.url.decode("latin-1"), bytes(self.body))
        reason = b"OK" if status == 200 else b"Not Found"
        head = b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
        assert self.transport is not None
        self.transport.write(head % (status, reason, len(answer)) + answer)
        if not self.parser.should_keep_alive():
            self.transport.close()


class AckSink:
    """A counting stand-in for IronMQ's API: acks are answered 200 and recorded.

    ::

        sink = await AckSink().start()
        ...  # point a receiver's client at sink.url (IRONMQ_EMULATOR_HOST=sink.url)
        sink.by_message["123"]   # [RecordedAck(...), ...] in arrival order
        sink.close()
    """

    def __init__(self) -> None:
        self.acks: list[RecordedAck] = []
        self.by_message: dict[str, list[RecordedAck]] = {}
        self.unexpected: Counter[str] = Counter()
        self.connections = 0
        self._server: asyncio.AbstractServer | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> AckSink:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _SinkConnection(self), "127.0.0.1", 0, backlog=1024
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def handle(self, method: str, url: str, body: bytes) -> tuple[int, bytes]:
        # /3/projects/{project}/queues/{queue}/messages/{id}
        parts = url.split("?", 1)[0].split("/")
        if method == "DELETE" and len(parts) == 8 and parts[1] == "3" and parts[6] == "messages":
            try:
                fields: dict[str, Any] = json.loads(body) if body else {}
            except ValueError:
                fields = {}
            ack = RecordedAck(
                queue=parts[5],
                message_id=parts[7],
                reservation_id=fields.get("reservation_id"),
                subscriber_name=fields.get("subscriber_name"),
            )
            self.acks.append(ack)
            self.by_message.setdefault(ack.message_id, []).append(ack)
            return 200, _OK
        self.unexpected[f"{method} {url.split('?', 1)[0]}"] += 1
        return 404, b'{"msg":"Not found"}'

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None


# ============================================================================ the pusher side


class ConnectionFailure(Exception):
    """The push got no HTTP answer (connection refused, reset or closed before an answer)."""


class _PushConnection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.body = bytearray()
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(f"invalid HTTP response: {exc}")
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail("connection closed before an answer")

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result((self.parser.get_status_code(), bytes(self.body)))
        if not self.parser.should_keep_alive():
            self.close()

    def _fail(self, why: str) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(ConnectionFailure(why))

    async def request(self, data: bytes) -> tuple[int, bytes]:
        if self.closed or self.transport is None:
            raise ConnectionFailure("connection closed")
        self.body = bytearray()
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return await self.waiter

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


@dataclass(frozen=True, slots=True)
class PushTemplate:
    """The bytes of one push with two holes: ``\\x01`` (message id), ``\\x02`` (reservation id).

    Build it from :func:`ironpush.testing.build_push` headers so the pushes are exactly what the
    test kit calls valid (push secret included).
    """

    head: str
    body: bytes

    @classmethod
    def build(cls, path: str, port: int, headers: dict[str, str], body: bytes) -> PushTemplate:
        lines = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        lines.append(f"Content-Length: {len(body)}")
        return cls("\r\n".join(lines) + "\r\n\r\n", body)

    def render(self, message_id: str, reservation_id: str) -> bytes:
        head = self.head.replace("\x01", message_id).replace("\x02", reservation_id)
        return head.encode("latin-1") + self.body


@dataclass
class PushStats:
    """What the pusher saw: answers by status, per message, and the timeline of 503s."""

    started: float = 0.0
    requests: int = 0
    by_status: Counter[int] = field(default_factory=Counter)
    connection_errors: int = 0
    error_reasons: Counter[str] = field(default_factory=Counter)
    bodies: Counter[tuple[int, bytes]] = field(default_factory=Counter)
    #: message id -> [(reservation id, status)] in answer order (status 0: no answer)
    answers: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    first_503_at: float | None = None
    accepted_before_first_503: int = 0
    new_messages: int = 0
    retries: int = 0
    redeliveries: int = 0
    latencies: dict[int, list[float]] = field(default_factory=dict)
    stopped_new_at: float | None = None
    requests_at_stop: int = 0
    accepted_at_stop: int = 0
    finished_at: float | None = None


class LoadPusher:
    """``connections`` keep-alive connections pushing unique messages as fast as answered.

    Call :meth:`run` (returns when :meth:`stop_new` was called and nothing is left to push:
    no retry or redelivery pending, no push in flight). ``retry_delay=None``: a push that got
    no 2xx answer is not pushed again.
    """

    def __init__(
        self,
        port: int,
        template: PushTemplate,
        *,
        connections: int = 200,
        retry_delay: float | None = 0.1,
        redeliver_ratio: float = 0.0,
        redeliver_within: float = 0.5,
        seed: int = 1,
    ) -> None:
        self.port = port
        self.template = template
        self.connections = connections
        self.retry_delay = retry_delay
        self.redeliver_ratio = redeliver_ratio
        self.redeliver_within = redeliver_within
        self.stats = PushStats()
        self._random = random.Random(seed)
        self._prefix = f"{int(time.time() * 1000) % 10**10}{seed:03d}"
        self._ids = itertools.count(1)
        self._reservations = itertools.count(1)
        self._retry: deque[tuple[float, str]] = deque()  # constant delay: due times in order
        self._redeliver: list[tuple[float, str]] = []  # heap of (due, message id)
        self._accept_new = True
        self._in_flight = 0
        self._max_new: int | None = None

    def stop_new(self) -> None:
        """No new message ids from now on; retries and redeliveries still go out."""
        if self._accept_new:
            self._accept_new = False
            self.stats.stopped_new_at = time.monotonic()
            self.stats.requests_at_stop = self.stats.requests
            self.stats.accepted_at_stop = self.stats.by_status[202]

    def limit_new(self, count: int) -> None:
        """Push at most ``count`` new messages in total (then behave as after :meth:`stop_new`)."""
        self._max_new = count

    @property
    def pending(self) -> int:
        return len(self._retry) + len(self._redeliver) + self._in_flight

    async def run(self) -> PushStats:
        self.stats.started = time.monotonic()
        loop = asyncio.get_running_loop()
        connections: list[_PushConnection] = []
        for _ in range(self.connections):
            _, conn = await loop.create_connection(_PushConnection, "127.0.0.1", self.port)
            connections.append(conn)
        try:
            await asyncio.gather(*(self._worker(conn) for conn in connections))
        finally:
            for conn in connections:
                conn.close()
        self.stats.finished_at = time.monotonic()
        return self.stats

    def _next(self, now: float) -> tuple[str, str] | None:
        if self._retry and self._retry[0][0] <= now:
            return self._retry.popleft()[1], "retry"
        if self._redeliver and self._redeliver[0][0] <= now:
            return heapq.heappop(self._redeliver)[1], "redelivery"
        if self._max_new is not None and self.stats.new_messages >= self._max_new:
            self.stop_new()
        if self._accept_new:
            self.stats.new_messages += 1
            return f"{self._prefix}{next(self._ids):09d}", "new"
        return None

    async def _worker(self, conn: _PushConnection) -> None:
        loop = asyncio.get_running_loop()
        stats = self.stats
        while True:
            now = time.monotonic()
            picked = self._next(now)
            if picked is None:
                if not self._accept_new and self.pending == 0:
                    return
                # Pacing until a retry or redelivery is due (IronMQ's retries_delay), not a wait
                # for an outcome.
                await asyncio.sleep(0.005)
                continue
            message_id, kind = picked
            if kind == "retry":
                stats.retries += 1
            elif kind == "redelivery":
                stats.redeliveries += 1
            reservation_id = f"r{next(self._reservations)}"
            data = self.template.render(message_id, reservation_id)
            self._in_flight += 1
            started = time.monotonic()
            try:
                status, body = await conn.request(data)
            except ConnectionFailure as exc:
                status, body = 0, b""
                stats.connection_errors += 1
                stats.error_reasons[str(exc)] += 1
                conn.close()
                _, conn = await loop.create_connection(_PushConnection, "127.0.0.1", self.port)
            finally:
                self._in_flight -= 1
            ended = time.monotonic()
            self._record(message_id, reservation_id, status, body, started, ended)

    def _record(
        self,
        message_id: str,
        reservation_id: str,
        status: int,
        body: bytes,
        started: float,
        ended: float,
    ) -> None:
        stats = self.stats
        stats.requests += 1
        stats.by_status[status] += 1
        stats.latencies.setdefault(status, []).append(ended - started)
        if len(stats.bodies) < 50:
            stats.bodies[(status, body[:200])] += 1
        stats.answers.setdefault(message_id, []).append((reservation_id, status))
        if status == 503 and stats.first_503_at is None:
            stats.first_503_at = ended - stats.started
            stats.accepted_before_first_503 = stats.by_status[202]
        if status in (0, 503) or status >= 500:
            # IronMQ pushes a message again after retries_delay when the answer is not 2xx.
            if self.retry_delay is not None:
                self._retry.append((ended + self.retry_delay, message_id))
        elif (
            status == 202
            and self._accept_new
            and self._random.random() < self.redeliver_ratio
            and len(stats.answers[message_id]) < 4
        ):
            # The 202 reservation expired (retries_delay) while the job may still run.
            due = ended + self._random.uniform(0, self.redeliver_within)
            heapq.heappush(self._redeliver, (due, message_id))
