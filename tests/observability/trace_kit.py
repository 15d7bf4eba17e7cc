"""Spans as plain records, from the SDK's in-memory exporter or from OTLP/HTTP requests, and
the checks every tracing test shares (one trace from post to ack; no secret anywhere).

:func:`memory_provider` installs an SDK as the global tracer provider for one test and takes
it away afterwards (OpenTelemetry sets it once per process: the reset is the one its own test
utilities do), so the rest of the suite keeps running without an SDK.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.util._once import Once

import ironpush._tracing

REDIS_URL = os.environ.get("IRONPUSH_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
KINDS = {1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}


@dataclass(frozen=True)
class Span:
    """One finished span, whoever exported it."""

    name: str
    kind: str
    trace_id: str
    span_id: str
    parent_id: str | None
    attributes: dict[str, Any]
    links: list[tuple[str, str]] = field(default_factory=list)  # (trace id, span id)
    status: str = "UNSET"
    texts: list[str] = field(default_factory=list)  # event names and attribute values
    service: str = ""


# --- the in-memory SDK ------------------------------------------------------------------


@contextmanager
def memory_provider(service: str = "test") -> Iterator[InMemorySpanExporter]:
    """The SDK with an in-memory exporter as the global provider, for the block only."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    _reset_global()
    trace.set_tracer_provider(provider)
    try:
        yield exporter
    finally:
        provider.shutdown()
        _reset_global()


def _reset_global() -> None:
    trace._TRACER_PROVIDER_SET_ONCE = Once()  # type: ignore[attr-defined]
    trace._TRACER_PROVIDER = None  # type: ignore[attr-defined]
    assert ironpush._tracing.tracer() is None


def from_sdk(spans: Iterable[ReadableSpan]) -> list[Span]:
    out = []
    for s in spans:
        context = s.get_span_context()
        assert context is not None
        texts = [e.name for e in s.events]
        texts += [str(v) for e in s.events for v in (e.attributes or {}).values()]
        texts += [str(v) for link in s.links for v in (link.attributes or {}).values()]
        out.append(
            Span(
                name=s.name,
                kind=s.kind.name,
                trace_id=f"{context.trace_id:032x}",
                span_id=f"{context.span_id:016x}",
                parent_id=f"{s.parent.span_id:016x}" if s.parent is not None else None,
                attributes=dict(s.attributes or {}),
                links=[
                    (f"{link.context.trace_id:032x}", f"{link.context.span_id:016x}")
                    for link in s.links
                ],
                status=s.status.status_code.name,
                texts=texts,
                service=str(s.resource.attributes.get("service.name", "")),
            )
        )
    return out


# --- OTLP/HTTP ------------------------------------------------------------------------------


def _value(v: Any) -> Any:
    which = v.WhichOneof("value")
    if which == "array_value":
        return [_value(x) for x in v.array_value.values]
    if which == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in v.kvlist_value.values}
    return getattr(v, which) if which else None


def from_otlp(request: ExportTraceServiceRequest) -> list[Span]:
    out = []
    for rs in request.resource_spans:
        resource = {kv.key: _value(kv.value) for kv in rs.resource.attributes}
        for ss in rs.scope_spans:
            for s in ss.spans:
                texts = [e.name for e in s.events]
                texts += [str(_value(kv.value)) for e in s.events for kv in e.attributes]
                texts += [str(_value(kv.value)) for link in s.links for kv in link.attributes]
                out.append(
                    Span(
                        name=s.name,
                        kind=KINDS.get(s.kind, str(s.kind)),
                        trace_id=s.trace_id.hex(),
                        span_id=s.span_id.hex(),
                        parent_id=s.parent_span_id.hex() or None,
                        attributes={kv.key: _value(kv.value) for kv in s.attributes},
                        links=[(link.trace_id.hex(), link.span_id.hex()) for link in s.links],
                        status={0: "UNSET", 1: "OK", 2: "ERROR"}.get(s.status.code, "?"),
                        texts=texts,
                        service=str(resource.get("service.name", "")),
                    )
                )
    return out


class OtlpCollector:
    """A tiny OTLP/HTTP trace receiver on a real socket: ``POST /v1/traces`` (protobuf)."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.bodies: list[bytes] = []
        self._lock = threading.Lock()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status = 404
                if self.path == "/v1/traces":
                    request = ExportTraceServiceRequest()
                    request.ParseFromString(body)
                    with collector._lock:
                        collector.bodies.append(body)
                        collector.spans.extend(from_otlp(request))
                    status = 200
                self.send_response(status)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1/traces"

    def snapshot(self) -> list[Span]:
        with self._lock:
            return list(self.spans)

    def __enter__(self) -> OtlpCollector:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


# --- what one deferred push's trace must look like ------------------------------------------


def named(spans: list[Span], name: str, **attributes: Any) -> list[Span]:
    return [
        s
        for s in spans
        if s.name == name and all(s.attributes.get(k) == v for k, v in attributes.items())
    ]


def one(spans: list[Span], name: str, **attributes: Any) -> Span:
    found = named(spans, name, **attributes)
    assert len(found) == 1, (name, attributes, [(s.name, s.attributes) for s in spans])
    return found[0]


def children(spans: list[Span], parent: Span) -> list[Span]:
    return [s for s in spans if s.parent_id == parent.span_id]


def check_one_trace(
    spans: list[Span], *, queue: str, message_id: str, job: str, task: str
) -> dict[str, Span]:
    """The trace of one message posted inside a span, pushed to two subscribers: ``jobs``
    (``Defer(job)`` in the receiver, acked by its outbox) and ``celery`` (``enqueue(task)``,
    acked by the worker). Returns the main spans by role."""
    send = one(spans, f"send {queue}")
    assert send.kind == "PRODUCER"
    assert send.attributes["messaging.system"] == "ironmq"
    assert send.attributes["messaging.operation.type"] == "send"
    assert send.attributes["messaging.destination.name"] == queue
    assert send.attributes["messaging.message.id"] == message_id
    trace_id = send.trace_id
    mine = [s for s in spans if s.trace_id == trace_id]

    roles = {"send": send}
    for subscriber in ("jobs", "celery"):
        process = one(mine, f"process {queue}", **{"messaging.consumer.group.name": subscriber})
        assert process.kind == "CONSUMER"
        assert process.parent_id == send.span_id  # the creation context is its parent...
        assert (trace_id, send.span_id) in process.links  # ...and linked, as semconv says
        attributes = process.attributes
        assert attributes["messaging.system"] == "ironmq"
        assert attributes["messaging.operation.type"] == "process"
        assert attributes["messaging.destination.name"] == queue
        assert attributes["messaging.message.id"] == message_id
        assert attributes["messaging.ironmq.message.delivery_attempt"] == 1
        assert attributes["ironpush.outcome"] == "deferred"
        assert attributes["http.response.status_code"] == 202
        claim = [s for s in children(mine, process) if s.name == "EVALSHA claim"]
        assert claim, [s.name for s in children(mine, process)]
        assert claim[0].kind == "CLIENT"
        assert claim[0].attributes["db.system.name"] == "redis"
        assert claim[0].attributes["db.operation.name"] == "EVALSHA"
        assert claim[0].attributes["db.stored_procedure.name"] == "claim"
        assert isinstance(claim[0].attributes["server.port"], int)
        roles[f"process {subscriber}"] = process

    in_process = one(mine, f"job {job}")
    assert in_process.kind == "INTERNAL"
    assert in_process.parent_id == roles["process jobs"].span_id
    assert in_process.attributes["messaging.message.id"] == message_id
    outbox_ack = one(mine, f"settle {queue}", **{"messaging.consumer.group.name": "jobs"})
    assert outbox_ack.kind == "CLIENT"
    assert outbox_ack.parent_id == in_process.span_id
    assert outbox_ack.attributes["messaging.operation.type"] == "settle"
    assert outbox_ack.attributes["messaging.operation.name"] == "ack"
    assert outbox_ack.attributes["messaging.message.id"] == message_id
    [http] = [s for s in children(mine, outbox_ack) if s.name == "DELETE"]
    assert http.kind == "CLIENT"
    assert http.attributes["http.request.method"] == "DELETE"
    assert http.attributes["http.response.status_code"] == 200
    assert isinstance(http.attributes["server.port"], int)
    # The job's end: complete.lua records the completion and queues the ack, one script.
    completes = [s for s in children(mine, in_process) if s.name == "EVALSHA complete"]
    assert completes, [s.name for s in children(mine, in_process)]

    worker = one(mine, f"job {task}")
    assert worker.kind == "CONSUMER"
    assert worker.parent_id == roles["process celery"].span_id
    assert worker.attributes["messaging.consumer.group.name"] == "celery"
    assert worker.attributes["messaging.message.id"] == message_id
    worker_ack = one(mine, f"settle {queue}", **{"messaging.consumer.group.name": "celery"})
    assert worker_ack.kind == "CLIENT"
    assert worker_ack.parent_id == worker.span_id
    assert worker_ack.attributes["messaging.operation.name"] == "ack"
    stored = [s for s in children(mine, worker_ack) if s.attributes.get("db.system.name")]
    assert stored, [s.name for s in children(mine, worker_ack)]

    roles.update(job=in_process, outbox_ack=outbox_ack, task=worker, task_ack=worker_ack)
    # Every span that belongs to this message's work is in the one trace.
    for s in spans:
        if s.attributes.get("messaging.message.id") == message_id:
            assert s.trace_id == trace_id, s
    return roles


def leaks(spans: Iterable[Span], secrets: Iterable[str]) -> list[str]:
    """Each (span, secret) where a secret appears in a span's name, attributes (keys or
    values), events or links."""
    found = []
    wanted = [s for s in secrets if s]
    for span in spans:
        texts = [span.name, *span.texts]
        texts += [f"{k}={v}" for k, v in span.attributes.items()]
        for secret in wanted:
            if any(secret in text for text in texts):
                found.append(f"{span.name}: {secret[:6]}...")
    return found


@contextmanager
def redis_names() -> Iterator[str]:
    """A name unique to this test for Redis prefixes and Celery queues; every key with it is
    deleted afterwards (the store's keys, the broker's bindings)."""
    import redis

    name = f"trace-{uuid.uuid4().hex[:10]}"
    try:
        yield name
    finally:
        client = redis.Redis.from_url(REDIS_URL, socket_timeout=5)
        try:
            keys = list(client.scan_iter(match=f"*{name}*", count=1000))
            if keys:
                client.delete(*keys)
        finally:
            client.close()
