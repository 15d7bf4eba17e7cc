"""``ironpush demo``: watch pushes flow end to end, on this machine, with nothing configured.

It starts the dev server and a small order service (a Starlette app mounting a
:class:`~ironpush.receiver.PushRouter`) in-process on 127.0.0.1, registers the service's route
exactly like ``ironpush subscribe --app`` would, posts messages, and tells what happens to each,
from both sides (``service`` lines come from the handler, ``ironmq`` lines from the dev server's
event stream), on one clock:

- a **quick** order: the handler returns ``None`` → 200, done;
- a **long** order: the handler returns ``Defer(job)`` → 202 at once, the job runs, the router
  acknowledges it afterwards through its outbox;
- a **flaky** order: the first try fails (``Retry`` → 503), IronMQ pushes again after
  ``retries_delay`` and the second try succeeds;
- a **poison** order: ``Drop(reason)`` → 200 and recorded as dropped, so it stops retrying.

With ``--messages N`` it posts N orders of those kinds and shows a progress bar and the
throughput instead of every event. Warnings logged meanwhile (late acks, busy answers) are not
printed over the bar: the summary counts and explains them.
"""

from __future__ import annotations

import json
import logging
import secrets
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import click
from starlette.applications import Starlette
from starlette.routing import Mount

from .._errors import NotFound
from ..client._models import PushStatus
from ..client._sync_client import IronMQ
from ..devserver import DevServer
from ..receiver._outcomes import Defer, Drop, PushMessage, Retry
from ..receiver._registration import sync_subscriptions
from ..receiver._router import PushRouter
from ..server_thread import ServerThread
from ._rendering import emit, push_status_row, table

__all__ = ["DemoResult", "run_cli", "run_demo", "summary_rows"]

QUEUE = "demo-orders"
ERROR_QUEUE = "demo-orders-errors"
SUBSCRIBER = "order-service"
KINDS = ("quick", "long", "flaky", "poison")
# Fast timings so the demo takes seconds; the hosted service's minimum retries_delay is 3 s.
RETRIES_DELAY = 1.0
LONG_JOB_SECONDS = 0.5
# Receiver outcomes that are not "handled, answered 200 at once" (see summary_rows).
NOT_DONE = ("deferred", "retried", "dropped", "duplicates", "busy", "rejected")
NEXT_STEPS = (
    "Next: run `ironpush dev` and open http://127.0.0.1:8080/_dev/ui to watch your own pushes "
    '(`eval "$(ironpush dev --env)"` points clients at it), then follow the quick start in the '
    "README."
)

Echo = Callable[[str], None]
#: What a run saw: push statuses and kind by message id (all, or a sample), seconds taken.
Observed = tuple[dict[str, list["PushStatus"]], dict[str, str], float]


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


def build_service(tracker: Tracker, secret_key: str, mq: DevServer) -> tuple[Starlette, PushRouter]:
    """The demo's order service: one route whose handler behaves by the order's kind."""
    # claim_lease 2 s: well inside the demo's short retry budget ((3 + 1) x 1 s).
    router = PushRouter(secret_keys=[secret_key], client=mq.async_client(), claim_lease=2.0)

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
    #: Warnings logged during the run, by logger: (how many, the first one's text).
    warnings: dict[str, tuple[int, str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        done = all(s and all(p.status == "deleted" for p in s) for s in self.statuses.values())
        return done and len(self.statuses) == len(self.kinds) and self.error_queue_size == 0


class _Held(logging.Handler):
    """Keeps ironpush's warnings of a run (counted by logger) instead of printing them."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.counts: Counter[str] = Counter()
        self.first: dict[str, str] = {}

    def emit(self, record: logging.LogRecord) -> None:
        self.counts[record.name] += 1
        self.first.setdefault(record.name, record.getMessage())


@contextmanager
def _held_warnings() -> Iterator[_Held]:
    # The narration and the summary tell what these warnings are about; printed as they come,
    # they would break the progress bar and repeat the story.
    logger = logging.getLogger("ironpush")
    held, propagate = _Held(), logger.propagate
    logger.addHandler(held)
    logger.propagate = False
    try:
        yield held
    finally:
        logger.removeHandler(held)
        logger.propagate = propagate


def run_demo(
    *, messages: int | None = None, echo: Echo | None = None, timeout: float = 120.0
) -> DemoResult:
    """Run the demo; ``messages=None`` is the narrated tour, a number runs a batch."""
    say: Echo = echo or print
    tracker = Tracker()
    secret_key = secrets.token_urlsafe(32)
    with _held_warnings() as held, DevServer(push_timeout=10.0) as mq, mq.client() as client:
        app, router = build_service(tracker, secret_key, mq)
        if messages is None:
            mq.engine.pusher.events.add_listener(tracker.on_server_event)
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
            counters = router.counters.snapshot()
            errors = _size(client, ERROR_QUEUE)
    warned = {name: (n, held.first[name]) for name, n in held.counts.items()}
    return DemoResult(statuses, seen_kinds, counters, elapsed, errors, warned)


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
        tracker.add(message_id, f"posted ({kind} order)", side="client")
    queue = client.queue(QUEUE)
    shown = 0
    statuses: dict[str, list[PushStatus]] = {}
    deadline = started + timeout
    while True:
        for at, message_id, side, text in tracker.drain(shown):
            say(f"+{at:5.2f}s  {ids.get(message_id, '?'):<7} {message_id}  {side:<7}  {text}")
            shown += 1
        finished = bool(statuses) and all(s and all(p.done for p in s) for s in statuses.values())
        if finished or time.monotonic() >= deadline:
            break
        time.sleep(0.05)
        statuses = {m: queue.get_message_push_statuses(m) for m in ids}
    time.sleep(0.05)  # the last ack line is on its way from the server's loop
    for at, message_id, side, text in tracker.drain(shown):
        say(f"+{at:5.2f}s  {ids.get(message_id, '?'):<7} {message_id}  {side:<7}  {text}")
    elapsed = time.monotonic() - started
    rows = [
        {
            "kind": ids[m],
            "message": m,
            "handler_runs": tracker.runs[m],
            "result": _result(ids[m], s),
            "tries": s[0].tries if s else None,
        }
        for m, s in statuses.items()
    ]
    say("\n" + table(rows, ["kind", "message", "handler_runs", "result", "tries"]))
    return statuses, ids, elapsed


def _result(kind: str, statuses: list[PushStatus]) -> str:
    """How the message ended, in words (not IronMQ's bare "deleted" + last status code)."""
    if not statuses or not all(s.done for s in statuses):
        return "not finished"
    s = statuses[0]
    if s.status != "deleted":
        return f"{s.status} ({s.status_code or 'no answer'})"
    if s.status_code == 202:
        return "acked after 202"
    if kind == "poison":
        return "dropped (200)"
    return "delivered (200)" if (s.tries or 1) == 1 else f"delivered on try {s.tries}"


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
        f"→ {total / elapsed:.0f} messages/s end to end.\n"
        f"This reflects the demo's deliberately slow service (every long order's job sleeps "
        f"{LONG_JOB_SECONDS}s, flaky orders wait {RETRIES_DELAY:g}s for their retry), not "
        "ironpush's speed: see benchmarks/README.md for measured throughput."
    )
    return statuses, sampled, elapsed


def summary_rows(counters: dict[str, int]) -> list[dict[str, Any]]:
    """The receiver's counters that matter here, each with what it counts (they add up)."""
    c = Counter(counters)
    done = c["received"] - sum(c[k] for k in NOT_DONE) - c["verification_failures"]
    meaning = {
        "received": "pushes that reached the service, retries included: "
        + " + ".join(
            f"{n} {label}"
            for n, label in (
                (done, "answered 200 at once"),
                (c["deferred"], "deferred (202)"),
                (c["retried"], "retried (503)"),
                (c["dropped"], "dropped"),
                (c["duplicates"], "duplicates"),
                (c["busy"], "busy"),
            )
            if n or label.startswith("answered")
        ),
        "acked": f"{done} answered 200 at once + {c['acked'] - done} deferred job(s) "
        "acknowledged afterwards through the outbox",
        "deferred": "answered 202: the job ran after the answer, then its ack was sent",
        "retried": "answered 503 (Retry): IronMQ pushed them again after retries_delay",
        "dropped": "answered 200 but recorded as dropped (poison orders stop retrying)",
        "duplicates": "redeliveries of handled messages, answered 200 without the handler",
        "busy": "answered 503 because the deferred-job capacity was full: IronMQ pushed them "
        "again later (back-pressure, nothing lost)",
        "late_acks": "acks refused because the 202 reservation had run out (retries_delay "
        f"{RETRIES_DELAY:g}s here): the message was pushed again and acknowledged then",
    }
    always = ("received", "acked", "deferred", "retried", "dropped", "duplicates")
    return [
        {"counter": name, "value": c[name], "what it counts": text}
        for name, text in meaning.items()
        if name in always or c[name]
    ]


def run_cli(*, messages: int | None, timeout: float, as_json: bool) -> None:
    """The ``ironpush demo`` command: run, print the summary (or JSON), exit 1 if not ok."""
    echo: Echo = (lambda _: None) if as_json else click.echo
    result = run_demo(messages=messages, timeout=timeout, echo=echo)
    rows = summary_rows(result.counters)
    doc = {
        "ok": result.ok,
        "elapsed": round(result.elapsed, 3),
        "counters": result.counters,
        "explained": {r["counter"]: r["what it counts"] for r in rows},
        "warnings": {k: {"count": n, "first": t} for k, (n, t) in result.warnings.items()},
        "messages": {m: [push_status_row(s) for s in st] for m, st in result.statuses.items()},
    }
    text = "\n" + table(rows, ["counter", "value", "what it counts"])
    for name, (count, first) in result.warnings.items():
        text += (
            f"\n{count} warning(s) logged by {name} were held back during the run (not "
            f"printed over the story), e.g. {first!r}"
        )
    text += "\n\n" + NEXT_STEPS
    emit(as_json, doc, text)
    if not result.ok:
        raise click.ClickException("some pushes did not finish as expected (see the table above)")
