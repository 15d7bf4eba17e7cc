"""One trace from ``post()`` to the acks, in one process, through the SDK's in-memory exporter.

A real dev server pushes one message (posted by the ironpush client inside the test's span) to
a real receiver on a real uvicorn socket, for two subscribers: ``jobs`` defers to an
in-process job (acked by the router's outbox over the lean HTTP client) and ``celery`` hands
the push to a real Celery worker (``celery.contrib.testing``'s worker thread, a Redis broker),
which acks it. The store is Redis, so store calls are spans too.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery
from celery.contrib.testing.worker import start_worker
from opentelemetry import trace
from support import wait_until
from trace_kit import (
    REDIS_URL,
    check_one_trace,
    from_sdk,
    leaks,
    memory_provider,
    named,
    redis_names,
)

from ironpush import Defer, PushMessage, PushRouter
from ironpush._signing import DEFAULT_SECRET_HEADER, push_secret
from ironpush.celery import acknowledge_pushes, enqueue
from ironpush.client._models import Subscriber
from ironpush.devserver import DevServer
from ironpush.integrations.acks import PushAcks
from ironpush.server_thread import ServerThread

KEYS = ["trace-test-key-0123456789abcdef-0123456789"]
TOKEN = "trace-dev-token-s3cret-0123456789abcdef"


async def render_invoice(message_id: str) -> None:
    """The in-process deferred job."""


@pytest.fixture
def dev() -> Iterator[DevServer]:
    with DevServer(token=TOKEN) as server:
        yield server


@pytest.fixture
def unique() -> Iterator[str]:
    with redis_names() as name:
        yield name


def _subscribers(queue: str, url: str) -> list[Subscriber]:
    return [
        Subscriber(
            name=name,
            url=f"{url}/{name}",
            headers={DEFAULT_SECRET_HEADER: push_secret(queue, name, KEYS)},
        )
        for name in ("jobs", "celery")
    ]


def test_one_trace_id_from_post_through_push_job_celery_and_acks(
    dev: DevServer, queue_name: str, unique: str
) -> None:
    store = f"{REDIS_URL}?prefix={unique}"
    tokens: list[str] = []
    billed: list[str] = []

    app = Celery("trace_in_memory", broker=REDIS_URL)
    app.conf.task_default_queue = unique
    acknowledge_pushes(
        app, acks=PushAcks(store=store, client=lambda: dev.async_client(secret_keys=KEYS))
    )

    @app.task(name="trace_tests.bill")
    def bill(message_id: str) -> None:
        billed.append(message_id)

    router = PushRouter(
        secret_keys=KEYS, store=store, client=dev.async_client(backend="lean", secret_keys=KEYS)
    )

    def to_job(msg: PushMessage) -> Defer:
        return Defer(render_invoice, msg.id)

    def to_celery(msg: PushMessage) -> Any:
        tokens.append(msg.ack_token or "")
        return enqueue(bill, msg, msg.id)

    router.add_route("/jobs", to_job, queue=queue_name, subscriber="jobs")
    router.add_route("/celery", to_celery, queue=queue_name, subscriber="celery")

    with (
        memory_provider() as exporter,
        start_worker(app, perform_ping_check=False),
        ServerThread(router) as server,
    ):
        mq = dev.client()
        subscribers = _subscribers(queue_name, server.url)
        mq.create_queue(queue_name, type="multicast", subscribers=subscribers)
        with trace.get_tracer("shop").start_as_current_span("checkout"):
            [message_id] = mq.queue(queue_name).post('{"order": 1}')

        def both_acked() -> bool:
            spans = from_sdk(exporter.get_finished_spans())
            return len(named(spans, f"settle {queue_name}")) == 2 and bool(
                named(spans, "job trace_tests.bill")
            )

        wait_until(both_acked, 60, "both acks' settle spans")
        statuses = mq.queue(queue_name).wait_for_push(message_id, timeout=30)
        assert {s.status for s in statuses} == {"deleted"}, statuses

    spans = from_sdk(exporter.get_finished_spans())
    roles = check_one_trace(
        spans,
        queue=queue_name,
        message_id=message_id,
        job="render_invoice",
        task="trace_tests.bill",
    )
    [checkout] = named(spans, "checkout")
    assert roles["send"].parent_id == checkout.span_id
    assert billed == [message_id]
    assert tokens
    assert all(tokens)
    secrets = [TOKEN, *KEYS, *tokens]
    secrets += [push_secret(queue_name, name, KEYS) for name in ("jobs", "celery")]
    assert leaks(spans, secrets) == []


def test_a_failed_celery_task_is_an_error_span_and_its_release_a_settle_span(
    dev: DevServer, queue_name: str, unique: str
) -> None:
    store = f"{REDIS_URL}?prefix={unique}"
    app = Celery("trace_in_memory_failure", broker=REDIS_URL)
    app.conf.task_default_queue = unique
    acknowledge_pushes(
        app, acks=PushAcks(store=store, client=lambda: dev.async_client(secret_keys=KEYS))
    )

    @app.task(name="trace_tests.refuse")
    def refuse(message_id: str) -> None:
        raise PermissionError("card declined")

    router = PushRouter(secret_keys=KEYS, store=store, client=dev.async_client(secret_keys=KEYS))
    router.add_route(
        "/celery", lambda msg: enqueue(refuse, msg, msg.id), queue=queue_name, subscriber="celery"
    )
    with (
        memory_provider() as exporter,
        start_worker(app, perform_ping_check=False),
        ServerThread(router) as server,
    ):
        mq = dev.client()
        celery_only = [s for s in _subscribers(queue_name, server.url) if s.name == "celery"]
        mq.create_queue(queue_name, type="multicast", subscribers=celery_only)
        with trace.get_tracer("shop").start_as_current_span("checkout"):
            [message_id] = mq.queue(queue_name).post("x")

        def released() -> bool:
            spans = from_sdk(exporter.get_finished_spans())
            return bool(named(spans, f"settle {queue_name}")) and bool(
                named(spans, "job trace_tests.refuse")
            )

        wait_until(released, 60, "the release's settle span")

    spans = from_sdk(exporter.get_finished_spans())
    [task] = named(spans, "job trace_tests.refuse")
    [settle] = named(spans, f"settle {queue_name}")
    [send] = named(spans, f"send {queue_name}")
    assert task.trace_id == send.trace_id
    assert task.status == "ERROR"
    assert task.attributes["error.type"] == "PermissionError"
    assert settle.parent_id == task.span_id
    assert settle.attributes["messaging.operation.name"] == "release"
    assert settle.attributes["messaging.message.id"] == message_id
    assert not any("card declined" in text for span in spans for text in span.texts)
