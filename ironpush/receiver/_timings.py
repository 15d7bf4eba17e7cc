"""The receiver's latency histograms: what Prometheus scrapes on ``{mount}/_metrics`` and, with
``ironpush[otel]`` and an SDK, what the OpenTelemetry metrics API records (:mod:`._otel_metrics`).

Each histogram is one row of :data:`HISTOGRAMS` (its Prometheus and OpenTelemetry names, its
labels and buckets); the README's "Metrics" table is this table. Label values are bounded:
``queue`` and ``subscriber`` come from the router's declared routes (an ack's subscriber is
kept only when its ``(queue, subscriber)`` pair is a route of this router, else ``""``),
``outcome``/``result``/``operation``/``kind`` from fixed sets, ``store`` from the store's kind;
never a message id, a reservation or anything a sender chooses.

Cheap on the hot path: an observation is one dict lookup, a C ``bisect`` and two additions (a
push observes four: answer, handler, claim, complete; ``benchmarks/README.md`` has the cost),
and the OpenTelemetry instrument is called only once an SDK's meter provider is set::

    timings = Timings()
    timings.push.labels("orders", "billing", "acked").observe(0.0021)
"""

from __future__ import annotations

import os
import threading
from bisect import bisect_left
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .._errors import InvalidPayload
from . import _otel_metrics
from ._answers import ANSWERS, situation_of

if TYPE_CHECKING:
    from ._routes import Route

# Bucket upper bounds in seconds (Prometheus ``le``; +Inf is implicit).
#: A push's answer and a handler: from half a millisecond to the 10 s IronMQ waits.
QUICK = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: A deferred job: from milliseconds to ten minutes.
JOBS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 600.0)
#: One call to IronMQ (an ack).
CALLS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
#: One store operation: from 50 µs (memory, a local Redis) to seconds (a store in trouble).
STORE = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25)
STORE_ALL = (*STORE, 0.5, 1.0, 2.5, 5.0)
#: Time in the ack outbox: immediate while IronMQ answers, up to the give-up time when not.
WAITS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)

#: Every push's ``outcome`` label: the answer table's outcomes (see :mod:`._answers`).
PUSH_OUTCOMES = tuple(sorted({a.outcome for a in ANSWERS.values() if a.outcome}))
#: A deferred job's ``outcome``.
JOB_OUTCOMES = ("done", "failed", "cancelled")
#: An ack's ``result``: IronMQ confirmed, refused as late (403/404), given up, or to be retried.
ACK_RESULTS = ("acked", "late", "failed", "retry")

# The label names, and the OpenTelemetry attribute each becomes.
_OTEL_NAMES = {
    "queue": "messaging.destination.name",
    "subscriber": "messaging.consumer.group.name",
    "outcome": "ironpush.outcome",
    "result": "ironpush.ack.result",
    "kind": "ironpush.outbox.kind",
    "store": "ironpush.store",
    "operation": "db.operation.name",
}
_ROUTE = ("queue", "subscriber")


@dataclass(frozen=True, slots=True)
class HistogramSpec:
    """One histogram: ``name`` (Prometheus, ``_seconds``), ``otel`` (its OpenTelemetry
    instrument, unit ``s``), what it measures, its ``labels`` and bucket ``bounds``."""

    name: str
    otel: str
    help: str
    labels: tuple[str, ...]
    bounds: tuple[float, ...]

    def attributes(self, values: tuple[str, ...]) -> dict[str, str]:
        """The OpenTelemetry attributes of one series (``messaging.system`` on push ones)."""
        found = {_OTEL_NAMES[label]: value for label, value in zip(self.labels, values)}
        if "queue" in self.labels:
            found["messaging.system"] = "ironmq"
        return found


PUSH = HistogramSpec(
    "ironpush_push_duration_seconds",
    "ironpush.push.duration",
    "Push arrived -> answer sent, by the answer's outcome.",
    (*_ROUTE, "outcome"),
    QUICK,
)
HANDLER = HistogramSpec(
    "ironpush_handler_duration_seconds",
    "ironpush.handler.duration",
    "Time in the route's handler, by what it returned (an exception: error).",
    (*_ROUTE, "outcome"),
    QUICK,
)
JOB = HistogramSpec(
    "ironpush_job_duration_seconds",
    "ironpush.job.duration",
    "Time in a Defer(job) job: done, failed or cancelled (shutdown).",
    (*_ROUTE, "outcome"),
    JOBS,
)
ACK = HistogramSpec(
    "ironpush_ack_duration_seconds",
    "ironpush.ack.duration",
    "One ack call of the outbox -> IronMQ's answer: acked, late, failed or retry.",
    (*_ROUTE, "result"),
    CALLS,
)
OUTBOX_WAIT = HistogramSpec(
    "ironpush_outbox_wait_seconds",
    "ironpush.outbox.wait",
    "Outbox item queued -> its last send done (acks and dead-letter posts).",
    (*_ROUTE, "kind"),
    WAITS,
)
STORE_OPERATION = HistogramSpec(
    "ironpush_store_operation_duration_seconds",
    "ironpush.store.operation.duration",
    "One store operation (claim, complete, hold, release, add, take, finish, ...).",
    ("store", "operation"),
    STORE_ALL,
)
#: Every histogram, in the order ``/_metrics`` shows them.
HISTOGRAMS = (PUSH, HANDLER, JOB, ACK, OUTBOX_WAIT, STORE_OPERATION)


class Series:
    """One label combination of a histogram: bucket counts (the last is +Inf) and the sum."""

    __slots__ = ("attributes", "bounds", "counts", "spec", "sum")

    def __init__(self, spec: HistogramSpec, values: tuple[str, ...]) -> None:
        self.spec = spec
        self.bounds = spec.bounds
        self.counts = [0] * (len(spec.bounds) + 1)
        self.sum = 0.0
        self.attributes = spec.attributes(values)

    def observe(self, seconds: float) -> None:
        """Count one observation (seconds)."""
        self.counts[bisect_left(self.bounds, seconds)] += 1
        self.sum += seconds
        if _otel_metrics.provider_set():
            _otel_metrics.record(self.spec, seconds, self.attributes)


class Histogram:
    """One histogram family: a :class:`Series` per label combination seen."""

    __slots__ = ("_lock", "series", "spec")

    def __init__(self, spec: HistogramSpec) -> None:
        self.spec = spec
        self.series: dict[tuple[str, ...], Series] = {}
        self._lock = threading.Lock()

    def labels(self, *values: str) -> Series:
        """The series of these label values (made on first use)."""
        found = self.series.get(values)
        if found is None:
            with self._lock:  # a scrape in another thread may be copying the dict
                found = self.series.setdefault(values, Series(self.spec, values))
        return found

    def snapshot(self) -> Iterator[tuple[tuple[str, ...], list[int], float]]:
        """Each series' label values, cumulative bucket counts (+Inf last) and sum."""
        with self._lock:
            items = list(self.series.items())
        for values, series in items:
            running, cumulative = 0, []
            for count in list(series.counts):
                running += count
                cumulative.append(running)
            yield values, cumulative, series.sum


class Timings:
    """The router's histograms (one :class:`Histogram` per row of :data:`HISTOGRAMS`).

    ``routes`` (the router's, by path; attached by the router) bounds the subscriber label
    of acks, whose subscriber name comes from the delivery, not from a route."""

    def __init__(self) -> None:
        self.push = Histogram(PUSH)
        self.handler = Histogram(HANDLER)
        self.job = Histogram(JOB)
        self.ack = Histogram(ACK)
        self.outbox_wait = Histogram(OUTBOX_WAIT)
        self.store = Histogram(STORE_OPERATION)
        self.routes: Mapping[str, Route] = {}
        self._pairs: frozenset[tuple[str, str]] = frozenset()
        self._pairs_of = -1  # len(routes) when _pairs was made
        if os.environ.get("OTEL_PYTHON_METER_PROVIDER"):
            _otel_metrics.load_from_environment()

    def histograms(self) -> tuple[Histogram, ...]:
        """Every histogram, in :data:`HISTOGRAMS` order."""
        return (self.push, self.handler, self.job, self.ack, self.outbox_wait, self.store)

    def handled(self, route: Route, result: object, seconds: float) -> None:
        """The handler of ``route`` returned ``result`` (or raised it) after ``seconds``."""
        outcome = "acked" if result is None else _handler_outcome(result)
        self.handler.labels(route.queue, route.subscriber, outcome).observe(seconds)

    def subscriber(self, queue: str, subscriber: str | None) -> str:
        """``subscriber`` when ``(queue, subscriber)`` is a declared route, else ``""``."""
        if len(self.routes) != self._pairs_of:
            self._pairs = frozenset((r.queue, r.subscriber) for r in self.routes.values())
            self._pairs_of = len(self.routes)
        return subscriber if subscriber and (queue, subscriber) in self._pairs else ""


def _handler_outcome(result: object) -> str:
    if isinstance(result, InvalidPayload):  # msg.parse(Model) refused the body
        return "rejected"
    outcome = ANSWERS[situation_of(result)].outcome
    return outcome or "error"
