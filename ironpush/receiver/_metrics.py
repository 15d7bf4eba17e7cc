"""Receiver counters and latency histograms, served as JSON on ``{mount}/_health`` (counters
and gauges) and as Prometheus text on ``{mount}/_metrics`` (everything).

The Prometheus endpoint needs the optional ``metrics`` extra (``pip install
'ironpush[metrics]'``); with ``ironpush[otel]`` and an OpenTelemetry SDK the same figures go
through the OpenTelemetry metrics API too (:mod:`._otel_metrics`). The histograms are
:mod:`._timings`'; ``PushRouter(metrics=False)`` turns them off (the counters stay: health
reads them). To export through your own registry instead::

    from prometheus_client import REGISTRY
    REGISTRY.register(router.metrics_collector())
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from .._errors import ConfigError
from . import _otel_metrics
from ._timings import Timings

if TYPE_CHECKING:
    from ._routes import Route

PIP_HINT = "Prometheus metrics need prometheus-client: pip install 'ironpush[metrics]'"

#: Every counter the health endpoint reports, in order.
COUNTER_NAMES = (
    "received",  # pushes that reached a route (before verification)
    "acked",  # answered 200 after the handler, plus deferred jobs acknowledged
    "deferred",  # answered 202 with a job or an external worker
    "retried",  # answered 5xx: Retry() or an exception
    "dropped",  # Drop(...)
    "duplicates",  # redeliveries answered without running the handler
    "verification_failures",  # 401/403
    "rejected",  # 400/413: bad headers, bad JSON, body too large
    "busy",  # 503: deferred capacity full, the router draining, or the store unavailable
    "jobs_failed",  # deferred jobs that raised (not acknowledged)
    "late_acks",  # acks refused with 403/404: the reservation had expired
    "ack_failures",  # acks (or dead-letter posts) given up for another reason
    "completions_retried",  # finished jobs the store could not record at once (then retried)
)


K = TypeVar("K")


class Tally(dict[K, int]):
    """A count by key, 0 for a key never counted: ``tally[key] += 1``.

    Not :class:`collections.Counter`: its Python-level ``__delitem__`` sends every
    ``counter[key] += 1`` through the generic (slow) item slots, three of them a push (issue
    23: ~2,300 instructions of the quick path's)::

        >>> seen = Tally[str]()
        >>> seen["acked"] += 1
        >>> seen["acked"], seen["dropped"]
        (1, 0)
    """

    __slots__ = ()

    def __missing__(self, key: K) -> int:
        return 0


class Counters:
    """Monotonic counters, overall and per ``(queue, subscriber, outcome)``; the latency
    histograms (:attr:`timings`, None with ``timings=False``); and, once the router attached
    them, its gauges (read on scrape)."""

    __slots__ = ("__weakref__", "by_route", "gauges", "timings", "totals")

    def __init__(self, *, timings: bool = True) -> None:
        self.totals: Tally[str] = Tally()
        self.by_route: Tally[tuple[str, str, str]] = Tally()
        self.timings: Timings | None = Timings() if timings else None
        self.gauges: Callable[[], dict[str, float]] | None = None

    def attach(
        self, *, routes: Mapping[str, Route], gauges: Callable[[], dict[str, float]]
    ) -> None:
        """The router's routes (they bound the histograms' labels) and gauges; from now on
        the OpenTelemetry instruments report them too (with an SDK)."""
        self.gauges = gauges
        if self.timings is not None:
            self.timings.routes = routes
        _otel_metrics.register(self)
        _otel_metrics.ensure()

    def add(self, name: str, n: int = 1) -> None:
        self.totals[name] += n

    def outcome(self, queue: str, subscriber: str, outcome: str) -> None:
        self.by_route[(queue, subscriber, outcome)] += 1

    def snapshot(self) -> dict[str, int]:
        return {name: self.totals[name] for name in COUNTER_NAMES}


def prometheus_collector(counters: Counters, gauges: Callable[[], dict[str, float]]) -> Any:
    """A prometheus-client collector over ``counters`` plus ``gauges()`` (read on scrape)."""
    try:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )
    except ImportError:  # pragma: no cover - exercised by monkeypatching sys.modules
        raise ConfigError(PIP_HINT) from None

    class _Collector:
        def collect(self) -> Iterator[Any]:
            for name in COUNTER_NAMES:
                family = CounterMetricFamily(f"ironpush_{name}", f"ironpush receiver: {name}")
                family.add_metric([], counters.totals[name])
                yield family
            pushes = CounterMetricFamily(
                "ironpush_pushes",
                "pushes by queue, subscriber and outcome",
                labels=["queue", "subscriber", "outcome"],
            )
            for (queue, subscriber, outcome), value in sorted(counters.by_route.items()):
                pushes.add_metric([queue, subscriber, outcome], value)
            yield pushes
            for gauge_name, gauge_value in gauges().items():
                gauge = GaugeMetricFamily(
                    f"ironpush_{gauge_name}", f"ironpush receiver: {gauge_name}"
                )
                gauge.add_metric([], gauge_value)
                yield gauge
            if counters.timings is not None:
                for histogram in counters.timings.histograms():
                    spec = histogram.spec
                    timed = HistogramMetricFamily(
                        spec.name.removesuffix("_seconds"),
                        spec.help,
                        labels=list(spec.labels),
                        unit="seconds",
                    )
                    les = [repr(float(bound)) for bound in spec.bounds] + ["+Inf"]
                    for values, cumulative, total in sorted(histogram.snapshot()):
                        buckets = list(zip(les, cumulative, strict=True))
                        timed.add_metric(list(values), buckets, total)
                    yield timed

    return _Collector()


def prometheus_text(counters: Counters, gauges: Callable[[], dict[str, float]]) -> bytes:
    """The Prometheus text exposition of the counters; ConfigError (pip hint) without the extra."""
    try:
        from prometheus_client import CollectorRegistry, generate_latest
    except ImportError:
        raise ConfigError(PIP_HINT) from None
    registry = CollectorRegistry(auto_describe=False)
    registry.register(prometheus_collector(counters, gauges))
    return bytes(generate_latest(registry))
