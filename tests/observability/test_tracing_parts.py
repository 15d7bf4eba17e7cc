"""Each part of the tracing, one behaviour at a time: the producer's push headers (room, the
caller's headers), the consumer span's parent and links, failures, ``tracing=False``, the
SQLite and PostgreSQL store spans, and no span object at all without an SDK.

Producer tests post to a real dev server (and read the stored message back); receiver tests
push in-process (``SyncPushSimulator``), with real stores.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import psycopg
import pytest
import redis
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags, TraceState
from trace_kit import REDIS_URL, Span, from_sdk, memory_provider, named, one

from ironpush import Defer, PushMessage, PushRouter, Retry
from ironpush.devserver import DevServer
from ironpush.testing import SyncPushSimulator

KEYS = ["trace-parts-key-0123456789abcdef-0123456789"]
POSTGRES_DSN = os.environ.get(
    "IRONPUSH_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test"
)
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture(scope="module")
def dev() -> Iterator[DevServer]:
    with DevServer() as server:
        yield server


@pytest.fixture
def spans() -> Iterator[Callable[[], list[Span]]]:
    with memory_provider() as exporter:
        yield lambda: from_sdk(exporter.get_finished_spans())


def _stored_headers(dev: DevServer, queue: str) -> list[dict[str, str]]:
    messages = dev.client().queue(queue).peek(max=10)
    return [dict(m.raw.get("push_headers") or {}) for m in messages]


@contextlib.contextmanager
def _caller_span() -> Iterator[None]:
    """The caller's span, under a remote parent with a ``tracestate`` (so both headers go)."""
    remote = SpanContext(
        trace_id=0x0AF7651916CD43DD8448EB211C80319C,
        span_id=0xB7AD6B7169203331,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
        trace_state=TraceState([("vendor", "v1")]),
    )
    parent = trace.set_span_in_context(NonRecordingSpan(remote))
    with trace.get_tracer("shop").start_as_current_span("checkout", context=parent):
        yield


def _post(twin: str, dev: DevServer, queue: str, *messages: Any, **options: Any) -> list[str]:
    if twin == "sync":
        return dev.client(**options).queue(queue).post(*messages)

    async def post() -> list[str]:
        async with dev.async_client(**options) as mq:
            return await mq.queue(queue).post(*messages)

    return anyio.run(post)


# --- the producer --------------------------------------------------------------------------


@pytest.mark.parametrize("twin", ["sync", "async"])
def test_post_in_a_span_adds_its_context_where_there_is_room_and_never_overwrites(
    twin: str, dev: DevServer, queue_name: str, spans: Callable[[], list[Span]]
) -> None:
    three = {"X-A": "a", "X-B": "b", "X-C": "c"}
    four = {**three, "X-D": "d"}
    five = {**four, "X-E": "e"}
    own = {"TraceParent": TRACEPARENT, "tracestate": "mine=1"}
    with _caller_span():
        ids = _post(
            twin,
            dev,
            queue_name,
            "plain",
            {"body": "three", "push_headers": three},
            {"body": "four", "push_headers": four},
            {"body": "five", "push_headers": five},
            {"body": "own", "push_headers": own},
        )
    by_body = dict(
        zip(
            ["plain", "three", "four", "five", "own"], _stored_headers(dev, queue_name), strict=True
        )
    )
    send = one(spans(), f"send {queue_name}")
    context = f"00-{send.trace_id}-{send.span_id}-01"
    assert by_body["plain"] == {"traceparent": context, "tracestate": "vendor=v1"}
    assert by_body["three"] == {**three, "traceparent": context, "tracestate": "vendor=v1"}
    assert by_body["four"] == {**four, "traceparent": context}  # room for traceparent only
    assert by_body["five"] == five  # no room: posted as given
    assert by_body["own"] == own  # the caller's creation context is theirs
    assert send.kind == "PRODUCER"
    assert send.attributes["messaging.batch.message_count"] == 5
    assert send.attributes["ironpush.trace_context.dropped"] == 1
    assert "messaging.message.id" not in send.attributes  # a batch: no single id
    assert len(ids) == 5


@pytest.mark.parametrize("twin", ["sync", "async"])
def test_post_outside_a_span_or_with_tracing_off_adds_nothing(
    twin: str, dev: DevServer, queue_name: str, spans: Callable[[], list[Span]]
) -> None:
    _post(twin, dev, queue_name, "outside")
    with _caller_span():
        _post(twin, dev, queue_name, "off", tracing=False)
    assert _stored_headers(dev, queue_name) == [{}, {}]
    assert named(spans(), f"send {queue_name}") == []


# --- the receiver -----------------------------------------------------------------------------


def _with_server_span(app: Any) -> Any:
    """An HTTP server span around each request, as ASGI instrumentation makes."""

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await app(scope, receive, send)
        tracer = trace.get_tracer("asgi")
        with tracer.start_as_current_span("POST", kind=SpanKind.SERVER):
            return await app(scope, receive, send)

    return wrapped


def test_the_push_span_continues_the_producer_trace_and_links_the_server_span(
    spans: Callable[[], list[Span]],
) -> None:
    router = PushRouter(secret_keys=KEYS)
    router.add_route("/orders", lambda msg: None, queue="orders", subscriber="billing")
    with SyncPushSimulator(_with_server_span(router), router=router) as sim:
        assert sim.push("/orders", "a", headers={"traceparent": TRACEPARENT}).status_code == 200
        assert sim.push("/orders", "b").status_code == 200
    found = spans()
    with_context, without = named(found, "process orders")
    servers = named(found, "POST")
    # With a creation context: its child, linked to it and to the server span.
    assert with_context.trace_id == TRACEPARENT.split("-")[1]
    assert with_context.parent_id == TRACEPARENT.split("-")[2]
    assert with_context.links == [
        (with_context.trace_id, with_context.parent_id),
        (servers[0].trace_id, servers[0].span_id),
    ]
    # Without one: part of the server span's trace.
    assert without.parent_id == servers[1].span_id
    assert without.links == []
    assert with_context.attributes["ironpush.outcome"] == "acked"
    assert with_context.attributes["http.response.status_code"] == 200
    assert with_context.attributes["messaging.consumer.group.name"] == "billing"


def test_failures_are_recorded_on_the_push_and_job_spans(
    spans: Callable[[], list[Span]],
) -> None:
    def broken_job() -> None:
        raise LookupError("no such invoice")

    def raising(msg: PushMessage) -> None:
        raise ValueError("bad order")

    router = PushRouter(secret_keys=KEYS)
    router.add_route("/raise", raising, queue="raise", subscriber="s")
    router.add_route("/retry", lambda msg: Retry("later"), queue="retry", subscriber="s")
    router.add_route("/job", lambda msg: Defer(broken_job), queue="job", subscriber="s")
    with SyncPushSimulator(router) as sim:
        assert sim.push("/raise", "x").status_code >= 500
        assert sim.push("/retry", "x").status_code == 503
        assert sim.push("/job", "x").status_code == 202
    found = spans()
    raised = one(found, "process raise")
    assert raised.status == "ERROR"
    assert raised.attributes["error.type"] == "ValueError"
    retried = one(found, "process retry")
    assert retried.status == "ERROR"
    assert retried.attributes["error.type"] == "retry"
    assert retried.attributes["http.response.status_code"] == 503
    job = one(found, f"job {broken_job.__qualname__}")
    assert job.status == "ERROR"
    assert job.attributes["error.type"] == "LookupError"
    assert named(found, "settle job") == []  # a failed job is not acked
    for span in found:  # the exceptions' messages are not recorded
        assert not any("bad order" in t or "no such invoice" in t for t in span.texts)


def test_tracing_false_makes_no_span_even_inside_a_server_span(
    spans: Callable[[], list[Span]], tmp_path: Path
) -> None:
    router = PushRouter(secret_keys=KEYS, store=tmp_path / "s.db", tracing=False)
    router.add_route("/orders", lambda msg: None, queue="orders", subscriber="billing")
    with SyncPushSimulator(_with_server_span(router), router=router) as sim:
        assert sim.push("/orders", "x").status_code == 200
    assert [s.name for s in spans()] == ["POST"]


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    if request.param == "sqlite":
        yield "sqlite", str(tmp_path / "store.db")
        return
    schema = f"trace_{uuid.uuid4().hex[:10]}"
    separator = "&" if "?" in POSTGRES_DSN else "?"
    yield "postgresql", f"{POSTGRES_DSN}{separator}schema={schema}"
    with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_store_calls_are_client_spans_of_the_push_and_the_job(
    store: tuple[str, str], spans: Callable[[], list[Span]]
) -> None:
    system, spec = store

    async def job() -> None:
        return None

    router = PushRouter(secret_keys=KEYS, store=spec)
    router.add_route("/orders", lambda msg: Defer(job), queue="orders", subscriber="billing")
    with SyncPushSimulator(router) as sim:
        assert sim.push("/orders", "x").status_code == 202
        sim.wait_for_acks(1)
    found = spans()
    process = one(found, "process orders")
    job_span = one(found, f"job {job.__qualname__}")
    claim = one(found, "claim")
    assert claim.kind == "CLIENT"
    assert claim.parent_id == process.span_id
    assert claim.attributes["db.system.name"] == system
    assert claim.attributes["db.operation.name"] == "claim"
    # The job's end: complete_ack (completion and ack queued in one call) where the store
    # folds them (SQLite), complete then add where it does not (PostgreSQL).
    ends = ("complete", "complete_ack")
    completed = [s for s in found if s.parent_id == job_span.span_id and s.name in ends]
    assert completed
    if system == "postgresql":
        assert claim.attributes["server.address"] == "127.0.0.1"
        assert claim.attributes["server.port"] == 5432
        assert claim.attributes["db.namespace"] == "test"
    else:
        assert claim.attributes["db.namespace"] == spec
    # The ack of the job's push is a settle span under the job (the simulator's IronMQ).
    settle = one(found, "settle orders")
    assert settle.parent_id == job_span.span_id


def test_without_an_sdk_no_span_is_made_at_all(
    monkeypatch: pytest.MonkeyPatch, dev: DevServer, queue_name: str
) -> None:
    """The API without an SDK: ironpush never calls it to make a (no-op) span."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a span was started without an SDK")

    monkeypatch.setattr(trace.ProxyTracer, "start_span", refuse)
    monkeypatch.setattr(trace.NoOpTracer, "start_span", refuse)
    monkeypatch.setattr(trace.ProxyTracer, "start_as_current_span", refuse)

    async def job() -> None:
        return None

    router = PushRouter(secret_keys=KEYS)
    router.add_route("/orders", lambda msg: Defer(job), queue="orders", subscriber="billing")
    with SyncPushSimulator(router) as sim:
        assert sim.push("/orders", "x", headers={"traceparent": TRACEPARENT}).status_code == 202
        sim.wait_for_acks(1)
    [message_id] = dev.client().queue(queue_name).post("x")
    assert message_id
    assert _stored_headers(dev, queue_name) == [{}]


def test_a_redis_call_failing_in_its_batch_is_a_failed_client_span(
    spans: Callable[[], list[Span]],
) -> None:
    prefix = f"trace-{uuid.uuid4().hex[:10]}"
    router = PushRouter(secret_keys=KEYS, store=f"{REDIS_URL}?prefix={prefix}")
    router.add_route("/orders", lambda msg: None, queue="orders", subscriber="billing")
    client = redis.Redis.from_url(REDIS_URL)
    # The message's claim hash edited by hand: its lease is no number, so its claim fails
    # inside the batch's script (a Lua error), alone.
    key = f"{prefix}:c:{len('m-1')}:m-1:billing"
    client.hset(key, mapping={"s": "running", "l": "soon", "a": "1"})
    try:
        with SyncPushSimulator(router) as sim:
            assert sim.push("/orders", "x", message_id="m-1").status_code == 503
            assert sim.push("/orders", "x", message_id="m-2").status_code == 200
    finally:
        client.delete(*client.keys(f"{prefix}:*"))
        client.close()
    claims = named(spans(), "EVALSHA claim")
    assert len(claims) == 2
    failed, passed = claims
    assert failed.status == "ERROR"
    assert failed.attributes["error.type"] == "ERR"
    assert failed.attributes["db.stored_procedure.name"] == "claim"
    assert passed.status == "UNSET"
    for span in claims:  # the script's message (and the key in it) is not recorded
        assert not any("attempt to compare" in t for t in span.texts)
