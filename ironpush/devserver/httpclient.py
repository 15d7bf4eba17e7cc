"""A small keep-alive HTTP/1.1 client for the pusher (asyncio protocol + httptools).

The pusher only ever sends ``POST`` with a body and reads a status code and the start of the
body, so it does not need a general client: this one is several times cheaper per request than
``httpx.AsyncClient`` (see ``benchmarks/README.md``), which is what lets one dev-server process
push thousands of messages per second. What it guarantees:

- one total deadline per push (connect + send + response), after which the connection is closed;
- redirects are never followed (a 3xx is just a status, i.e. a failed push);
- connection errors and malformed responses raise :class:`PushFailure` with a short reason;
- idle connections are reused per origin; one that the peer closed while idle is detected, and a
  request that failed on a reused connection before any response byte is sent again once.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from typing import cast
from urllib.parse import quote, urlsplit

import httptools

__all__ = ["PushClient", "PushFailure", "PushResponse"]

_KEEP_BODY = 1024
_SKIP_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})


class PushFailure(Exception):
    """The push got no HTTP answer: connection refused/reset, timeout, garbage response."""


@dataclass(frozen=True, slots=True)
class PushResponse:
    status: int
    body: bytes  # at most the first KiB


@dataclass(frozen=True, slots=True)
class _Target:
    origin: tuple[str, str, int]
    host: str
    port: int
    tls: bool
    head: bytes  # "POST path HTTP/1.1\r\nHost: ...\r\n"


class _Connection(asyncio.Protocol):
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[PushResponse] | None = None
        self.closed = False
        self.got_bytes = False
        self.headers_done = False
        self.keep_alive = True
        self.body = bytearray()

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses but have the same API
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.got_bytes = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(PushFailure(f"invalid HTTP response: {exc}"))
            self.close()

    def eof_received(self) -> bool:
        self._end_of_stream()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._end_of_stream()

    def _end_of_stream(self) -> None:
        self.keep_alive = False
        if self.headers_done:  # a response delimited by the end of the connection
            self.on_message_complete()
        else:
            self._fail(PushFailure("connection closed before a response"))

    # httptools callbacks
    def on_headers_complete(self) -> None:
        self.headers_done = True

    def on_body(self, body: bytes) -> None:
        room = _KEEP_BODY - len(self.body)
        if room > 0:
            self.body += body[:room]

    def on_message_complete(self) -> None:
        fut, self.waiter = self.waiter, None
        if fut is None or fut.done():
            return
        self.keep_alive = self.keep_alive and self.parser.should_keep_alive()
        fut.set_result(PushResponse(self.parser.get_status_code(), bytes(self.body)))

    # client side
    def request(self, data: bytes) -> asyncio.Future[PushResponse]:
        assert self.transport is not None
        self.body = bytearray()
        self.headers_done = self.got_bytes = False
        self.waiter = self.loop.create_future()
        self.transport.write(data)
        return self.waiter

    def _fail(self, exc: PushFailure) -> None:
        fut, self.waiter = self.waiter, None
        if fut is not None and not fut.done():
            fut.set_exception(exc)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class PushClient:
    """POST bodies to subscriber URLs over pooled keep-alive connections."""

    def __init__(self, *, max_idle_per_origin: int = 128) -> None:
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._targets: dict[str, _Target] = {}
        self._max_idle = max_idle_per_origin
        self._ssl: ssl.SSLContext | None = None

    async def post(
        self, url: str, headers: list[tuple[str, str]], body: bytes, *, timeout: float
    ) -> PushResponse:
        """Send one push; raises :class:`PushFailure` on no answer within ``timeout`` seconds."""
        target = self._target(url)
        lines = [target.head, b"Content-Length: ", str(len(body)).encode(), b"\r\n"]
        for name, value in headers:
            if name.lower() not in _SKIP_HEADERS:
                lines.append(f"{name}: {value}\r\n".encode())
        lines.append(b"\r\n")
        lines.append(body)
        data = b"".join(lines)
        try:
            async with asyncio.timeout(timeout):
                return await self._exchange(target, data)
        except TimeoutError:
            raise PushFailure(f"no answer within {timeout:g} s") from None

    async def _exchange(self, target: _Target, data: bytes) -> PushResponse:
        conn = self._take_idle(target.origin)
        if conn is not None:
            try:
                return await self._send(conn, target, data)
            except PushFailure:
                if conn.got_bytes:
                    raise
                # The peer closed the idle connection as we reused it: nothing was processed.
        conn = await self._connect(target)
        return await self._send(conn, target, data)

    async def _send(self, conn: _Connection, target: _Target, data: bytes) -> PushResponse:
        try:
            response = await conn.request(data)
        except BaseException:  # failure, timeout or cancellation: the connection is unusable
            conn.close()
            raise
        if conn.keep_alive and not conn.closed:
            idle = self._idle.setdefault(target.origin, [])
            if len(idle) < self._max_idle:
                idle.append(conn)
                return response
        conn.close()
        return response

    def _take_idle(self, origin: tuple[str, str, int]) -> _Connection | None:
        idle = self._idle.get(origin)
        while idle:
            conn = idle.pop()
            if not conn.closed:
                return conn
        return None

    async def _connect(self, target: _Target) -> _Connection:
        loop = asyncio.get_running_loop()
        ctx = None
        if target.tls:
            ctx = self._ssl = self._ssl or ssl.create_default_context()
        try:
            _, protocol = await loop.create_connection(
                lambda: _Connection(loop),
                target.host,
                target.port,
                ssl=ctx,
                server_hostname=target.host if ctx else None,
            )
        except OSError as exc:
            raise PushFailure(f"connection failed: {exc.strerror or exc}") from None
        return protocol

    def _target(self, url: str) -> _Target:
        target = self._targets.get(url)
        if target is None:
            if len(self._targets) > 4096:
                self._targets.clear()
            target = self._targets[url] = _parse_target(url)
        return target

    def close(self) -> None:
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()


def _parse_target(url: str) -> _Target:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise PushFailure(f"cannot push to {parts.scheme or 'a relative'} URL")
    tls = parts.scheme == "https"
    try:
        port = parts.port or (443 if tls else 80)
    except ValueError:
        raise PushFailure("invalid port in subscriber URL") from None
    host = parts.hostname
    host_header = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        host_header += f":{port}"
    path = quote(parts.path or "/", safe="/%:@!$&'()*+,;=-._~")
    if parts.query:
        path += "?" + quote(parts.query, safe="/%:@!$&'()*+,;=-._~?")
    head = f"POST {path} HTTP/1.1\r\nHost: {host_header}\r\n".encode()
    return _Target((parts.scheme, host, port), host, port, tls, head)
