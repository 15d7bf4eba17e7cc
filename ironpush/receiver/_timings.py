"""The receiver's latency histograms: what Prometheus scrapes on ``{mount}/_metrics`` and, with
``ironpush[otel]`` and an SDK, what the OpenTelemetry metrics API records (:mod:`._otel_metrics`).

Each histogram is one row of :data:`~._metric_names.HISTOGRAMS` (its Prometheus and
OpenTelemetry names, its labels and buckets). Label values are bounded:
``queue`` and ``subscriber`` come from the router's declared routes (an ack's subscriber is
kept only when its ``(queue, subscriber)`` pair is a route of this router, else ``""``),
``outcome``/``result``/``operation``/``kind`` from fixed sets, ``store`` from the store's kind;
never a message id, a reservation or anything a sender chooses.

Cheap on the hot path: an observation is a comparison with the first bucket's bound (a C
``bisect`` past it) and two additions; a push answered 200 observes four (answer, handler,
claim, complete) in one :meth:`AckedSeries.observe` call, its series looked up once per route
(``benchmarks/README.md`` has the cost). The OpenTelemetry instrument is called only once an
SDK's meter provider is set::

    timings = Timings()
    timings.push.labels("orders", "billing", "acked").observe(0.0021)
"""

from __future__ import annotations

import os
import threading
from bisect import bisect_left
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

from .._errors import InvalidPayload
from . import _otel_metrics
from ._answers import ANSWERS, situation_of
from ._metric_names import (
    ACK,
    HANDLER,
    JOB,
    OUTBOX_WAIT,
    PUSH,
    STORE_OPERATION,
    HistogramSpec,
)
from ._outcomes import Defer

if TYPE_CHECKING:
    from ._routes import Route

_API = _otel_metrics._api  # where the metrics API keeps the global provider (None: no API)


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
        bounds = self.bounds  # a quick operation lands in the first bucket: one comparison
        self.counts[0 if seconds <= bounds[0] else bisect_left(bounds, seconds)] += 1
        self.sum += seconds
        if _API is not None and _API._METER_PROVIDER is not None:  # an SDK is set
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

    def observe(self, values: tuple[str, ...], seconds: float) -> None:
        """``labels(*values).observe(seconds)`` in one call (the pipeline's, per push)."""
        series = self.series.get(values) or self.labels(*values)
        # Series.observe written out: a deferred push observes four histograms this way, and
        # a call each showed in its instruction count (bench_deferred).
        bounds = series.bounds
        series.counts[0 if seconds <= bounds[0] else bisect_left(bounds, seconds)] += 1
        series.sum += seconds
        if _API is not None and _API._METER_PROVIDER is not None:  # an SDK is set
            _otel_metrics.record(series.spec, seconds, series.attributes)

    def observe_many(self, values: tuple[str, ...], seconds: float, times: int) -> None:
        """``observe(values, seconds)`` ``times`` times (the acks of one call took as long)."""
        series = self.series.get(values) or self.labels(*values)
        bounds = series.bounds
        series.counts[0 if seconds <= bounds[0] else bisect_left(bounds, seconds)] += times
        series.sum += seconds * times
        if _API is not None and _API._METER_PROVIDER is not None:  # an SDK is set
            for _ in range(times):
                _otel_metrics.record(series.spec, seconds, series.attributes)

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


class AckedSeries:
    """The four series a push answered 200 after its handler observes (claim, handler,
    complete, push), looked up once per route and observed in one call: the pipeline's quick
    path. ``observe`` takes the ``time.perf_counter()`` readings it made along the way."""

    __slots__ = ("claim", "complete", "handler", "push")

    def __init__(self, timings: Timings, route: Route, store: str) -> None:
        self.claim = timings.store.labels(store, "claim")
        self.handler = timings.handler.labels(route.queue, route.subscriber, "acked")
        self.complete = timings.store.labels(store, "complete")
        self.push = timings.push.labels(route.queue, route.subscriber, "acked")

    def observe(
        self,
        started: float,
        claiming: float,
        calling: float,
        completing: float,
        completed: float,
        sent: float,
    ) -> None:
        """The push ``started``; its claim from ``claiming`` to ``calling`` (the handler's
        start: the claim's time includes making the message, a few attribute sets, for one
        clock read fewer); the handler until ``completing``; the completion until
        ``completed``; the answer ``sent``."""
        claim, handler, complete, push = self.claim, self.handler, self.complete, self.push
        a, b, c, d = (
            calling - claiming,
            completing - calling,
            completed - completing,
            sent - started,
        )
        # Series.observe's count of each, written out (a loop over the four pairs cost a
        # quick push about 2,200 instructions more, a call each 1,800), then the SDK's.
        bounds = claim.bounds
        claim.counts[0 if a <= bounds[0] else bisect_left(bounds, a)] += 1
        claim.sum += a
        bounds = handler.bounds
        handler.counts[0 if b <= bounds[0] else bisect_left(bounds, b)] += 1
        handler.sum += b
        bounds = complete.bounds
        complete.counts[0 if c <= bounds[0] else bisect_left(bounds, c)] += 1
        complete.sum += c
        bounds = push.bounds
        push.counts[0 if d <= bounds[0] else bisect_left(bounds, d)] += 1
        push.sum += d
        if _API is not None and _API._METER_PROVIDER is not None:  # an SDK is set
            for series, seconds in ((claim, a), (handler, b), (complete, c), (push, d)):
                _otel_metrics.record(series.spec, seconds, series.attributes)


class DeferredSeries:
    """The series of a push answered 202 with a job (push, ``deferred``) and of its job's
    success (job, ``done``), looked up once per route: :mod:`._deferrals` observes them
    directly (``series.push.observe(seconds)``), without a label tuple per push."""

    __slots__ = ("job", "push")

    def __init__(self, timings: Timings, route: Route) -> None:
        self.push = timings.push.labels(route.queue, route.subscriber, "deferred")
        self.job = timings.job.labels(route.queue, route.subscriber, "done")


class Timings:
    """The router's histograms (one :class:`Histogram` per row of
    :data:`~._metric_names.HISTOGRAMS`).

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
        """Every histogram, in :data:`~._metric_names.HISTOGRAMS` order."""
        return (self.push, self.handler, self.job, self.ack, self.outbox_wait, self.store)

    def subscriber(self, queue: str, subscriber: str | None) -> str:
        """``subscriber`` when ``(queue, subscriber)`` is a declared route, else ``""``."""
        if len(self.routes) != self._pairs_of:
            self._pairs = frozenset((r.queue, r.subscriber) for r in self.routes.values())
            self._pairs_of = len(self.routes)
        return subscriber if subscriber and (queue, subscriber) in self._pairs else ""


def handler_outcome(result: object) -> str:
    """The handler histogram's ``outcome`` for what a handler returned (or raised)."""
    if result is None:
        return "acked"
    if type(result) is Defer:  # (every deferred push asks: no look-up in the answer table)
        return "deferred"
    if isinstance(result, InvalidPayload):  # msg.parse(Model) refused the body
        return "rejected"
    outcome = ANSWERS[situation_of(result)].outcome
    return outcome or "error"
