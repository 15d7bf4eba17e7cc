"""A receiver with three routes, really pushed to by a dev server, for the metrics tests.

:func:`serve_and_push` serves a :func:`three_routes` router with uvicorn (``ServerThread``),
registers its routes on a real dev server (``subscribe_app``), posts one message to each queue
and waits until IronMQ's side is done with each: ``ok`` answered 200, ``job`` answered 202
then acked by the router's outbox, ``boom`` failed twice (its handler raises; one retry).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from support import wait_until

from ironpush import Defer, PushMessage, PushRouter, subscribe_app
from ironpush._signing import push_secret
from ironpush.devserver import DevServer
from ironpush.server_thread import ServerThread

KEYS = ["metrics-test-key-0123456789abcdef-0123456789"]
TOKEN = "metrics-dev-token-s3cret-0123456789abcdef"
QUEUES = ("metrics-ok", "metrics-job", "metrics-boom")
SUBSCRIBER = "svc"


async def send_invoice(order: str) -> None:
    """The deferred job."""


def three_routes(dev: DevServer, **options: Any) -> PushRouter:
    router = PushRouter(
        secret_keys=KEYS, client=dev.async_client(backend="lean", secret_keys=KEYS), **options
    )

    @router.route("/ok", queue="metrics-ok", subscriber=SUBSCRIBER, retries_delay=0.05)
    def ok(msg: PushMessage) -> None:
        return None

    @router.route("/job", queue="metrics-job", subscriber=SUBSCRIBER, retries_delay=5)
    def job(msg: PushMessage) -> Defer:
        return Defer(send_invoice, msg.id)

    @router.route(
        "/boom", queue="metrics-boom", subscriber=SUBSCRIBER, retries=1, retries_delay=0.05
    )
    def boom(msg: PushMessage) -> None:
        raise RuntimeError("planned failure")

    return router


@dataclass
class Pushed:
    url: str  # the router's root URL
    ids: dict[str, str]  # queue -> message id
    statuses: dict[str, list[str | None]]  # queue -> its subscribers' final statuses

    @property
    def secrets(self) -> list[str]:
        return [TOKEN, *KEYS, *(push_secret(q, SUBSCRIBER, KEYS) for q in QUEUES)]


@contextmanager
def serve_and_push(dev: DevServer, router: PushRouter) -> Iterator[Pushed]:
    """Serve ``router``, push one message to each route, wait for the ends; yield."""
    with ServerThread(router) as server, dev.client() as mq:
        subscribe_app(router, server.url, client=mq)
        ids = {queue: mq.queue(queue).post(f'{{"queue": "{queue}"}}')[0] for queue in QUEUES}
        statuses = {
            queue: [s.status for s in mq.queue(queue).wait_for_push(ids[queue], timeout=60)]
            for queue in QUEUES
        }
        # IronMQ has the ack: the outbox's own bookkeeping (counters, metrics) follows it.
        wait_until(lambda: _ack_counted(router), 30, "the job's ack counted by the router")
        yield Pushed(server.url, ids, statuses)


def _ack_counted(router: PushRouter) -> bool:
    timings = router.counters.timings
    if timings is None:
        return router.counters.totals["acked"] >= 2
    return any(
        series.counts and sum(series.counts) for series in timings.outbox_wait.series.values()
    )
