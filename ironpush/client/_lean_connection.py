"""One HTTP/1.1 connection of the lean client (:mod:`ironpush.client._lean`): its exchanges
and the framing of their responses.

A connection carries one request at a time, or several (*pipelining*, RFC 9112 §9.3.2: the
requests go out back to back, the responses come back in the same order). Pipelined requests
written in the same event-loop turn leave in one ``write`` (one ``send()`` system call), and
their responses are usually read in one ``recv()``: what makes a busy outbox's acks cheap.

Each request is an :class:`Exchange`; ``started`` records whether a byte of its own response
arrived. An exchange that fails without one was not answered: for an idempotent request the
client may send it again (the server may or may not have processed it, which an idempotent
request allows)::

    exchange = connection.request(data, head=False, max_body=1024, truncate=False)
    response = await exchange.future
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from typing import cast

import httptools

from .._frozen import slot_init

DEFAULT_MAX_BODY = 16 * 1024 * 1024
_FRAMING_HEADERS = (b"content-length", b"transfer-encoding")


class HTTPFailure(Exception):
    """No usable HTTP answer: connection refused/reset, timeout, garbage or oversized response.

    ``unsent`` is true when the request certainly never reached the server (the connection
    could not be made), so even a non-idempotent call may be retried.
    """

    def __init__(self, reason: str, *, unsent: bool = False) -> None:
        super().__init__(reason)
        self.unsent = unsent


@slot_init
@dataclass(frozen=True, slots=True)
class HTTPResponse:
    status: int
    body: bytes  # at most ``max_body`` bytes (the rest is dropped when ``truncate`` is set)
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)


class Batch:
    """Pipelined exchanges awaited together (:meth:`Connection.pipeline` with ``batch``):
    ``done`` resolves once each has its ``outcome`` and the batch is :meth:`sealed` (no more
    exchanges to come: the first ones may end while a connection for the next is being made).
    One future for all, not one each: the ack outbox sends its acks this way::

        batch = Batch(loop)
        exchanges = [conn.pipeline(data, ..., batch=batch) for data in requests]
        batch.sealed()
        await batch.done
    """

    __slots__ = ("done", "left")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.done: asyncio.Future[None] = loop.create_future()
        self.left = 1  # the batch itself, until sealed

    def sealed(self) -> None:
        """No more exchanges join: ``done`` resolves when those in it have ended."""
        self.ended()

    def ended(self) -> None:
        self.left -= 1
        if self.left == 0 and not self.done.done():
            self.done.set_result(None)


@dataclass(eq=False, slots=True)
class Exchange:
    """One request on a connection and how its response ends: its ``future``, or (in a
    :class:`Batch`) its ``outcome``."""

    future: asyncio.Future[HTTPResponse] | None  # None: in a batch
    head: bool  # a HEAD request: its response has headers only
    max_body: int
    truncate: bool
    deadline: float = 0.0  # event-loop time after which it fails (pipelined requests)
    timeout: float = 0.0  # the seconds that deadline stands for (for the message)
    started: bool = False  # a byte of its response arrived
    expired: bool = False  # failed at its deadline
    batch: Batch | None = None
    outcome: HTTPResponse | HTTPFailure | None = None  # a batched exchange's, once ended

    def end(self, outcome: HTTPResponse | HTTPFailure) -> None:
        """Its response, or why there is none (once: later calls do nothing)."""
        future = self.future
        if future is None:
            if self.outcome is None and self.batch is not None:
                self.outcome = outcome
                self.batch.ended()
        elif not future.done():
            if isinstance(outcome, HTTPFailure):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)


class Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: requests in flight oldest first, each response framed as
    RFC 9112 says.

    A response ends at its ``Content-Length``, at the end of its chunked body, or (with
    neither) when the peer closes the connection. Anything else that ends early is an error:
    a body cut short must never pass for a complete answer. When the connection ends, the
    exchanges still waiting fail; those whose response had not begun fail with ``started``
    false.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.pending: deque[Exchange] = deque()
        self.closed = False
        self.keep_alive = True
        self.headers_done = False
        self.until_close = False  # the body is delimited by the end of the connection
        self.body = bytearray()
        self.headers: list[tuple[bytes, bytes]] = []
        self._out: list[bytes] = []  # requests of this event-loop turn, written together
        self.answered = 0  # final responses completed on this connection
        # One timer per connection, not one per request: it fires at the oldest deadline of
        # the requests in flight (then re-arms for the next one).
        self._timer: asyncio.TimerHandle | None = None

    @property
    def idle(self) -> bool:
        """Nothing in flight: the connection may take a request that must not wait."""
        return not self.pending

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses but have the same API
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if not self.pending:
            # Bytes nobody asked for (a late body, a 408 before closing): the connection is
            # out of step with its requests and must not be reused.
            self.close()
            return
        self.pending[0].started = True
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
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.pending:
            if self.until_close and not any(
                name.lower() in _FRAMING_HEADERS for name, _ in self.headers
            ):
                self.on_message_complete()
            elif self.headers_done:
                self._fail(HTTPFailure("response cut short: connection closed before its end"))
        self._fail_all("connection closed before a response")

    # httptools callbacks
    def on_message_begin(self) -> None:
        if not self.pending:  # a second response in the bytes of the last one: out of step
            self.close()
            return
        self.pending[0].started = True

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.headers_done = True
        status = self.parser.get_status_code()
        if status < 200 or not self.pending:
            return  # an interim answer: the parser completes it as a message without a body
        if self.pending[0].head:
            # httptools cannot be told that a HEAD reply has no body: it would wait for the
            # announced Content-Length. Complete now, and do not reuse the connection.
            self.keep_alive = False
            self.on_message_complete()
            return
        # Whether the body runs to the end of the connection is decided there (_end_of_stream):
        # most responses end at their Content-Length before, and need no look at their headers.
        self.until_close = status not in (204, 304)

    def on_body(self, body: bytes) -> None:
        if not self.pending:
            return
        exchange = self.pending[0]
        room = exchange.max_body - len(self.body)
        if len(body) > room and not exchange.truncate:
            self._fail(HTTPFailure(f"response body over {exchange.max_body} bytes"))
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
        if not self.pending:
            return
        exchange = self.pending.popleft()
        self.answered += 1
        response = HTTPResponse(status, bytes(self.body), self.headers)
        self.body, self.headers = bytearray(), []
        self.headers_done = self.until_close = False
        self.keep_alive = self.keep_alive and self.parser.should_keep_alive()
        exchange.end(response)
        if not self.keep_alive:
            # The server ends the connection after this answer: the requests behind it were
            # not answered (they may be sent again on another connection).
            self._fail_all("connection closed before a response")
            self.close()

    # client side
    def request(self, data: bytes, *, head: bool, max_body: int, truncate: bool) -> Exchange:
        """Send ``data`` now (one request); its :class:`Exchange`."""
        exchange = self._exchange(head, max_body, truncate)
        assert self.transport is not None
        self.transport.write(data)
        return exchange

    def pipeline(
        self,
        data: bytes,
        *,
        max_body: int,
        truncate: bool,
        deadline: float,
        timeout: float,
        batch: Batch | None = None,
    ) -> Exchange:
        """Queue ``data`` behind the requests in flight; the requests queued in this
        event-loop turn leave in one write at the end of it. Without an answer by
        ``deadline`` (event-loop time, ``timeout`` s after the request began) the exchange
        fails (``expired``) and the connection is closed. In a ``batch``, the exchange has
        no future of its own."""
        if batch is None:
            future: asyncio.Future[HTTPResponse] | None = self.loop.create_future()
        else:
            future = None
            batch.left += 1
        exchange = Exchange(future, False, max_body, truncate, deadline, timeout, batch=batch)
        self.pending.append(exchange)
        if self._timer is None:
            self._timer = self.loop.call_at(deadline, self._expire)
        if not self._out:
            self.loop.call_soon(self._flush)
        self._out.append(data)
        return exchange

    def _expire(self) -> None:
        self._timer = None
        if not self.pending:
            return
        now = self.loop.time()
        late = [e for e in self.pending if e.deadline <= now]
        if not late:
            self._timer = self.loop.call_at(min(e.deadline for e in self.pending), self._expire)
            return
        for exchange in late:
            exchange.expired = True
            exchange.end(HTTPFailure(f"no answer within {exchange.timeout:g} s"))
        # The answers still to come would be out of step: the others fail unanswered.
        self.close()

    def _exchange(self, head: bool, max_body: int, truncate: bool) -> Exchange:
        exchange = Exchange(self.loop.create_future(), head, max_body, truncate)
        self.pending.append(exchange)
        return exchange

    def _flush(self) -> None:
        out, self._out = self._out, []
        if self.transport is not None and not self.closed:
            self.transport.write(b"".join(out))

    def _fail(self, exc: HTTPFailure) -> None:
        if self.pending:
            self.pending.popleft().end(exc)
        self.body, self.headers = bytearray(), []
        self.headers_done = self.until_close = False

    def _fail_all(self, reason: str) -> None:
        while self.pending:
            self._fail(HTTPFailure(reason))

    def close(self) -> None:
        self.closed = True
        self.keep_alive = False
        if self.transport is not None:
            self.transport.close()
