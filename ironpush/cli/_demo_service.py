"""The order service of ``ironpush demo``: one PushRouter route, four kinds of orders.

A Starlette app mounting a :class:`~ironpush.receiver.PushRouter` whose handler answers by
the order's kind (quick → 200, long → ``Defer`` → 202 then ack, flaky → ``Retry`` once,
poison → ``Drop``), and the :class:`Tracker` that narrates both sides on one clock::

    tracker = Tracker()
    app, router = build_service(tracker, secret_key, mq, max_deferred=deferred_capacity(1000))
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.routing import Mount

from ..devserver import DevServer
from ..receiver._outcomes import Defer, Drop, PushMessage, Retry
from ..receiver._router import PushRouter
from ..receiver._settings import Limits
from ._demo_tally import Ledger

QUEUE = "demo-orders"
ERROR_QUEUE = "demo-orders-errors"
SUBSCRIBER = "order-service"
KINDS = ("quick", "long", "flaky", "poison")
# Fast timings so the demo takes seconds; the hosted service's minimum retries_delay is 3 s.
RETRIES_DELAY = 1.0
LONG_JOB_SECONDS = 0.5
#: Rounds of pushes a batch's long orders get to find a free deferred slot (of the 1 + 3
#: tries, two spare rounds stay for a slow machine).
DEFER_ROUNDS = 2


@dataclass
class Tracker:
    """The narrated events of both sides, on one clock, in the order they happened.

    The timestamp is taken under the lock that appends the event, so the list is always in
    time order and printed timestamps never go backwards.
    """

    started: float = field(default_factory=time.monotonic)
    events: list[tuple[float, str, str, str]] = field(default_factory=list)
    runs: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: How each message ended (fed by the dev server's events in both modes).
    ledger: Ledger = field(default_factory=lambda: Ledger(QUEUE))

    def add(self, message_id: str, text: str, *, side: str = "service") -> None:
        with self.lock:
            self.events.append((time.monotonic() - self.started, message_id, side, text))

    def drain(self, since: int) -> list[tuple[float, str, str, str]]:
        with self.lock:
            return self.events[since:]

    def on_server_event(self, event: dict[str, Any]) -> None:
        """A dev server event (called on the server's loop) as an ``ironmq`` line."""
        text = _server_line(event)
        if text and event.get("queue") == QUEUE:
            self.add(str(event.get("message_id")), text, side="ironmq")


def _server_line(event: dict[str, Any]) -> str | None:
    kind, outcome = event.get("type"), event.get("outcome")
    if kind == "push":
        code = event.get("status_code") or "no answer"
        then = {
            "delivered": "deleted for this subscriber",
            "deferred": f"reserved for {RETRIES_DELAY:g}s, waiting for the ack",
            "retrying": f"will push again in {RETRIES_DELAY:g}s",
            "failed": "no try left: error",
        }.get(str(outcome), str(outcome))
        return f"push try {event.get('try')}/{event.get('tries')} answered {code} → {then}"
    if kind == "ack":
        how = "API delete" if event.get("via") == "api" else "message URL"
        result = "deleted" if outcome == "acked" else f"refused ({event.get('msg')})"
        return f"ack via {how} → {result}"
    if kind == "expired":
        return "202 not acknowledged in time → pushed again"
    if kind == "error_queue":
        return f"report posted to {event.get('error_queue')}"
    return None


def deferred_capacity(messages: int | None) -> int:
    """``max_deferred`` for a run: the default, or enough for a batch's long orders to find a
    slot within :data:`DEFER_ROUNDS` rounds of pushes (each round lasts ``retries_delay``,
    twice a job's time: every slot frees once per round). With the default 32 slots, 250
    long orders need 8 rounds and 3 retries give 4: the rest failed."""
    default = Limits().max_deferred
    if messages is None:
        return default
    long_orders = math.ceil(messages / len(KINDS))
    return max(default, math.ceil(long_orders / DEFER_ROUNDS))


def build_service(
    tracker: Tracker, secret_key: str, mq: DevServer, *, max_deferred: int | None = None
) -> tuple[Starlette, PushRouter]:
    """The demo's order service: one route whose handler behaves by the order's kind."""
    # claim_lease 2 s: well inside the demo's short retry budget ((3 + 1) x 1 s).
    router = PushRouter(
        secret_keys=[secret_key],
        client=mq.async_client(),
        claim_lease=2.0,
        limits=Limits(max_deferred=max_deferred or Limits().max_deferred),
    )

    async def long_job(message_id: str) -> None:
        # A slow job, after the 202; awaited, so a batch's hundreds of them need no threads.
        await asyncio.sleep(LONG_JOB_SECONDS)
        tracker.add(message_id, "job finished → ack goes through the outbox")

    @router.route(
        "/orders",
        queue=QUEUE,
        subscriber=SUBSCRIBER,
        json=True,
        retries=3,
        retries_delay=RETRIES_DELAY,
        error_queue=ERROR_QUEUE,  # a message out of tries is reported, never lost silently
    )
    def handle(msg: PushMessage) -> Defer | Retry | Drop | None:
        kind = msg.json().get("kind")
        tracker.runs[msg.id] += 1
        if kind == "long":
            tracker.add(msg.id, f"received → 202, job deferred ({LONG_JOB_SECONDS}s)")
            return Defer(long_job, msg.id)
        if kind == "flaky" and msg.attempt == 1:
            tracker.add(msg.id, "received → 503, downstream busy (IronMQ will retry)")
            return Retry("downstream busy")
        if kind == "poison":
            tracker.add(msg.id, "received → 200, dropped (malformed order)")
            return Drop("malformed order")
        tracker.add(msg.id, f"received (try {msg.attempt}) → 200, done")
        return None

    app = Starlette(routes=[Mount("/ironmq", app=router)], lifespan=router.lifespan)
    return app, router
