"""``/_metrics`` after real pushes: a dev server pushes to a router served by uvicorn, the test
scrapes the router like Prometheus would and reads the text with prometheus-client's parser.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from metrics_kit import QUEUES, SUBSCRIBER, TOKEN, serve_and_push, three_routes
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from ironpush.devserver import DevServer
from ironpush.receiver._metric_names import HISTOGRAMS, JOB_OUTCOMES, PUSH_OUTCOMES
from ironpush.receiver._timed_store import OPERATIONS

HISTOGRAM_NAMES = {spec.name: spec for spec in HISTOGRAMS}


@pytest.fixture
def dev() -> Iterator[DevServer]:
    with DevServer(token=TOKEN) as server:
        yield server


def scrape(url: str) -> tuple[str, dict[str, list[Sample]]]:
    answer = httpx.get(url + "/_metrics", timeout=10)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(answer.text)}
    for spec in HISTOGRAMS:
        assert families[spec.name].type == "histogram", spec.name
    return answer.text, {name: family.samples for name, family in families.items()}


def counts(samples: list[Sample], **labels: str) -> float:
    """The ``_count`` of the one series with these labels."""
    [found] = [
        s.value
        for s in samples
        if s.name.endswith("_count") and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    return found


def test_histograms_after_real_pushes_have_their_names_labels_and_buckets(
    dev: DevServer,
) -> None:
    router = three_routes(dev)
    with serve_and_push(dev, router) as pushed:
        text, samples = scrape(pushed.url)
    assert pushed.statuses == {
        "metrics-ok": ["deleted"],
        "metrics-job": ["deleted"],
        "metrics-boom": ["error"],
    }
    push = samples["ironpush_push_duration_seconds"]
    route = {"subscriber": SUBSCRIBER}
    assert counts(push, queue="metrics-ok", outcome="acked", **route) == 1
    assert counts(push, queue="metrics-job", outcome="deferred", **route) == 1
    assert counts(push, queue="metrics-boom", outcome="error", **route) == 2  # one retry
    handler = samples["ironpush_handler_duration_seconds"]
    assert counts(handler, queue="metrics-ok", outcome="acked", **route) == 1
    assert counts(handler, queue="metrics-job", outcome="deferred", **route) == 1
    assert counts(handler, queue="metrics-boom", outcome="error", **route) == 2
    job = samples["ironpush_job_duration_seconds"]
    assert counts(job, queue="metrics-job", outcome="done", **route) == 1
    ack = samples["ironpush_ack_duration_seconds"]
    assert counts(ack, queue="metrics-job", result="acked", **route) == 1
    wait = samples["ironpush_outbox_wait_seconds"]
    assert counts(wait, queue="metrics-job", kind="ack", **route) == 1
    store = samples["ironpush_store_operation_duration_seconds"]
    # (No "hold": a deferred job keeps the claim its push made, without another store call.)
    for operation, at_least in {"claim": 4, "complete": 1, "release": 2}.items():
        assert counts(store, store="memory", operation=operation) >= at_least, operation
    # The job's end: complete_ack (complete + add in one call) where the store has it.
    assert counts(store, store="memory", operation="complete_ack") == 1
    for operation in ("take", "finish"):  # the outbox's, for the job's ack
        assert counts(store, store="memory", operation=operation) >= 1, operation

    # Labels: exactly the documented ones, values from bounded sets, never a message id.
    for name, spec in HISTOGRAM_NAMES.items():
        for sample in samples[name]:
            assert set(sample.labels) - {"le"} == set(spec.labels), sample
            label_values = set(sample.labels.values())
            assert not label_values & set(pushed.ids.values()), sample
            if "queue" in spec.labels:
                assert sample.labels["queue"] in QUEUES
            if "outcome" in sample.labels:
                assert sample.labels["outcome"] in (*PUSH_OUTCOMES, *JOB_OUTCOMES)
            if "operation" in sample.labels:
                assert sample.labels["operation"] in OPERATIONS
    # Buckets: the spec's bounds then +Inf, cumulative, +Inf equal to the count.
    for name, spec in HISTOGRAM_NAMES.items():
        series: dict[tuple[tuple[str, str], ...], list[Sample]] = {}
        for sample in samples[name]:
            if sample.name.endswith("_bucket"):
                key = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "le"))
                series.setdefault(key, []).append(sample)
        assert series, name
        for key, buckets in series.items():
            bounds = [float(b.labels["le"]) for b in buckets]
            assert bounds == [*spec.bounds, float("inf")], name
            values = [b.value for b in buckets]
            assert values == sorted(values), (name, key)
            assert values[-1] == counts(samples[name], **dict(key)), (name, key)
    # The counters and gauges are still there, and no secret is anywhere.
    assert 'ironpush_pushes_total{outcome="acked",queue="metrics-ok",subscriber="svc"} 1.0' in text
    assert "ironpush_outbox_depth " in text
    for secret in pushed.secrets:
        assert secret not in text


def test_metrics_false_keeps_the_counters_and_drops_the_histograms(dev: DevServer) -> None:
    router = three_routes(dev, metrics=False)
    with serve_and_push(dev, router) as pushed:
        answer = httpx.get(pushed.url + "/_metrics", timeout=10)
    names = {f.name for f in text_string_to_metric_families(answer.text)}
    assert "ironpush_pushes" in names
    assert not names & set(HISTOGRAM_NAMES)
    assert router.counters.timings is None
