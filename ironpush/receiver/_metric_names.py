"""The receiver's metric names: each latency histogram's Prometheus and OpenTelemetry names,
labels and buckets (one row of :data:`HISTOGRAMS` each; the README's "Metrics" table is this
table), and the fixed sets its label values come from::

    PUSH.name, PUSH.otel, PUSH.labels   # 'ironpush_push_duration_seconds', ...
"""

from __future__ import annotations

from dataclasses import dataclass

from ._answers import ANSWERS

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
        found = {
            _OTEL_NAMES[label]: value for label, value in zip(self.labels, values, strict=True)
        }
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
