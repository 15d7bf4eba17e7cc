"""uvicorn's httptools protocol with the limits a public endpoint needs (``ironpush serve``).

uvicorn bounds the request body (the app reads it), idle keep-alive connections and the number
of connections (``--limit-concurrency``: beyond it, *every* request gets 503), but not the
request head, nor a client that connects and sends nothing or sends its head a byte at a time
(slowloris): each such connection holds memory and a file descriptor, and ~1,000 of them from
one anonymous client made every signed push answer 503. This protocol adds:

- **head size**: more than ``max_head_bytes`` of request line and headers → ``431`` and close
  (httptools buffers a header value until it ends, so without this one 32 MB header costs
  32 MB);
- **header count**: more than ``max_headers`` header fields → ``431`` and close;
- **head time**: a request's line and headers must arrive within ``timeout_head`` seconds of
  the connection opening, or of the request's first byte on a kept-alive connection:
  otherwise ``408`` and close (silent connections are just closed);
- **request time**: the whole request (head and body) within ``timeout_request`` seconds,
  likewise (a body that stalls while the app waits for it: closed);
- **per-address pending heads**: at most ``limit_pending_per_peer`` connections from one
  client address may be waiting for their head at once (fresh ones included; idle kept-alive
  ones are not: uvicorn's keep-alive timeout bounds them); one more gets ``503`` and close
  (:class:`PendingHeads`);
- **complete requests first**: a request whose head is complete when the worker is at
  ``--limit-concurrency`` takes the place of the oldest connection still waiting for its head
  (closed) instead of getting 503, so stalled connections from many addresses cannot starve
  real pushes either.

``ironpush serve`` selects it with ``http="ironpush.cli._serve_http:BoundedHttpToolsProtocol"``
once :mod:`._serve_protocol` has checked that uvicorn's private hook points it builds on are
there and behave (otherwise uvicorn's own protocol serves, with one warning), and passes the
limits in the ``IRONPUSH_SERVE_LIMITS`` environment variable (uvicorn's config has no room for
them, and the spawned workers inherit the environment).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import weakref
from collections import Counter
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from ._serve_settings import HttpLimits

#: What this module overrides or calls on uvicorn's class (checked before it is used).
HOOKS = (
    "connection_made",
    "connection_lost",
    "data_received",
    "on_message_begin",
    "on_header",
    "on_headers_complete",
    "on_message_complete",
    "send_400_response",
)

logger = logging.getLogger("uvicorn.error")


@functools.cache
def _limits() -> HttpLimits:
    return HttpLimits.from_env()


class _HeadTooLarge(Exception):
    """Raised from a parser callback to stop parsing a head that broke a limit."""


class PendingHeads:
    """The connections of one server still waiting for a request head: per client address
    (for ``limit_pending_per_peer``) and oldest first (the one a complete request replaces)."""

    __slots__ = ("_oldest_first", "_per_peer")

    def __init__(self) -> None:
        self._oldest_first: dict[BoundedHttpToolsProtocol, str] = {}  # insertion = age
        self._per_peer: Counter[str] = Counter()

    def count(self, peer: str) -> int:
        return self._per_peer[peer]

    def add(self, connection: BoundedHttpToolsProtocol, peer: str) -> None:
        if connection not in self._oldest_first:
            self._oldest_first[connection] = peer
            self._per_peer[peer] += 1

    def discard(self, connection: BoundedHttpToolsProtocol) -> None:
        peer = self._oldest_first.pop(connection, None)
        if peer is not None:
            self._per_peer[peer] -= 1
            if not self._per_peer[peer]:
                del self._per_peer[peer]

    def oldest(self) -> BoundedHttpToolsProtocol | None:
        """The connection that has waited longest for its head and has no response running."""
        return next((c for c in self._oldest_first if c.replaceable), None)


#: One registry per uvicorn server (its ``ServerState``), gone with it.
_REGISTRIES: weakref.WeakKeyDictionary[Any, PendingHeads] = weakref.WeakKeyDictionary()


def pending_heads(server_state: Any) -> PendingHeads:
    """The :class:`PendingHeads` of the server whose state is ``server_state``."""
    registry = _REGISTRIES.get(server_state)
    if registry is None:
        registry = _REGISTRIES[server_state] = PendingHeads()
    return registry


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """:class:`uvicorn.protocols.http.httptools_impl.HttpToolsProtocol` with head limits,
    head and request timeouts and per-address pending heads (see the module docs)."""

    def __init__(self, *args: Any, limits: HttpLimits | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = limits or _limits()
        self.pending = pending_heads(self.server_state)
        self.peer = ""
        self._reading_head = True  # between requests too: the next bytes start a head
        self._head_bytes = 0
        self._header_count = 0
        self._head_rejected = False
        self._got_bytes = False
        self._started = 0.0  # when the current request's head began (loop time)
        self._timer: asyncio.TimerHandle | None = None

    @property
    def replaceable(self) -> bool:
        """True while no response of ours is running on this connection."""
        return self.cycle is None or self.cycle.response_complete

    # --- connections and the per-address limit ----------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        peername = transport.get_extra_info("peername")
        self.peer = str(peername[0]) if isinstance(peername, tuple) and peername else ""
        limit = self.limits.limit_pending_per_peer
        if limit and self.pending.count(self.peer) >= limit:
            self._head_rejected = True  # whatever it sends next is not read
            logger.warning(
                "%d connections from %s are waiting for their request head "
                "(--limit-pending-per-peer): refused with 503",
                limit,
                self.peer,
            )
            self._refuse(503, "too many connections waiting from this address")
            return
        self._start_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self.pending.discard(self)
        super().connection_lost(exc)

    def _start_head(self) -> None:
        """A request head begins (a new connection, or the first byte of the next request)."""
        if self._timer is None:
            self._started = self.loop.time()
            self._timer = self.loop.call_at(
                self._started + self.limits.head_deadline, self._head_timed_out
            )
        if self.peer:
            self.pending.add(self, self.peer)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _head_timed_out(self) -> None:
        self._timer = None
        self.pending.discard(self)
        if self.transport.is_closing():
            return
        if self._got_bytes and self._reading_head and self.replaceable:
            logger.warning(
                "request head not received in %g s (--timeout-head): closed with 408",
                self.limits.head_deadline,
            )
            self._refuse(408, "request timeout")
        else:  # nothing sent at all
            self.transport.close()

    def _request_timed_out(self) -> None:
        # The head came; the body stalls while the app waits for it: nothing to answer to.
        self._timer = None
        if not self.transport.is_closing():
            self.transport.close()

    def _make_room(self) -> None:
        """At ``--limit-concurrency``, close the connection that has waited longest for its
        head, so this complete request is served instead of refused."""
        limit = getattr(self, "limit_concurrency", None)
        connections = getattr(self, "connections", None)
        tasks = getattr(self, "tasks", ())
        if limit is None or connections is None or len(tasks) >= limit:
            return  # no limit, or the requests themselves fill it: uvicorn's 503 stands
        while len(connections) >= limit:
            victim = self.pending.oldest()
            if victim is None or victim is self:
                return
            self.pending.discard(victim)
            connections.discard(victim)  # uvicorn would count it until connection_lost runs
            victim._disarm()
            victim._head_rejected = True
            victim.transport.close()
            logger.warning(
                "at --limit-concurrency %d: closed a connection from %s still waiting for "
                "its request head, to serve a complete request",
                limit,
                victim.peer,
            )

    # --- head limits ------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._head_rejected:
            return
        self._got_bytes = True
        counting = self._reading_head
        if counting:
            self._start_head()  # the first byte of a new request on a kept-alive connection
        super().data_received(data)
        if counting and self._reading_head and not self.transport.is_closing():
            # The whole chunk belonged to an unfinished head (one that ends inside a chunk
            # resets the count in on_headers_complete).
            self._head_bytes += len(data)
            if self._head_bytes > self.limits.max_head_bytes:
                self._reject_head(f"request head over {self.limits.max_head_bytes} bytes")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._reading_head = True
        self._header_count = 0
        self._start_head()

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > self.limits.max_headers:
            self._head_rejected = True
            raise _HeadTooLarge  # stops the parser; send_400_response answers 431 instead
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._reading_head = False
        self._head_bytes = 0
        self.pending.discard(self)
        self._disarm()
        deadline = self._started + self.limits.timeout_request
        self._timer = self.loop.call_at(deadline, self._request_timed_out)
        self._make_room()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        self._reading_head = True
        super().on_message_complete()

    def send_400_response(self, msg: str) -> None:
        if self._head_rejected:
            self._reject_head(f"more than {self.limits.max_headers} header fields")
            return
        super().send_400_response(msg)

    def _reject_head(self, why: str) -> None:
        self._head_rejected = True
        logger.warning("request refused with 431: %s", why)
        self._refuse(431, "request header fields too large")

    def _refuse(self, status: int, text: str) -> None:
        body = text.encode()
        head = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            head.append(name + b": " + value + b"\r\n")
        head.append(b"content-type: text/plain; charset=utf-8\r\n")
        head.append(b"content-length: " + str(len(body)).encode() + b"\r\n")
        head.append(b"connection: close\r\n\r\n")
        self.transport.write(b"".join(head) + body)
        self.transport.close()
        self._disarm()
        self.pending.discard(self)
