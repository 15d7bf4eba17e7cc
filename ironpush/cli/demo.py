"""``ironpush demo``: watch pushes flow end to end, on this machine, with nothing configured.

It starts the dev server and a small order service (a Starlette app mounting a
:class:`~ironpush.receiver.PushRouter`) in-process on 127.0.0.1, registers the service's route
exactly like ``ironpush subscribe --app`` would, posts messages, and shows what happens to each:

- a **quick** order: the handler returns ``None`` → 200, done;
- a **long** order: the handler returns ``Defer(job)`` → 202 at once, the job runs, the router
  acknowledges it afterwards through its outbox;
- a **flaky** order: the first try fails (``Retry`` → 503), IronMQ pushes again after
  ``retries_delay`` and the second try succeeds;
- a **poison** order: ``Drop(reason)`` → 200 and recorded as dropped, so it stops retrying.

With ``--messages N`` it posts N orders of those kinds and shows a progress bar and the
throughput instead of every event.
"""

from __future__ import annotations

import json
import secrets
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.routing import Mount

from ..client.models import PushStatus
from ..client.sync_client import IronMQ
from ..devserver import DevServer
from ..errors import NotFound
from ..receiver.outcomes import Defer, Drop, PushMessage, Retry
from ..receiver.registration import sync_subscriptions
from ..receiver.router import PushRouter
from ..server_thread import ServerThread
from .rendering import table

__all__ = ["DemoResult", "run_demo"]

QUEUE = "demo-orders"
ERROR_QUEUE = "demo-orders-errors"
SUBSCRIBER = "order-service"
KINDS = ("quick", "long", "flaky", "poison")
# Fast timings so the demo takes seconds; the hosted service's minimum retries_delay is 3 s.
RETRIES_DELAY = 1.0
LONG_JOB_SECONDS = 0.5

Echo = Callable[[str], None]
#: What a run saw: push statuses and kind by message id (all, or a sample), seconds taken.
Observed = tuple[dict[str, list["PushStatus"]], dict[str, str], float]


@dataclass
class Tracker:
    """Events the demo service reports, in order, shared between threads."""

    started: float = field(default_factory=time.monotonic)
    events: list[tuple[float, str, str]] = field(default_factory=list)
    runs: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, message_id: str, text: str) -> None:
        with self.lock:
            self.events.append((time.monotonic() - self.started, message_id, text))

    def drain(self, since: int) -> list[tuple[float, str, str]]:
        with self.lock:
            return self.events[since:]


def build_service(tracker: Tracker, secret_key: str, mq: DevServer) -> tuple[Starlette, PushRouter]:
    """The demo's order service: one route whose handler behaves by the order's kind."""
    router = PushRouter(secret_keys=[secret_key], client=mq.async_client())

    def long_job(message_id: str) -> None:
        time.sleep(LONG_JOB_SECONDS)  # a slow job; it runs in a worker thread, after the 202
        tracker.add(message_id, "job finished → ack goes through the outbox")

    @router.route(
        "/orders",
        queue=QUEUE,
        subscriber=SUBSCRIBER,
        json=True,
        retries=3,
        retries_delay=RETRIES_DELAY,
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


@dataclass
class DemoResult:
    """What the demo observed; ``ok`` is the exit status's source."""

    statuses: dict[str, list[PushStatus]]
    kinds: dict[str, str]
    counters: dict[str, int]
    elapsed: float
    error_queue_size: int

    @property
    def ok(self) -> bool:
        done = all(s and all(p.status == "deleted" for p in s) for s in self.statuses.values())
        return done and len(self.statuses) == len(self.kinds) and self.error_queue_size == 0


def run_demo(
    *, messages: int | None = None, echo: Echo | None = None, timeout: float = 120.0
) -> DemoResult:
    """Run the demo; ``messages=None`` is the narrated tour, a number runs a batch."""
    say: Echo = echo or print
    tracker = Tracker()
    secret_key = secrets.token_urlsafe(32)
    with DevServer(push_timeout=10.0) as mq, mq.client() as client:
        app, router = build_service(tracker, secret_key, mq)
        with ServerThread(app) as service:
            say(f"dev server      {mq.url}   (IronMQ v3 API + pusher)")
            say(f"order service   {service.url}/ironmq/orders   (a PushRouter in Starlette)")
            report = sync_subscriptions(client, router.subscriptions(service.url + "/ironmq"))
            say(
                f"subscribed      {QUEUE} → {SUBSCRIBER}: {report.changes[0].action}, "
                f"retries=3, retries_delay={RETRIES_DELAY}s (hosted minimum: 3 s)\n"
            )
            kinds = _kinds(messages)
            run = _tour if messages is None else _batch
            statuses, seen_kinds, elapsed = run(client, tracker, kinds, say, timeout)
            return DemoResult(
                statuses,
                seen_kinds,
                router.counters.snapshot(),
                elapsed,
                _size(client, ERROR_QUEUE),
            )


def _size(client: IronMQ, queue: str) -> int:
    try:
        return client.queue(queue).size()
    except NotFound:  # IronMQ creates the error queue with its first report
        return 0


def _kinds(messages: int | None) -> list[str]:
    if messages is None:
        return list(KINDS)
    return [KINDS[i % len(KINDS)] for i in range(messages)]


def _post(client: IronMQ, kinds: list[str]) -> dict[str, str]:
    queue = client.queue(QUEUE)
    ids: dict[str, str] = {}
    for start in range(0, len(kinds), 100):
        chunk = kinds[start : start + 100]
        bodies = [json.dumps({"kind": k, "n": start + i}) for i, k in enumerate(chunk)]
        ids.update(zip(queue.post(*bodies), chunk, strict=True))
    return ids


def _tour(
    client: IronMQ, tracker: Tracker, kinds: list[str], say: Echo, timeout: float
) -> Observed:
    started = time.monotonic()
    ids = _post(client, kinds)
    for message_id, kind in ids.items():
        say(f"posted          {kind:<7} {message_id}")
    say("")
    queue = client.queue(QUEUE)
    shown = 0
    last: dict[str, str] = {}
    statuses: dict[str, list[PushStatus]] = {}
    deadline = started + timeout
    while time.monotonic() < deadline:
        for at, message_id, text in tracker.drain(shown):
            say(f"+{at:5.2f}s  {ids.get(message_id, '?'):<7} {message_id}  {text}")
            shown += 1
        for message_id, kind in ids.items():
            statuses[message_id] = queue.get_message_push_statuses(message_id)
            summary = ", ".join(f"{s.status}" for s in statuses[message_id])
            if summary and summary != last.get(message_id):
                last[message_id] = summary
                at = time.monotonic() - tracker.started
                say(f"+{at:5.2f}s  {kind:<7} {message_id}  push status: {summary}")
        if all(s and all(p.done for p in s) for s in statuses.values()):
            break
        time.sleep(0.05)
    elapsed = time.monotonic() - started
    rows = [
        {
            "kind": ids[m],
            "message": m,
            "handler_runs": tracker.runs[m],
            "status": s[0].status if s else None,
            "code": s[0].status_code if s else None,
            "tries": s[0].tries if s else None,
        }
        for m, s in statuses.items()
    ]
    say("\n" + table(rows, ["kind", "message", "handler_runs", "status", "code", "tries"]))
    return statuses, ids, elapsed


def _batch(
    client: IronMQ, tracker: Tracker, kinds: list[str], say: Echo, timeout: float
) -> Observed:
    queue = client.queue(QUEUE)
    started = time.monotonic()
    ids = _post(client, kinds)
    posted = time.monotonic() - started
    total, remaining = len(ids), len(ids)
    tty = sys.stdout.isatty()
    next_line = 0.0
    while remaining and time.monotonic() - started < timeout:
        remaining = queue.size()  # a push message leaves the queue once every push is done
        done = total - remaining
        rate = done / max(time.monotonic() - started, 1e-9)
        bar = "#" * (30 * done // total)
        line = f"[{bar:<30}] {done}/{total} done  {rate:6.0f} msg/s"
        if tty:
            sys.stdout.write("\r" + line)
            sys.stdout.flush()
        elif time.monotonic() >= next_line or not remaining:
            say(line)
            next_line = time.monotonic() + 1.0
        if remaining:
            time.sleep(0.1)
    if tty:
        sys.stdout.write("\n")
    elapsed = time.monotonic() - started
    statuses = {m: queue.get_message_push_statuses(m) for m in list(ids)[:: max(1, total // 50)]}
    sampled = {m: ids[m] for m in statuses}
    say(
        f"\n{total} messages: posted in {posted:.2f}s, all pushes finished in {elapsed:.2f}s "
        f"→ {total / elapsed:.0f} messages/s end to end"
    )
    return statuses, sampled, elapsed


def summary_rows(counters: dict[str, int]) -> list[dict[str, Any]]:
    """The receiver's counters worth showing: the main outcomes, and any other that moved."""
    main = ("received", "acked", "deferred", "retried", "dropped", "duplicates")
    return [{"counter": n, "value": v} for n, v in counters.items() if n in main or v]
