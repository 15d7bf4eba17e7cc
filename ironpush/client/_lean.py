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
- idempotent requests may be *pipelined* (``pipeline=True``, the ack outbox's acks):
  up to ``pipeline_depth`` in flight on one connection, those of one event-loop turn written
  together (one ``send()`` for many acks, their answers read in one ``recv()``: see
  :mod:`._lean_connection`). A pipelined request the connection ended before answering is
  sent again once, alone on a connection; a server that answers some and closes on the rest
  gets no more pipelined requests from this client;
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
import re
import ssl
from collections.abc import Awaitable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast
from urllib.parse import quote, urlsplit

import httpx

from .. import _tracing
from ._lean_connection import DEFAULT_MAX_BODY as DEFAULT_MAX_BODY
from ._lean_connection import Batch, Connection, Exchange
from ._lean_connection import HTTPFailure as HTTPFailure
from ._lean_connection import HTTPResponse as HTTPResponse

_SKIP_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})
_PATH_SAFE = "/%:@!$&'()*+,;=-._~"
_FORBIDDEN_IN_HEADERS = frozenset("\r\n\x00")  # characters a header must not contain
# A path (and query) that quoting would leave as it is: most URLs, built from quoted segments.
_PLAIN_TAIL = re.compile(r"/[A-Za-z0-9/%:@!$&'()*+,;=._~?-]*")
_CACHE_LIMIT = 1024
T = TypeVar("T")
_NOT_SENT = HTTPFailure("not sent", unsent=True)  # a placeholder request_all always replaces


@dataclass(frozen=True, slots=True)
class _Origin:
    key: tuple[str, str, int]  # scheme, host, port
    host: str
    port: int
    tls: bool
    host_line: bytes  # b" HTTP/1.1\r\nHost: host:port\r\n"


@dataclass(slots=True)
class _Opening:
    """A pipelined connection being made: callers that need one wait for it (up to depth)."""

    future: asyncio.Future[Connection]
    waiters: int = 1


class _Pipes(list[Connection]):
    """The pipelined connections to one origin, and where :meth:`LeanHTTPClient._pipe` found
    room last."""

    __slots__ = ("cursor",)

    def __init__(self) -> None:
        super().__init__()
        self.cursor = 0


class LeanHTTPClient:
    """Send requests over pooled keep-alive connections (one event loop per client).

    ``request(..., pipeline=True)`` (idempotent requests only) sends up to ``pipeline_depth``
    requests back to back on one connection instead of one per connection; the others wait
    for an idle connection or open one::

        client = LeanHTTPClient()
        response = await client.request("POST", "http://127.0.0.1:8000/hook",
                                        headers=[("Content-Type", "text/plain")], body=b"hi",
                                        timeout=10)
        client.close()
    """

    def __init__(self, *, max_idle_per_origin: int = 128, pipeline_depth: int = 8) -> None:
        if pipeline_depth < 1:
            raise ValueError("pipeline_depth must be >= 1")
        self._idle: dict[tuple[str, str, int], list[Connection]] = {}
        self._pipes: dict[tuple[str, str, int], _Pipes] = {}
        self._opening: dict[tuple[str, str, int], _Opening] = {}
        # Origins that ended a pipeline midway (answered some, closed on the rest): from then
        # on their requests go one per connection.
        self._serial: set[tuple[str, str, int]] = set()
        self._origins: dict[str, _Origin] = {}
        self._lines: dict[tuple[str, str], bytes] = {}
        self._blocks: dict[tuple[tuple[str, str], ...], bytes] = {}
        self._max_idle = max_idle_per_origin
        self._depth = pipeline_depth
        self._ssl: ssl.SSLContext | None = None

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Iterable[tuple[str, str]],
        body: bytes = b"",
        timeout: float,
        max_body: int = DEFAULT_MAX_BODY,
        truncate: bool = False,
        resend_stale: bool = True,
        pipeline: bool = False,
    ) -> HTTPResponse:
        """One request; raises :class:`HTTPFailure` without an answer within ``timeout`` s.

        A response body over ``max_body`` bytes is an error, unless ``truncate`` keeps its
        first ``max_body`` bytes (the pusher only reads the start of an error body).
        ``pipeline`` (with ``resend_stale``: the request must be idempotent, as a request
        behind another on a connection that ends is sent again) lets the request share a
        connection with others in flight.
        """
        origin, data = self._encode(method, url, headers, body)
        head = method == "HEAD"
        piped = pipeline and resend_stale and not head and origin.key not in self._serial
        if _tracing.current() is not None:
            traced = self._traced(method, origin, data, timeout, max_body, truncate, resend_stale)
            return await traced
        if piped:
            # Its deadline is kept by its connection (one timer for all its requests).
            return await self._pipelined(origin, data, max_body, truncate, timeout)
        try:
            async with asyncio.timeout(timeout):
                return await self._exchange(origin, data, head, max_body, truncate, resend_stale)
        except TimeoutError:
            raise HTTPFailure(f"no answer within {timeout:g} s") from None

    async def request_all(
        self,
        method: str,
        url_dir: str,
        headers: Iterable[tuple[str, str]],
        items: Sequence[tuple[str, bytes]],
        *,
        timeout: float,
        max_body: int = DEFAULT_MAX_BODY,
    ) -> list[HTTPResponse | HTTPFailure]:
        """Idempotent requests that differ only in their URL's last segment and body, each
        ``(segment, body)`` of ``items`` sent to ``url_dir + segment`` (``url_dir`` ends with
        ``/``), each answer or failure in order: what :meth:`request` with ``pipeline=True``
        does for each, without a coroutine per request and with the URL and headers checked
        and encoded once (the ack outbox's batches). They are written together (one
        ``send()`` per connection); inside a span, a ``HEAD`` or to an origin that refused
        pipelining, each goes through :meth:`request`::

            answers = await client.request_all(
                "DELETE", f"{base}/messages/", headers, [("m1", b"{}"), ("m2", b"{}")],
                timeout=10,
            )
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        answers: list[HTTPResponse | HTTPFailure] = [_NOT_SENT] * len(items)
        batch = Batch(loop)
        sent: dict[int, tuple[_Origin, bytes, Connection, int, Exchange]] = {}
        alone: dict[int, Awaitable[HTTPResponse | HTTPFailure]] = {}
        pairs = tuple(headers)
        try:
            origin, dir_path = self._target(url_dir)
            block = self._header_block(pairs)
        except HTTPFailure as failure:  # the URL or a header: none of them can be sent
            return [failure] * len(items)
        by_itself = _tracing.current() is not None or method == "HEAD" or origin.key in self._serial
        try:
            for index, (segment, body) in enumerate(items):
                if by_itself:  # (request checks and encodes it itself)
                    request = self.request(
                        method, url_dir + segment, headers=pairs, body=body, timeout=timeout,
                        max_body=max_body, pipeline=True,
                    )  # fmt: skip
                    alone[index] = asyncio.ensure_future(or_failure(request))
                    continue
                try:
                    if segment.isalnum() and segment.isascii():
                        path = dir_path + segment.encode()
                    else:  # checked (and quoted where needed) as request() would
                        path = self._target(url_dir + segment)[1]
                    data = self._assemble(method, path, origin, block, body)
                    # (A connection with room, most times: no coroutine to await for it.)
                    conn = self._pipe(origin.key) or await self._pipe_for(origin, deadline, timeout)
                except HTTPFailure as failure:
                    answers[index] = failure
                    continue
                exchange = conn.pipeline(
                    data, max_body=max_body, truncate=False, deadline=deadline, timeout=timeout,
                    batch=batch,
                )  # fmt: skip
                sent[index] = (origin, data, conn, conn.answered, exchange)
            batch.sealed()
            await batch.done  # each exchange ends by its deadline (its connection's timer)
        except BaseException:  # cancelled: the answers still due would be out of step
            for _, _, conn, _, exchange in sent.values():
                if exchange.outcome is None:
                    conn.close()
            for task in alone.values():
                cast(asyncio.Future[Any], task).cancel()
            raise
        for index, (origin, data, conn, answered, exchange) in sent.items():
            outcome = exchange.outcome
            assert outcome is not None  # the batch is done
            if isinstance(outcome, HTTPFailure) and not (exchange.started or exchange.expired):
                self._unanswered(origin, conn, answered)
                resent = self._resend(origin, data, max_body, False, deadline, timeout)
                alone[index] = or_failure(resent)
            else:
                answers[index] = outcome
        if alone:  # each alone: not pipelined, or pipelined and not answered
            for index, answer in zip(alone, await asyncio.gather(*alone.values()), strict=True):
                answers[index] = answer
        return answers

    async def _traced(
        self,
        method: str,
        origin: _Origin,
        data: bytes,
        timeout: float,
        max_body: int,
        truncate: bool,
        resend_stale: bool,
    ) -> HTTPResponse:
        attributes = {
            "http.request.method": method,
            "server.address": origin.host,
            "server.port": origin.port,
            "url.scheme": origin.key[0],
        }
        with _tracing.client_span(method, attributes) as span:
            try:
                async with asyncio.timeout(timeout):
                    response = await self._exchange(
                        origin, data, method == "HEAD", max_body, truncate, resend_stale
                    )
            except TimeoutError:
                raise HTTPFailure(f"no answer within {timeout:g} s") from None
            if span is not None:
                span.set_attribute("http.response.status_code", response.status)
                if response.status >= 400:
                    _tracing.fail(span, str(response.status))
            return response

    # --- one request per connection -----------------------------------------------------------

    async def _exchange(
        self,
        origin: _Origin,
        data: bytes,
        head: bool,
        max_body: int,
        truncate: bool,
        resend_stale: bool,
    ) -> HTTPResponse:
        conn = self._take_idle(origin.key)
        if conn is not None:
            exchange = conn.request(data, head=head, max_body=max_body, truncate=truncate)
            try:
                return await self._answer(conn, origin, exchange)
            except HTTPFailure:
                if exchange.started or not resend_stale:
                    raise
                # The peer closed the idle connection as we reused it: nothing was answered.
        conn = await self._connect(origin)
        exchange = conn.request(data, head=head, max_body=max_body, truncate=truncate)
        return await self._answer(conn, origin, exchange)

    async def _answer(self, conn: Connection, origin: _Origin, exchange: Exchange) -> HTTPResponse:
        assert exchange.future is not None  # not in a batch
        try:
            response = await exchange.future
        except BaseException:  # failure, timeout or cancellation: the connection is unusable
            conn.close()
            raise
        if conn.keep_alive and not conn.closed:
            idle = self._idle.setdefault(origin.key, [])
            if len(idle) < self._max_idle:
                idle.append(conn)
                return response
        conn.close()
        return response

    def _take_idle(self, origin: tuple[str, str, int]) -> Connection | None:
        idle = self._idle.get(origin)
        while idle:
            conn = idle.pop()
            if not conn.closed:
                return conn
        return None

    # --- pipelined requests -------------------------------------------------------------------

    async def _pipelined(
        self, origin: _Origin, data: bytes, max_body: int, truncate: bool, timeout: float
    ) -> HTTPResponse:
        deadline = asyncio.get_running_loop().time() + timeout
        conn = await self._pipe_for(origin, deadline, timeout)
        answered = conn.answered
        exchange = conn.pipeline(
            data, max_body=max_body, truncate=truncate, deadline=deadline, timeout=timeout
        )
        assert exchange.future is not None  # not in a batch
        try:
            return await exchange.future
        except HTTPFailure:
            if exchange.started or exchange.expired:
                raise
            self._unanswered(origin, conn, answered)
        except BaseException:  # cancellation: the answers would be out of step
            conn.close()
            raise
        return await self._resend(origin, data, max_body, truncate, deadline, timeout)

    async def _pipe_for(self, origin: _Origin, deadline: float, timeout: float) -> Connection:
        """A pipelined connection to ``origin`` with room for one more request (opened
        when there is none, by ``deadline``)."""
        conn = self._pipe(origin.key)
        if conn is not None:
            return conn
        try:
            async with asyncio.timeout_at(deadline):
                return await self._open_pipe(origin)
        except TimeoutError:
            raise HTTPFailure(f"no answer within {timeout:g} s") from None

    def _unanswered(self, origin: _Origin, conn: Connection, answered: int) -> None:
        """A pipelined request's connection ended before its answer, ``answered`` answers
        into it: when answers came for requests ahead of it, this server does not take
        pipelined requests (it ended the pipeline midway): one per connection from now."""
        if conn.answered > answered:
            self._serial.add(origin.key)

    async def _resend(
        self,
        origin: _Origin,
        data: bytes,
        max_body: int,
        truncate: bool,
        deadline: float,
        timeout: float,
    ) -> HTTPResponse:
        """A pipelined request that was not answered (an idempotent one) sent again, alone on
        a connection, within what is left of its deadline."""
        try:
            async with asyncio.timeout_at(deadline):
                return await self._exchange(origin, data, False, max_body, truncate, True)
        except TimeoutError:
            raise HTTPFailure(f"no answer within {timeout:g} s") from None

    def _pipe(self, key: tuple[str, str, int]) -> Connection | None:
        """A pipelined connection to ``key`` with room for one more request, looked for from
        the one found last (those before it are usually full: a batch fills them in turn)."""
        pipes = self._pipes.get(key)
        if not pipes:
            return None
        count, depth = len(pipes), self._depth
        i = pipes.cursor if pipes.cursor < count else 0
        for _ in range(count):
            conn = pipes[i]
            if conn.closed or not conn.keep_alive:
                pipes[:] = [c for c in pipes if not c.closed and c.keep_alive]
                return self._pipe(key)
            if len(conn.pending) < depth:
                pipes.cursor = i
                return conn
            i = i + 1 if i + 1 < count else 0
        return None

    async def _open_pipe(self, origin: _Origin) -> Connection:
        opening = self._opening.get(origin.key)
        if opening is not None and opening.waiters < self._depth:
            opening.waiters += 1
            return await asyncio.shield(opening.future)
        opening = self._opening[origin.key] = _Opening(asyncio.get_running_loop().create_future())
        try:
            conn = await self._connect(origin)
        except BaseException as exc:
            failure = exc if isinstance(exc, HTTPFailure) else HTTPFailure("connection failed")
            opening.future.set_exception(failure)
            opening.future.exception()  # retrieved: maybe nobody else waits
            raise
        finally:
            if self._opening.get(origin.key) is opening:
                del self._opening[origin.key]
        self._pipes.setdefault(origin.key, _Pipes()).append(conn)
        opening.future.set_result(conn)
        return conn

    # --- connections and targets --------------------------------------------------------------

    async def _connect(self, origin: _Origin) -> Connection:
        loop = asyncio.get_running_loop()
        ctx = None
        if origin.tls:
            # The CA bundle httpx uses (certifi, or SSL_CERT_FILE / SSL_CERT_DIR when set), so
            # both backends trust exactly the same servers.
            ctx = self._ssl = self._ssl or httpx.create_ssl_context()
        try:
            _, protocol = await loop.create_connection(
                lambda: Connection(loop),
                origin.host,
                origin.port,
                ssl=ctx,
                server_hostname=origin.host if ctx else None,
            )
        except OSError as exc:
            raise HTTPFailure(f"connection failed: {exc.strerror or exc}", unsent=True) from None
        return protocol

    def _encode(
        self, method: str, url: str, headers: Iterable[tuple[str, str]], body: bytes
    ) -> tuple[_Origin, bytes]:
        """The origin of a request and the request's bytes."""
        origin, path = self._target(url)
        return origin, self._assemble(method, path, origin, self._header_block(headers), body)

    @staticmethod
    def _assemble(method: str, path: bytes, origin: _Origin, block: bytes, body: bytes) -> bytes:
        """A request's bytes from its checked parts (``block``: its header lines)."""
        if body or method not in ("GET", "HEAD"):
            length = b"Content-Length: %d\r\n" % len(body)
            return b"".join((method.encode("ascii"), b" ", path, origin.host_line, length,
                             block, b"\r\n", body))  # fmt: skip
        return b"".join((method.encode("ascii"), b" ", path, origin.host_line, block, b"\r\n",
                         body))  # fmt: skip

    def _target(self, url: str) -> tuple[_Origin, bytes]:
        """The origin of ``url`` (parsed once per origin) and its request target (quoted)."""
        scheme_end = url.find("://")
        slash = url.find("/", scheme_end + 3) if scheme_end > 0 else -1
        if slash > 0:
            tail = url[slash:]
            if _PLAIN_TAIL.fullmatch(tail) and not tail.endswith("?"):
                origin = self._origins.get(url[:slash])
                if origin is None:
                    origin = self._origin(url[:slash])
                return origin, tail.encode()
        return _parse(url)

    def _origin(self, prefix: str) -> _Origin:
        if len(self._origins) >= _CACHE_LIMIT:
            self._origins.clear()
        origin = self._origins[prefix] = _parse(prefix + "/")[0]
        return origin

    def _header_block(self, headers: Iterable[tuple[str, str]]) -> bytes:
        """The header lines of ``headers`` (checked and encoded once per set: the calls of one
        client repeat the same few headers)."""
        pairs = tuple(headers)
        block = self._blocks.get(pairs)
        if block is None:
            block = b"".join([self._line(name, value) for name, value in pairs])
            if len(self._blocks) >= _CACHE_LIMIT:
                self._blocks.clear()
            self._blocks[pairs] = block
        return block

    def _line(self, name: str, value: str) -> bytes:
        """``name: value\\r\\n`` (checked once per pair: most headers repeat on every call)."""
        line = self._lines.get((name, value))
        if line is None:
            if name.lower() in _SKIP_HEADERS:
                line = b""
            elif not _FORBIDDEN_IN_HEADERS.isdisjoint(name + value):
                # CR/LF would let a value inject headers or a second request.
                raise HTTPFailure(f"header {name[:40]!r} has a line break or NUL", unsent=True)
            else:
                line = f"{name}: {value}\r\n".encode()
            if len(self._lines) >= _CACHE_LIMIT:
                self._lines.clear()
            self._lines[(name, value)] = line
        return line

    def close(self) -> None:
        """Close the idle connections (and the pipelined ones)."""
        for pool in (self._idle, self._pipes):
            for conns in pool.values():
                for conn in conns:
                    conn.close()
            pool.clear()


async def or_failure(call: Awaitable[T]) -> T | HTTPFailure:
    """``await call``, or the :class:`HTTPFailure` it raised."""
    try:
        return await call
    except HTTPFailure as failure:
        return failure


def _parse(url: str) -> tuple[_Origin, bytes]:
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
    host_line = f" HTTP/1.1\r\nHost: {host_header}\r\n".encode()
    return _Origin((parts.scheme, host, port), host, port, tls, host_line), path.encode()
