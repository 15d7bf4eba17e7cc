"""The receiver's metrics through the OpenTelemetry metrics API (``pip install 'ironpush[otel]'``).

Like tracing (:mod:`ironpush._tracing`), ironpush uses the API only and records nothing until
the application sets an SDK's meter provider (``metrics.set_meter_provider(MeterProvider(...))``
or ``opentelemetry-instrument``): before that, :func:`provider_set` is one global read per
observation and no instrument exists. Once set, the meter ``ironpush`` gets:

- one histogram per row of :data:`~._metric_names.HISTOGRAMS` (``ironpush.push.duration``,
  ``ironpush.handler.duration``…, unit ``s``, the same buckets as ``/_metrics`` as advice);
- ``ironpush.pushes`` (an observable counter: pushes by queue, subscriber and outcome) and the
  gauges ``ironpush.outbox.depth``, ``ironpush.jobs.inflight``,
  ``ironpush.completions.pending``, summed over the process's routers, read at each collection.

A new provider (tests set one per test) gets its own instruments::

    if provider_set():
        record(PUSH, 0.002, {"messaging.destination.name": "orders", ...})
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from .._version import __version__
from ._metric_names import HISTOGRAMS

_api: Any  # the API's internals: where it keeps the global meter provider
try:
    from opentelemetry.metrics import NoOpMeterProvider, Observation
    from opentelemetry.metrics import _internal as _api

    AVAILABLE = True
except ImportError:  # the API is an optional extra: provider_set() is always False
    _api = None
    AVAILABLE = False

if TYPE_CHECKING:
    from opentelemetry.metrics import CallbackOptions, Histogram, Meter

    from ._metric_names import HistogramSpec

logger = logging.getLogger("ironpush.receiver")
#: The meter's (instrumentation scope's) name.
SCOPE = "ironpush"
#: The gauges of ``/_metrics`` and the OpenTelemetry instrument each becomes (name, unit).
GAUGES = {
    "outbox_depth": ("ironpush.outbox.depth", "{item}"),
    "inflight_jobs": ("ironpush.jobs.inflight", "{job}"),
    "pending_completions": ("ironpush.completions.pending", "{completion}"),
}


class Source(Protocol):
    """What a router offers the observable instruments (its :class:`~._metrics.Counters`)."""

    @property
    def by_route(self) -> Mapping[tuple[str, str, str], int]: ...

    gauges: Callable[[], dict[str, float]] | None


_SOURCES: weakref.WeakSet[Any] = weakref.WeakSet()


def provider_set() -> bool:
    """True once the application set a meter provider (an SDK's, normally)."""
    return _api is not None and _api._METER_PROVIDER is not None


def load_from_environment() -> None:
    """Let the API load a provider named by ``OTEL_PYTHON_METER_PROVIDER`` (it does so only when
    someone asks for the provider)."""
    if _api is not None:
        _api.get_meter_provider()


def register(source: Source) -> None:
    """Report ``source``'s pushes counter and gauges through the observable instruments."""
    _SOURCES.add(source)


class _Bridge:
    """The instruments of the provider seen last (None: none made yet)."""

    def __init__(self) -> None:
        self.provider: object = None
        self.histograms: dict[str, Histogram] = {}
        self.lock = threading.Lock()

    def switch(self, provider: object) -> None:
        with self.lock:
            if provider is self.provider:
                return
            histograms: dict[str, Histogram] = {}
            if provider is not None and not isinstance(provider, NoOpMeterProvider):
                try:
                    meter: Meter = provider.get_meter(SCOPE, __version__)  # type: ignore[attr-defined]
                    histograms = _instruments(meter)
                except Exception:  # an SDK's failure must never reach a push: no metrics then
                    logger.warning("OpenTelemetry metrics unavailable", exc_info=True)
            self.histograms = histograms
            self.provider = provider


_BRIDGE = _Bridge()


def record(spec: HistogramSpec, seconds: float, attributes: dict[str, str]) -> None:
    """Record one observation on the current provider's instrument for ``spec``."""
    if _api is None:
        return
    provider = _api._METER_PROVIDER
    if provider is not _BRIDGE.provider:
        _BRIDGE.switch(provider)
    instrument = _BRIDGE.histograms.get(spec.otel)
    if instrument is not None:
        try:
            instrument.record(seconds, attributes)
        except Exception:  # an SDK's failure must never reach a push
            logger.debug("OpenTelemetry histogram %s failed", spec.otel, exc_info=True)


def ensure() -> None:
    """Make the instruments now when a provider is set (a router was made after the SDK was
    configured: its counters are reported before its first push)."""
    if _api is not None and _api._METER_PROVIDER is not _BRIDGE.provider:
        _BRIDGE.switch(_api._METER_PROVIDER)


def _instruments(meter: Meter) -> dict[str, Histogram]:
    histograms = {spec.otel: _histogram(meter, spec) for spec in HISTOGRAMS}
    meter.create_observable_counter(
        "ironpush.pushes",
        callbacks=[_pushes],
        unit="{push}",
        description="Pushes answered, by queue, subscriber and outcome.",
    )
    for key, (name, unit) in GAUGES.items():
        meter.create_observable_gauge(
            name, callbacks=[_gauge(key)], unit=unit, description=f"ironpush receiver: {key}"
        )
    return histograms


def _histogram(meter: Meter, spec: HistogramSpec) -> Histogram:
    try:
        return meter.create_histogram(
            spec.otel,
            unit="s",
            description=spec.help,
            explicit_bucket_boundaries_advisory=list(spec.bounds),
        )
    except TypeError:  # opentelemetry-api < 1.23 takes no bucket advice: the SDK's buckets
        return meter.create_histogram(spec.otel, unit="s", description=spec.help)


def _pushes(options: CallbackOptions) -> Iterable[Observation]:
    totals: Counter[tuple[str, str, str]] = Counter()
    for source in list(_SOURCES):
        totals.update(source.by_route)
    for (queue, subscriber, outcome), value in sorted(totals.items()):
        attributes = {
            "messaging.system": "ironmq",
            "messaging.destination.name": queue,
            "messaging.consumer.group.name": subscriber,
            "ironpush.outcome": outcome,
        }
        yield Observation(value, attributes)


def _gauge(key: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
    def observe(options: CallbackOptions) -> Iterable[Observation]:
        values = [s.gauges().get(key, 0.0) for s in list(_SOURCES) if s.gauges is not None]
        if values:
            yield Observation(sum(values))

    return observe
