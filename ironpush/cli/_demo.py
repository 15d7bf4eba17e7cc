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
printed over the bar: the summary counts and explains them. The summary says how every
message ended (:mod:`._demo_tally`: delivered + acked + dropped + failed + unfinished = N) and
the exit status is 1 unless every one of them was done; the service is sized for the batch
(``max_deferred``), so that IronMQ's retries outlast the back-pressure instead of long orders
running out of tries.
"""

from __future__ import annotations

import json
import logging
import secrets
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import click

from .._errors import NotFound
from ..client._models import PushStatus
from ..client._sync_client import IronMQ
from ..devserver import DevServer
from ..receiver._registration import sync_subscriptions
from ..server_thread import ServerThread
from ._demo_service import (
    ERROR_QUEUE,
    KINDS,
    LONG_JOB_SECONDS,
    QUEUE,
    RETRIES_DELAY,
    SUBSCRIBER,
    Tracker,
    build_service,
    deferred_capacity,
)
from ._demo_tally import Ledger, outcomes_text, summary_rows
from ._rendering import emit, push_status_row, table

SAMPLED_PER_KIND = 12  # push statuses kept per kind in a batch's JSON (all failures are kept)
NEXT_STEPS = (
    "Next: run `ironpush dev` and open http://127.0.0.1:8080/_dev/ui to watch your own pushes "
    '(`eval "$(ironpush dev --env)"` points clients at it), then follow the quick start in the '
    "README."
)

Echo = Callable[[str], None]
#: What a run saw: push statuses (of all messages, or of a sample), every message's kind by
#: id, seconds taken.
Observed = tuple[dict[str, list["PushStatus"]], dict[str, str], float]


@dataclass
class DemoResult:
    """What the demo observed; ``ok`` is the exit status's source."""

    #: Push statuses of every message (the tour) or of a sample (a batch: some of each kind,
    #: and every message that did not end well).
    statuses: dict[str, list[PushStatus]]
    kinds: dict[str, str]  # every message posted → its kind
    counters: dict[str, int]
    elapsed: float
    error_queue_size: int
    #: How the messages ended (:mod:`._demo_tally`); the values add up to ``len(kinds)``.
    outcomes: dict[str, int] = field(default_factory=dict)
    #: Warnings logged during the run, by logger: (how many, the first one's text).
    warnings: dict[str, tuple[int, str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        done = all(s and all(p.status == "deleted" for p in s) for s in self.statuses.values())
        ended = sum(self.outcomes.values()) == len(self.kinds)
        lost = self.outcomes.get("failed", 0) + self.outcomes.get("unfinished", 0)
        return done and ended and not lost and self.error_queue_size == 0


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
    capacity = deferred_capacity(messages)
    with _held_warnings() as held, DevServer(push_timeout=10.0) as mq, mq.client() as client:
        app, router = build_service(tracker, secret_key, mq, max_deferred=capacity)
        if messages is None:
            mq.engine.events.add_listener(tracker.on_server_event)
        # After the narration: a message's last word is told once the ledger has it.
        mq.engine.events.add_listener(tracker.ledger.on_event)
        with ServerThread(app) as service:
            say(f"dev server      {mq.url}   (IronMQ v3 API + pusher)")
            say(f"order service   {service.url}/ironmq/orders   (a PushRouter in Starlette)")
            report = sync_subscriptions(client, router.subscriptions(service.url + "/ironmq"))
            say(
                f"subscribed      {QUEUE} → {SUBSCRIBER}: {report.changes[0].action}, "
                f"retries=3, retries_delay={RETRIES_DELAY}s (hosted minimum: 3 s), "
                f"error queue {ERROR_QUEUE}; up to {capacity} deferred jobs at once\n"
            )
            kinds = _kinds(messages)
            run = _tour if messages is None else _batch
            statuses, ids, elapsed = run(client, tracker, kinds, say, timeout)
            counters = router.counters.snapshot()
            errors = _size(client, ERROR_QUEUE)
    warned = {name: (n, held.first[name]) for name, n in held.counts.items()}
    outcomes = tracker.ledger.counts(ids)
    return DemoResult(statuses, ids, counters, elapsed, errors, outcomes, warned)


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
    # The last ack line is on its way from the server's loop.
    tracker.ledger.wait_finished(set(ids), max(0.5, deadline - time.monotonic()))
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
    started = time.monotonic()
    ids = _post(client, kinds)
    posted = time.monotonic() - started
    total, ledger = len(ids), tracker.ledger
    tty = sys.stdout.isatty()
    next_line = 0.0
    while True:
        done, failed = ledger.finished, ledger.failed  # a failed message is finished too
        now = time.monotonic()
        over = done >= total or now - started >= timeout
        line = _progress(done, failed, total, now - started)
        if tty:
            sys.stdout.write("\r" + line + ("\n" if over else ""))
            sys.stdout.flush()
        elif now >= next_line or over:
            say(line)
            next_line = now + 1.0
        if over:
            break
        time.sleep(0.1)
    elapsed = time.monotonic() - started
    queue = client.queue(QUEUE)
    statuses = {m: queue.get_message_push_statuses(m) for m in _sample(ids, ledger)}
    ended = "all pushes finished" if done >= total else f"{done} finished (timed out)"
    say(
        f"\n{total} messages: posted in {posted:.2f}s, {ended} in {elapsed:.2f}s "
        f"→ {done / elapsed:.0f} messages/s end to end.\n"
        f"This reflects the demo's deliberately slow service (every long order's job sleeps "
        f"{LONG_JOB_SECONDS}s, flaky orders wait {RETRIES_DELAY:g}s for their retry), not "
        "ironpush's speed: see benchmarks/README.md for measured throughput."
    )
    return statuses, ids, elapsed


def _progress(done: int, failed: int, total: int, seconds: float) -> str:
    bar = "#" * (30 * done // total)
    failures = f", {failed} failed" if failed else ""
    return f"[{bar:<30}] {done}/{total} done{failures}  {done / max(seconds, 1e-9):6.0f} msg/s"


def _sample(ids: dict[str, str], ledger: Ledger) -> list[str]:
    """Some messages of each kind, and every one that did not end well (at most 100)."""
    picked: list[str] = []
    for kind in KINDS:
        picked += [m for m, k in ids.items() if k == kind][:SAMPLED_PER_KIND]
    unwell = [m for m in ids if ledger.ended(m) in (None, "failed") and m not in picked]
    return picked + unwell[:100]


def run_cli(*, messages: int | None, timeout: float, as_json: bool) -> None:
    """The ``ironpush demo`` command: run, print the summary (or JSON), exit 1 if not ok."""
    echo: Echo = (lambda _: None) if as_json else click.echo
    result = run_demo(messages=messages, timeout=timeout, echo=echo)
    ended = {
        "counter": "messages",
        "value": len(result.kinds),
        "what it counts": f"posted; how each ended: {outcomes_text(result.outcomes)}",
    }
    rows = [ended, *summary_rows(result.counters, retries_delay=RETRIES_DELAY)]
    doc = {
        "ok": result.ok,
        "elapsed": round(result.elapsed, 3),
        "posted": len(result.kinds),
        "outcomes": result.outcomes,
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
        lost = {k: v for k, v in result.outcomes.items() if k in ("failed", "unfinished") and v}
        said = ", ".join(f"{v} {k}" for k, v in lost.items()) or "some pushes"
        raise click.ClickException(f"{said}: not every message ended as expected (see above)")
