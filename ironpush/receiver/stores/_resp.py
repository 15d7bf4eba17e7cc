"""A lean RESP2 client for :class:`~ironpush.receiver.stores._redis.RedisStore`.

Why not redis-py's asyncio client: its per-command CPU in this process (pool checkout,
per-read timeouts, connection bookkeeping) was several times what a receiver spends on a whole
push; ``benchmarks/bench_store_clients.py`` compares the two and ``benchmarks/README.md``
keeps the figures. This client only sends commands and reads their answers:

- a few connections (``connections``), each an asyncio protocol with hiredis' C parser;
  concurrent calls are **pipelined** (answers come back in order, so each call is a future in
  a queue) and the commands queued in one event-loop turn go out in one ``write``;
- every call is bounded by ``timeout``: a connection whose oldest call has waited that long is
  closed and every call on it fails (its answers could never be matched again);
- a call is never retried after its command was sent (an answer lost in a reset may hide a
  command Redis applied); a dropped connection is reopened by the next call;
- at most ``max_in_flight`` calls wait at once; beyond that a call fails at once
  (:class:`Busy`) instead of queueing in memory;
- inside an ironpush span (a traced push, job or ack: :mod:`ironpush._tracing`), each call is
  an OpenTelemetry CLIENT span (``EVALSHA claim``: ``db.system.name=redis``, the command, the
  script's name, ``db.namespace``, ``server.address``/``server.port``; never arguments, keys
  or the password). Outside one, the check is one context-variable read.

::

    client = RespClient("redis://127.0.0.1:6379/0", timeout=2.0)
    assert await client.call("PING") == "PONG"
    await client.close()
"""

from __future__ import annotations

import asyncio
import collections
import ssl
from collections.abc import Sequence
from typing import Any, cast
from urllib.parse import parse_qs, unquote, urlsplit

from ... import _tracing

try:
    import hiredis
except ImportError as exc:  # pragma: no cover - exercised by the import-hint test
    raise ImportError("RedisStore needs hiredis: pip install 'ironpush[redis]'") from exc

Arg = str | bytes | int | float
ReplyError = hiredis.ReplyError  # an error answer, as a value (pipelines keep going)


def _pack(args: Sequence[Arg]) -> bytes:
    # hiredis' C packer; its stub types the argument as a 1-tuple.
    packed: bytes = hiredis.pack_command(cast(Any, tuple(args)))
    return packed


class RespError(Exception):
    """An error answer from Redis (``-ERR …``, ``-NOSCRIPT …``, ``-OOM …``)."""


class Busy(Exception):
    """``max_in_flight`` calls already wait for their answers."""


class _Connection(asyncio.Protocol):
    """One socket: pipelined calls answered in order, with a watchdog on the oldest call."""

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        self._loop = loop
        self._timeout = timeout
        self._reader = hiredis.Reader(encoding="utf-8", errors="replace")
        self._transport: asyncio.Transport | None = None
        self._waiting: collections.deque[asyncio.Future[Any]] = collections.deque()
        self._deadlines: collections.deque[float] = collections.deque()
        self._out: list[bytes] = []
        self._watch: asyncio.TimerHandle | None = None
        self.broken: BaseException | None = None

    # --- asyncio.Protocol --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        self._reader.feed(data)
        try:
            while (reply := self._reader.gets()) is not False:
                self._deadlines.popleft()
                future = self._waiting.popleft()
                if not future.done():  # its caller may have given up (cancelled)
                    future.set_result(reply)
        except (hiredis.ProtocolError, IndexError) as exc:  # garbage, or an unasked answer
            self.abort(ConnectionError(f"bad answer from redis: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(exc or ConnectionError("redis closed the connection"))

    # --- calls -------------------------------------------------------------------------------

    def send(self, payload: bytes) -> asyncio.Future[Any]:
        if self.broken is not None:
            raise ConnectionError(f"redis connection lost: {self.broken}")
        future = self._loop.create_future()
        self._waiting.append(future)
        self._deadlines.append(self._loop.time() + self._timeout)
        if not self._out:  # the first command of this loop turn: flush once the turn ends
            self._loop.call_soon(self._flush)
        self._out.append(payload)
        if self._watch is None:
            self._watch = self._loop.call_later(self._timeout, self._check)
        return future

    def _flush(self) -> None:
        if self._out and self._transport is not None and self.broken is None:
            self._transport.write(b"".join(self._out))
        self._out.clear()

    def _check(self) -> None:
        self._watch = None
        if not self._deadlines:
            return
        late = self._deadlines[0] - self._loop.time()
        if late <= 0:
            self.abort(TimeoutError(f"redis did not answer within {self._timeout:g} s"))
        else:
            self._watch = self._loop.call_later(late, self._check)

    def abort(self, exc: BaseException) -> None:
        self._fail(exc)
        if self._transport is not None:
            self._transport.abort()

    def _fail(self, exc: BaseException) -> None:
        if self.broken is None:
            self.broken = exc
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        self._out.clear()
        while self._waiting:
            future = self._waiting.popleft()
            if not future.done():
                future.set_exception(_copy(self.broken))
        self._deadlines.clear()


def _copy(exc: BaseException) -> BaseException:
    # One exception object raised in many tasks would chain their tracebacks together.
    try:
        return type(exc)(*exc.args)
    except TypeError:
        return ConnectionError(str(exc))


class RespClient:
    """Pipelined RESP2 calls over ``connections`` sockets; see the module docs."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 2.0,
        connections: int = 2,
        max_in_flight: int = 1024,
    ) -> None:
        self._target = _Target.parse(url)
        self.timeout = timeout
        self._size = max(1, connections)
        self._max_in_flight = max_in_flight
        self._live: list[_Connection] = []
        self._opening: asyncio.Lock | None = None
        self._next = 0

    async def call(self, *args: Arg) -> Any:
        """Send one command; its answer, or :class:`RespError` for an error answer."""
        reply = await self.send(args)
        if isinstance(reply, hiredis.ReplyError):
            raise RespError(str(reply))
        return reply

    async def send(self, args: Sequence[Arg]) -> Any:
        """Send one command; its answer as is (an error answer is a ``hiredis.ReplyError``)."""
        connection = self._pick() or await self._connection()
        if _tracing.current() is None:
            return await connection.send(_pack(args))
        with _tracing.client_span(*self.span(args[:2], 1)) as span:
            reply = await connection.send(_pack(args))
            if span is not None and isinstance(reply, hiredis.ReplyError):
                _tracing.fail(span, str(reply).split(" ", 1)[0])  # the error's prefix: NOSCRIPT
            return reply

    async def pipeline(self, commands: Sequence[Sequence[Arg]]) -> list[Any]:
        """Send several commands in one write; their answers, in order (errors as values)."""
        connection = await self._connection()
        if _tracing.current() is None:
            return list(await asyncio.gather(*[connection.send(_pack(c)) for c in commands]))
        with _tracing.client_span(*self.span(("PIPELINE",), len(commands))):
            return list(await asyncio.gather(*[connection.send(_pack(c)) for c in commands]))

    def span(self, head: Sequence[Arg], batch: int) -> tuple[str, dict[str, Any]]:
        """A traced call's span name and attributes: the command (and the script it runs)."""
        command = str(head[0]).upper()
        target = self._target
        attributes: dict[str, Any] = {
            "db.system.name": "redis",
            "db.system": "redis",
            "db.operation.name": command,
            "db.namespace": str(target.db),
            "server.address": target.unix_path or target.host,
        }
        if target.unix_path is None:
            attributes["server.port"] = target.port
        if batch > 1:
            attributes["db.operation.batch.size"] = batch
        script = _script_name(head[1]) if command == "EVALSHA" and len(head) > 1 else None
        if script is None:
            return command, attributes
        attributes["db.stored_procedure.name"] = script
        return f"{command} {script}", attributes

    def _pick(self) -> _Connection | None:
        """The next live connection (round robin: under load every socket carries a pipeline;
        idle, one call each); None when one must be opened first (a socket broke, or fewer
        than ``connections``); raises :class:`Busy` at ``max_in_flight``."""
        live = self._live
        waiting = 0
        for connection in live:  # a plain loop, no property call: this runs once per command
            if connection.broken is not None:
                return None
            waiting += len(connection._waiting)
        if len(live) < self._size:
            return None
        if waiting >= self._max_in_flight:
            raise Busy(f"{self._max_in_flight} redis calls in flight")
        self._next = (self._next + 1) % len(live)
        return live[self._next]

    async def _connection(self) -> _Connection:
        """:meth:`_pick`'s connection, opening connections first when it has none."""
        connection = self._pick()
        if connection is None:
            await self._open()
            connection = self._pick()
            if connection is None:  # one broke again while the others were being opened
                raise ConnectionError("redis connection lost while connecting")
        return connection

    async def _open(self) -> None:
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            self._live = [c for c in self._live if c.broken is None]
            while len(self._live) < self._size:
                self._live.append(await self._connect())

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        target = self._target
        async with asyncio.timeout(self.timeout):
            if target.unix_path is not None:
                _, connection = await loop.create_unix_connection(
                    lambda: _Connection(loop, self.timeout), target.unix_path
                )
            else:
                _, connection = await loop.create_connection(
                    lambda: _Connection(loop, self.timeout),
                    target.host,
                    target.port,
                    ssl=ssl.create_default_context() if target.tls else None,
                )
            try:
                await self._hello(connection)
            except BaseException:
                connection.abort(ConnectionError("redis handshake failed"))
                raise
        return connection

    async def _hello(self, connection: _Connection) -> None:
        target = self._target
        commands: list[tuple[Arg, ...]] = []
        if target.password is not None:
            auth = (target.username, target.password) if target.username else (target.password,)
            commands.append(("AUTH", *auth))
        if target.db:
            commands.append(("SELECT", target.db))
        futures = [connection.send(_pack(c)) for c in commands]
        for reply in await asyncio.gather(*futures):
            if isinstance(reply, hiredis.ReplyError):
                raise RespError(str(reply))

    def disconnect(self) -> None:
        """Drop every connection (the next call opens new ones)."""
        live, self._live = self._live, []
        for connection in live:
            connection.abort(ConnectionError("redis connection dropped"))

    async def close(self) -> None:
        """Close the connections; calls still waiting fail."""
        self.disconnect()
        await asyncio.sleep(0)  # let the transports close


_SCRIPT_NAMES: dict[str, str] = {}


def _script_name(sha: Arg) -> str | None:
    """The name of the store script with this SHA-1 (for span names), if it is one."""
    if not _SCRIPT_NAMES:
        import hashlib

        from ._redis_scripts import SCRIPTS

        for name, text in SCRIPTS.items():
            digest = hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()
            _SCRIPT_NAMES[digest] = name
    return _SCRIPT_NAMES.get(str(sha))


class _Target:
    """Where to connect, from ``redis://[user:password@]host[:port][/db]``, ``rediss://…``
    (TLS) or ``unix:///path/redis.sock[?db=N]``."""

    __slots__ = ("db", "host", "password", "port", "tls", "unix_path", "username")

    def __init__(self) -> None:
        self.host = "127.0.0.1"
        self.port = 6379
        self.db = 0
        self.tls = False
        self.unix_path: str | None = None
        self.username: str | None = None
        self.password: str | None = None

    @classmethod
    def parse(cls, url: str) -> _Target:
        parts = urlsplit(url)
        target = cls()
        query = parse_qs(parts.query)
        if parts.scheme == "unix":
            target.unix_path = unquote(parts.path)
            target.db = int(query.get("db", ["0"])[0])
        elif parts.scheme in ("redis", "rediss"):
            target.tls = parts.scheme == "rediss"
            target.host = parts.hostname or "127.0.0.1"
            target.port = parts.port or 6379
            path = parts.path.strip("/")
            target.db = int(path) if path else int(query.get("db", ["0"])[0])
        else:
            raise ValueError(f"not a redis URL scheme: {parts.scheme!r}")
        target.username = unquote(parts.username) if parts.username else None
        target.password = unquote(parts.password) if parts.password is not None else None
        return target
