"""The same metrics through the OpenTelemetry metrics API: an SDK meter provider with the SDK's
in-memory reader, set for one test (and taken away after it), reads the histograms, the pushes
counter and the gauges a router reports after real pushes from a dev server.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from metrics_kit import SUBSCRIBER, TOKEN, serve_and_push, three_routes
from opentelemetry.metrics import _internal as metrics_api
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.util._once import Once

from ironpush.devserver import DevServer
from ironpush.receiver import _otel_metrics
from ironpush.receiver._metric_names import HISTOGRAMS


@pytest.fixture
def dev() -> Iterator[DevServer]:
    with DevServer(token=TOKEN) as server:
        yield server


@contextmanager
def memory_meter() -> Iterator[InMemoryMetricReader]:
    """An SDK meter provider with an in-memory reader as the global one, for the block only."""
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    _reset_global()
    metrics_api.set_meter_provider(provider)
    try:
        yield reader
    finally:
        provider.shutdown()
        _reset_global()


def _reset_global() -> None:
    # OpenTelemetry sets the global provider once per process; its own tests reset it so.
    metrics_api._METER_PROVIDER_SET_ONCE = Once()
    metrics_api._METER_PROVIDER = None
    assert not _otel_metrics.provider_set()


def points(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    """Every data point the reader collects now, by instrument name (scope ``ironpush``)."""
    data = reader.get_metrics_data()
    found: dict[str, list[Any]] = {}
    assert data is not None
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            if scope.scope.name != "ironpush":
                continue
            for metric in scope.metrics:
                found.setdefault(metric.name, []).extend(metric.data.data_points)
                assert metric.unit, metric.name
    return found


def one(found: list[Any], **attributes: str) -> Any:
    [point] = [p for p in found if all(p.attributes.get(k) == v for k, v in attributes.items())]
    return point


def test_histograms_counter_and_gauges_through_the_metrics_api(dev: DevServer) -> None:
    # The pushes counter sums every live router of the process: none other on these queues.
    gc.collect()
    earlier = [k for s in _otel_metrics._SOURCES for k in s.by_route if k[0].startswith("metrics-")]
    assert not earlier, "a router of an earlier test is still alive"
    with memory_meter() as reader:
        router = three_routes(dev)
        with serve_and_push(dev, router) as pushed:
            found = points(reader)
    assert {spec.otel for spec in HISTOGRAMS} <= set(found)
    route = {"messaging.system": "ironmq", "messaging.consumer.group.name": SUBSCRIBER}
    push = found["ironpush.push.duration"]
    ok = one(push, **{"messaging.destination.name": "metrics-ok", "ironpush.outcome": "acked"})
    assert ok.count == 1
    assert dict(ok.attributes) == {
        **route,
        "messaging.destination.name": "metrics-ok",
        "ironpush.outcome": "acked",
    }
    assert list(ok.explicit_bounds) == list(HISTOGRAMS[0].bounds)  # the advice was taken
    boom = {"messaging.destination.name": "metrics-boom", "ironpush.outcome": "error"}
    assert one(found["ironpush.handler.duration"], **boom).count == 2
    job = {"messaging.destination.name": "metrics-job"}
    assert one(found["ironpush.job.duration"], **job, **{"ironpush.outcome": "done"}).count == 1
    acked = one(found["ironpush.ack.duration"], **job, **{"ironpush.ack.result": "acked"})
    assert acked.count == 1
    assert one(found["ironpush.outbox.wait"], **job, **{"ironpush.outbox.kind": "ack"}).count == 1
    claims = one(
        found["ironpush.store.operation.duration"],
        **{"ironpush.store": "memory", "db.operation.name": "claim"},
    )
    assert claims.count >= 4
    pushes = found["ironpush.pushes"]
    assert one(pushes, **{"messaging.destination.name": "metrics-ok"}).value == 1
    assert one(pushes, **boom).value == 2
    for gauge in ("ironpush.outbox.depth", "ironpush.jobs.inflight"):
        assert [p.value for p in found[gauge]] == [0]  # one point: summed over the routers
    # Attributes: bounded names and values, never a message id.
    for name, data_points in found.items():
        for point in data_points:
            assert not set(point.attributes.values()) & set(pushed.ids.values()), name


def test_without_a_meter_provider_nothing_is_recorded_through_the_api(dev: DevServer) -> None:
    _reset_global()
    router = three_routes(dev)
    with serve_and_push(dev, router):
        pass
    assert _otel_metrics._BRIDGE.histograms == {}
    assert router.counters.timings is not None
    assert router.counters.timings.push.series  # /_metrics has them all the same
