"""The dev server's event stream: push attempts, answers, acks, expiries, error-queue reports.

Every event is a small JSON object with an increasing ``id``, a ``type`` and an ``outcome``::

    {"id": 7, "ts": 1714557603.25, "at": "2024-05-01T10:00:03.250Z", "type": "push",
     "outcome": "retrying", "project": "dev", "queue": "orders", "message_id": "6295…",
     "subscriber": "billing", "try": 1, "tries": 4, "status_code": 503,
     "msg": "downstream busy", "duration_ms": 12.3, "reservation_id": "…", "retry_in": 1.0}

``type`` / ``outcome``: ``push`` (``delivered`` 200, ``deferred`` 202, ``retrying``, ``failed``
when no try is left), ``ack`` (``acked`` or ``refused``; ``via`` is ``api`` or ``url``),
``expired`` (a 202 not acknowledged within ``retries_delay``), ``error_queue`` (a report was
posted to the error queue) and ``replay`` (the inspector or ``ironpush replay`` pushed a message
again).

A stream starts with a ``hello`` frame (``{"type": "hello", "last_id", "boot"}``; ``boot``
changes when the server restarts, and ids start again from 1). Memory is bounded: the hub
keeps the latest events in a ring (for ``since``/``Last-Event-ID`` catch-up and the
inspector's first render), and each stream has a bounded queue. A client that
falls behind by more than that queue is **dropped** with a ``dropped`` notice (it may reconnect
with ``Last-Event-ID`` to catch up from the ring) instead of the server buffering without bound.

``GET /_dev/events`` serves them as Server-Sent Events; filters: ``queue``, ``subscriber``,
``outcome`` (each repeatable), ``project``, ``message_id``, ``since`` (Unix seconds: replay ring
events from then on) and ``after`` (an event id; the ``Last-Event-ID`` header does the same)::

    curl -N 'http://127.0.0.1:8080/_dev/events?queue=orders&outcome=failed'
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from .._errors import APIError
from .._event_outcomes import OUTCOMES
from ._records import iso

log = logging.getLogger("ironpush.devserver")

Event = dict[str, Any]
Listener = Callable[[Event], None]

RING_SIZE = 5_000
CLIENT_BUFFER = 1_000  # events a stream may fall behind before it is dropped
KEEPALIVE = 15.0  # seconds between SSE comments on a quiet stream (detects gone clients)
_DROPPED: Event = {"type": "dropped"}
_CLOSED: Event = {"type": "closed"}


def short_reservation(reservation_id: str | None) -> str:
    """The first 8 characters: enough to match a push with its ack, not enough to ack it."""
    return f"{reservation_id[:8]}…" if reservation_id else "-"


@dataclass(frozen=True)
class EventFilter:
    """Which events a stream wants (empty sets match everything)."""

    queues: frozenset[str] = frozenset()
    subscribers: frozenset[str] = frozenset()
    outcomes: frozenset[str] = frozenset()
    project: str | None = None
    message_id: str | None = None
    since: float | None = None
    after: int | None = None

    def matches(self, event: Mapping[str, Any]) -> bool:
        return (
            (not self.queues or event.get("queue") in self.queues)
            and (not self.subscribers or bool(_names(event) & self.subscribers))
            and (not self.outcomes or event.get("outcome") in self.outcomes)
            and (self.project is None or event.get("project") == self.project)
            and (self.message_id is None or event.get("message_id") == self.message_id)
        )

    def wants_backlog(self, event: Mapping[str, Any]) -> bool:
        """Part of the catch-up from the ring (``after`` wins over ``since``)."""
        if self.after is not None:
            return bool(event["id"] > self.after)
        return self.since is not None and event["ts"] >= self.since

    @classmethod
    def from_request(cls, request: Request) -> EventFilter:
        params = request.query_params
        outcomes = frozenset(params.getlist("outcome"))
        unknown = outcomes - set(OUTCOMES)
        if unknown:
            raise APIError(400, f"unknown outcome {sorted(unknown)[0]!r}; one of {OUTCOMES}")
        after_raw = params.get("after") or request.headers.get("last-event-id") or None
        return cls(
            queues=frozenset(params.getlist("queue")),
            subscribers=frozenset(params.getlist("subscriber")),
            outcomes=outcomes,
            project=params.get("project") or None,
            message_id=params.get("message_id") or None,
            since=_number(params.get("since"), "since"),
            after=None if after_raw is None else int(_number(after_raw, "after") or 0),
        )


def _names(event: Mapping[str, Any]) -> set[str]:
    names = set(event.get("subscribers") or ())
    if event.get("subscriber"):
        names.add(event["subscriber"])
    return names


def _number(raw: str | None, name: str) -> float | None:
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        raise APIError(400, f"{name} must be a number") from None
    if value != value or value < 0:  # NaN or negative
        raise APIError(400, f"{name} must be a number >= 0")
    return value


@dataclass(eq=False)
class Subscription:
    """One stream's bounded queue of pending events."""

    filter: EventFilter
    queue: asyncio.Queue[Event]
    dropped: bool = False


class EventHub:
    """Fans events out to streams and listeners; keeps the latest ``ring_size`` of them.

    Runs on the dev server's event loop (no locks)::

        hub = EventHub()
        hub.publish({"type": "push", "outcome": "delivered", "queue": "q", ...})
        hub.recent(EventFilter(queues=frozenset({"q"})), limit=50)
    """

    def __init__(self, *, ring_size: int = RING_SIZE, client_buffer: int = CLIENT_BUFFER) -> None:
        self.ring: deque[Event] = deque(maxlen=ring_size)
        self.client_buffer = client_buffer
        self.dropped_clients = 0
        self.boot = secrets.token_hex(6)  # new on every start: ids restart from 1 with it
        self._ids = itertools.count(1)
        self._subscriptions: set[Subscription] = set()
        self._listeners: list[Listener] = []

    @property
    def last_id(self) -> int:
        return int(self.ring[-1]["id"]) if self.ring else 0

    @property
    def streams(self) -> int:
        return len(self._subscriptions)

    def publish(self, fields: Mapping[str, Any]) -> Event:
        """Stamp ``fields`` with an id and the time, keep it, and hand it to every subscriber."""
        now = time.time()
        event: Event = {"id": next(self._ids), "ts": round(now, 6), "at": iso(now), **fields}
        self.ring.append(event)
        for sub in list(self._subscriptions):
            if sub.filter.matches(event):
                self._offer(sub, event)
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:  # a listener's bug must not break the pusher
                log.exception("dev server: event listener failed")
        return event

    def _offer(self, sub: Subscription, event: Event) -> None:
        try:
            sub.queue.put_nowait(event)
        except asyncio.QueueFull:
            self._drop(sub)

    def _drop(self, sub: Subscription) -> None:
        # Free what it holds and leave only the notice: memory stays bounded.
        self._subscriptions.discard(sub)
        sub.dropped = True
        self.dropped_clients += 1
        while not sub.queue.empty():
            sub.queue.get_nowait()
        sub.queue.put_nowait(_DROPPED)

    def recent(self, flt: EventFilter, *, limit: int = 100) -> list[Event]:
        """The latest ``limit`` ring events matching ``flt``, oldest first."""
        found = [e for e in reversed(self.ring) if flt.matches(e)][:limit]
        return found[::-1]

    def subscribe(self, flt: EventFilter) -> tuple[Subscription, list[Event]]:
        """A new stream and its catch-up from the ring (taken atomically: nothing missed)."""
        sub = Subscription(flt, asyncio.Queue(self.client_buffer))
        backlog = [e for e in self.ring if flt.wants_backlog(e) and flt.matches(e)]
        self._subscriptions.add(sub)
        return sub, backlog

    def unsubscribe(self, sub: Subscription) -> None:
        self._subscriptions.discard(sub)

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(event)`` for every event (on the server's loop; keep it quick)."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def close(self) -> None:
        """End every stream (the server is stopping: don't make it wait for open streams)."""
        for sub in list(self._subscriptions):
            self._subscriptions.discard(sub)
            while not sub.queue.empty():
                sub.queue.get_nowait()
            sub.queue.put_nowait(_CLOSED)

    def clear(self) -> None:
        self.ring.clear()


# --------------------------------------------------------------------------- Server-Sent Events


def sse(event: Mapping[str, Any], *, name: str | None = None) -> str:
    """One SSE frame: ``id``, ``event`` (the type) and the JSON ``data`` line (with ``text``,
    the event's :func:`describe` line)."""
    head = f"id: {event['id']}\n" if "id" in event else ""
    data = json.dumps({**event, "text": describe(event)} if "id" in event else dict(event))
    return f"{head}event: {name or event['type']}\ndata: {data}\n\n"


async def stream(
    hub: EventHub, flt: EventFilter, *, keepalive: float = KEEPALIVE
) -> AsyncIterator[str]:
    """The SSE body: the catch-up, then live events, keep-alive comments when quiet."""
    sub, backlog = hub.subscribe(flt)
    try:
        yield "retry: 1000\n" + sse({"type": "hello", "last_id": hub.last_id, "boot": hub.boot})
        for event in backlog:
            yield sse(event)
        while True:
            try:
                event = await asyncio.wait_for(sub.queue.get(), keepalive)
            except TimeoutError:
                yield ": keepalive\n\n"
                continue
            if event is _CLOSED:
                return
            if event is _DROPPED:
                notice = {
                    "type": "dropped",
                    "msg": f"this stream fell more than {hub.client_buffer} events behind and "
                    "was dropped; reconnect with Last-Event-ID to catch up from the ring",
                }
                yield sse(notice)
                return
            yield sse(event)
    finally:
        hub.unsubscribe(sub)


async def events_endpoint(request: Request, hub: EventHub) -> Response:
    """``GET /_dev/events``: the stream, filtered by the query (see the module docstring)."""
    flt = EventFilter.from_request(request)
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(hub, flt), media_type="text/event-stream", headers=headers)


# --------------------------------------------------------------------------- one line per event

_VIA = {"api": "API delete", "url": "message URL"}


def describe(event: Mapping[str, Any]) -> str:
    """One human line for an event (the dev server's log line and ``ironpush tail``'s text)."""
    kind = event.get("type")
    where = f"{event.get('queue')} {event.get('message_id')}"
    if kind == "push":
        return f"push {where} → {event.get('subscriber')} {_push_detail(event)}"
    if kind == "ack":
        via = _VIA.get(str(event.get("via")), str(event.get("via")))
        result = "acked" if event.get("outcome") == "acked" else f"refused ({event.get('msg')})"
        rsv = short_reservation(event.get("reservation_id"))
        return f"ack {where} ← {event.get('subscriber')} via {via}, reservation {rsv}: {result}"
    if kind == "expired":
        rsv = short_reservation(event.get("reservation_id"))
        return (
            f"expired {where} → {event.get('subscriber')}: 202 of try {event.get('try')} not "
            f"acknowledged within retries_delay ({_seconds(event.get('retries_delay'))}), "
            f"reservation {rsv}"
        )
    if kind == "error_queue":
        failures = "; ".join(
            f"{f.get('name')}: {f.get('code') or 'no answer'} {f.get('msg') or ''}".rstrip()
            for f in event.get("failures") or ()
        )
        return (
            f"error-queue {where} → {event.get('error_queue')} as report "
            f"{event.get('report_id')} ({failures})"
        )
    if kind == "replay":
        names = ", ".join(event.get("subscribers") or ()) or "every subscriber"
        return f"replay {where} → {names} ({event.get('how')})"
    return f"{kind} {json.dumps(dict(event))}"


def _push_detail(event: Mapping[str, Any]) -> str:
    code = event.get("status_code")
    answer = str(code) if code is not None else "no answer"
    reason = f" ({event['msg']})" if event.get("msg") else ""
    outcome = event.get("outcome")
    if outcome == "deferred":
        rsv = short_reservation(event.get("reservation_id"))
        then = f"deferred, reservation {rsv} awaits an ack"
    elif outcome == "retrying":
        wait = event.get("retry_in")
        then = "retrying" + (f" in {_seconds(wait)}" if wait else " at once")
    elif outcome == "failed":
        then = "failed: no try left"
    else:
        then = str(outcome)
    ms = event.get("duration_ms")
    took = f" in {ms:.1f} ms" if isinstance(ms, int | float) else ""
    return f"try {event.get('try')}/{event.get('tries')}: {answer}{reason}{took} → {then}"


def _seconds(value: Any) -> str:
    return f"{value:g}s" if isinstance(value, int | float) else "?"
