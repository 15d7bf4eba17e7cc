"""A lean keep-alive HTTP/1.1 client on asyncio and httptools.

ironpush makes two kinds of calls at high rates: the dev server's pusher POSTs every message to
its subscribers, and a receiver's outbox sends one ack per deferred push. Both are small
requests to a few origins, and with ``httpx.AsyncClient`` the client's own CPU per request
(request/response models, cookie and header handling, connection-pool bookkeeping) was the
bottleneck: this client is several times cheaper per request (see ``benchmarks/README.md``).
It is a transport, not a general client. What it guarantees:

- one total deadline per request (connect + send + response), after which the connection is
  closed;
- redirects are never followed (a 3xx is just a status);
- connection errors, timeouts and malformed responses raise :class:`HTTPFailure` with a short
  reason, and say whether the request certainly never left (``unsent``);
- idle connections are reused per origin; one that the peer closed while idle is detected, and
  a request that failed on a reused connection before any response byte is sent again once
  when the caller allows it (``resend_stale``: safe for idempotent calls and pushes);
- a response ends where HTTP/1.1 framing says (``Content-Length``, chunked, or the end of the
  connection when it has neither); one cut short raises, interim ``1xx`` answers are skipped,
  and a ``HEAD`` reply has no body;
- https verifies certificates against the same CA bundle as httpx
  (``httpx.create_ssl_context()``: certifi, or ``SSL_CERT_FILE`` / ``SSL_CERT_DIR``);
- environment proxy settings are not used (callers that need a proxy use httpx);
- inside an ironpush span (a traced ack: :mod:`ironpush._tracing`), a request is an
  OpenTelemetry CLIENT span (``DELETE``: ``http.request.method``, ``server.address``,
  ``server.port``, ``http.response.status_code``; never the URL, which may carry a token).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast
from urllib.parse import quote, urlsplit

import httptools
import httpx

from .. import _tracing

DEFAULT_MAX_BODY = 16 * 1024 * 1024
_SKIP_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})
_PATH_SAFE = "/%:@!$&'()*+,;=-._~"
_FORBIDDEN_IN_HEADERS = frozenset("\r\n\x00")  # characters a header must not contain
_FRAMING_HEADERS = (b"content-length", b"transfer-encoding")


class HTTPFailure(Exception):
    """No usable HTTP answer: connection refused/reset, timeout, garbage or oversized response.

    ``unsent`` is true when the request certainly never reached the server (the connection
    could not be made), so even a non-idempotent call may be retried.
    """

    def __init__(self, reason: str, *, unsent: bool = False) -> None:
        super().__init__(reason)
        self.unsent = unsent


@dataclass(frozen=True, slots=True)
class HTTPResponse:
    status: int
    body: bytes  # at most ``max_body`` bytes (the rest is dropped when ``truncate`` is set)
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Target:
    origin: tuple[str, str, int]
    host: str
    port: int
    tls: bool
    target: bytes  # b"/path?query HTTP/1.1\r\nHost: host:port\r\n"


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: one request at a time, the response framed as RFC 9112 says.

    A response ends at its ``Content-Length``, at the end of its chunked body, or (with
    neither) when the peer closes the connection. Anything else that ends early is an error:
    a body cut short must never pass for a complete answer.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[HTTPResponse] | None = None
        self.closed = False
        self.got_bytes = False
        self.keep_alive = True
        self.head = False  # the request was HEAD: its response has headers only
        self.headers_done = False
        self.until_close = False  # the body is delimited by the end of the connection
        self.body = bytearray()
        self.headers: list[tuple[bytes, bytes]] = []
        self.max_body = DEFAULT_MAX_BODY
        self.truncate = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses but have the same API
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self.waiter is None:
            # Bytes nobody asked for (a late body, a 408 before closing): the connection is
            # out of step with its requests and must not be reused.
            self.close()
            return
        self.got_bytes = True
        try:
            self.parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            self._fail(HTTPFailure(f"invalid HTTP response: {exc}"))
            self.close()

    def eof_received(self) -> bool:
        self._end_of_stream()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._end_of_stream()

    def _end_of_stream(self) -> None:
        self.keep_alive = False
        if self.waiter is None:
            return
        if self.until_close:
            self.on_message_complete()
        elif self.headers_done:
            self._fail(HTTPFailure("response cut short: connection closed before its end"))
        else:
            self._fail(HTTPFailure("connection closed before a response"))

    # httptools callbacks
    def on_message_begin(self) -> None:
        if self.waiter is None:  # a second response in the bytes of the first: out of step
            self.close()

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.headers_done = True
        status = self.parser.get_status_code()
        if status < 200:
            return  # an interim answer: the parser completes it as a message without a body
        if self.head:
            # httptools cannot be told that a HEAD reply has no body: it would wait for the
            # announced Content-Length. Complete now, and do not reuse the connection.
            self.keep_alive = False
            self.on_message_complete()
            return
        self.until_close = status not in (204, 304) and not any(
            name.lower() in _FRAMING_HEADERS for name, _ in self.headers
        )

    def on_body(self, body: bytes) -> None:
        room = self.max_body - len(self.body)
        if len(body) > room and not self.truncate:
            self._fail(HTTPFailure(f"response body over {self.max_body} bytes"))
            self.close()
            return
        if room > 0:
            self.body += body[:room]

    def on_message_complete(self) -> None:
        status = self.parser.get_status_code()
        if status < 200:
            if status == 101:  # never asked for: the connection now speaks something else
                self._fail(HTTPFailure("invalid HTTP response: unexpected 101 upgrade"))
                self.close()
                return
            # 100 Continue, 103 Early Hints...: the final response follows on this connection.
            self.headers = []
            self.headers_done = False
            return
        fut, self.waiter = self.waiter, None
        self.until_close = False
        if fut is None or fut.done():
            return
        self.keep_alive = self.keep_alive and self.parser.should_keep_alive()
        fut.set_result(HTTPResponse(status, bytes(self.body), self.headers))

    # client side
    def request(
        self, data: bytes, *, head: bool, max_body: int, truncate: bool
    ) -> asyncio.Future[HTTPResponse]:
        assert self.transport is not None
        self.body = bytearray()
        self.headers = []
        self.max_body, self.truncate, self.head = max_body, truncate, head
        self.headers_done = self.got_bytes = self.until_close = False
        self.waiter = self.loop.create_future()
        self.transport.write(data)
        return self.waiter

    def _fail(self, exc: HTTPFailure) -> None:
        fut, self.waiter = self.waiter, None
        if fut is not None and not fut.done():
            fut.set_exception(exc)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class LeanHTTPClient:
    """Send requests over pooled keep-alive connections (one event loop per client).

    ::

        client = LeanHTTPClient()
        response = await client.request("POST", "http://127.0.0.1:8000/hook",
                                        headers=[("Content-Type", "text/plain")], body=b"hi",
                                        timeout=10)
        client.close()
    """

    def __init__(self, *, max_idle_per_origin: int = 128) -> None:
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._targets: dict[str, _Target] = {}
        self._max_idle = max_idle_per_origin
        self._ssl: ssl.SSLContext | None = None

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Sequence[tuple[str, str]],
        body: bytes = b"",
        timeout: float,
        max_body: int = DEFAULT_MAX_BODY,
        truncate: bool = False,
        resend_stale: bool = True,
    ) -> HTTPResponse:
        """One request; raises :class:`HTTPFailure` without an answer within ``timeout`` s.

        A response body over ``max_body`` bytes is an error, unless ``truncate`` keeps its
        first ``max_body`` bytes (the pusher only reads the start of an error body).
        """
        target = self._target(url)
        lines = [method.encode("ascii"), b" ", target.target]
        if body or method not in ("GET", "HEAD"):
            lines += [b"Content-Length: ", str(len(body)).encode(), b"\r\n"]
        for name, value in headers:
            if name.lower() not in _SKIP_HEADERS:
                if not _FORBIDDEN_IN_HEADERS.isdisjoint(name + value):
                    # CR/LF would let a value inject headers or a second request.
                    raise HTTPFailure(f"header {name[:40]!r} has a line break or NUL", unsent=True)
                lines.append(f"{name}: {value}\r\n".encode())
        lines += [b"\r\n", body]
        data = b"".join(lines)
        if _tracing.current() is not None:
            traced = self._traced(method, target, data, timeout, max_body, truncate, resend_stale)
            return await traced
        try:
            async with asyncio.timeout(timeout):
                return await self._exchange(
                    target, data, method == "HEAD", max_body, truncate, resend_stale
                )
        except TimeoutError:
            raise HTTPFailure(f"no answer within {timeout:g} s") from None

    async def _traced(
        self,
        method: str,
        target: _Target,
        data: bytes,
        timeout: float,
        max_body: int,
        truncate: bool,
        resend_stale: bool,
    ) -> HTTPResponse:
        attributes = {
            "http.request.method": method,
            "server.address": target.host,
            "server.port": target.port,
            "url.scheme": target.origin[0],
        }
        with _tracing.client_span(method, attributes) as span:
            try:
                async with asyncio.timeout(timeout):
                    response = await self._exchange(
                        target, data, method == "HEAD", max_body, truncate, resend_stale
                    )
            except TimeoutError:
                raise HTTPFailure(f"no answer within {timeout:g} s") from None
            if span is not None:
                span.set_attribute("http.response.status_code", response.status)
                if response.status >= 400:
                    _tracing.fail(span, str(response.status))
            return response

    async def _exchange(
        self,
        target: _Target,
        data: bytes,
        head: bool,
        max_body: int,
        truncate: bool,
        resend_stale: bool,
    ) -> HTTPResponse:
        conn = self._take_idle(target.origin)
        if conn is not None:
            try:
                return await self._send(conn, target, data, head, max_body, truncate)
            except HTTPFailure:
                if conn.got_bytes or not resend_stale:
                    raise
                # The peer closed the idle connection as we reused it: nothing was answered.
        conn = await self._connect(target)
        return await self._send(conn, target, data, head, max_body, truncate)

    async def _send(
        self,
        conn: _Connection,
        target: _Target,
        data: bytes,
        head: bool,
        max_body: int,
        truncate: bool,
    ) -> HTTPResponse:
        try:
            response = await conn.request(data, head=head, max_body=max_body, truncate=truncate)
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
            # The CA bundle httpx uses (certifi, or SSL_CERT_FILE / SSL_CERT_DIR when set), so
            # both backends trust exactly the same servers.
            ctx = self._ssl = self._ssl or httpx.create_ssl_context()
        try:
            _, protocol = await loop.create_connection(
                lambda: _Connection(loop),
                target.host,
                target.port,
                ssl=ctx,
                server_hostname=target.host if ctx else None,
            )
        except OSError as exc:
            raise HTTPFailure(f"connection failed: {exc.strerror or exc}", unsent=True) from None
        return protocol

    def _target(self, url: str) -> _Target:
        target = self._targets.get(url)
        if target is None:
            if len(self._targets) > 4096:
                self._targets.clear()
            target = self._targets[url] = _parse_target(url)
        return target

    def close(self) -> None:
        """Close the idle connections."""
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
        self._idle.clear()


def _parse_target(url: str) -> _Target:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise HTTPFailure(f"cannot send to {parts.scheme or 'a relative'} URL", unsent=True)
    tls = parts.scheme == "https"
    try:
        port = parts.port or (443 if tls else 80)
    except ValueError:
        raise HTTPFailure("invalid port in URL", unsent=True) from None
    host = parts.hostname
    host_header = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        host_header += f":{port}"
    path = quote(parts.path or "/", safe=_PATH_SAFE)
    if parts.query:
        path += "?" + quote(parts.query, safe=_PATH_SAFE + "?")
    target = f"{path} HTTP/1.1\r\nHost: {host_header}\r\n".encode()
    return _Target((parts.scheme, host, port), host, port, tls, target)
