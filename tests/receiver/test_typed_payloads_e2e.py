"""Typed payloads end to end: the dev server's pusher delivers to a router served by uvicorn on a
real port, registered by ``subscribe_app``. A valid body reaches the handler as the model; an
invalid one lands, with the validation error, in the dead-letter queue (``on_invalid="drop"``)
or, rejected with 400, in IronMQ's error queue after the retries (``on_invalid="reject"``)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pydantic
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount
from support import wait_until

from ironpush import IronMQ, PushMessage, PushRouter, subscribe_app
from ironpush.devserver import DevServer
from ironpush.server_thread import ServerThread

KEYS = ["typed-e2e-key-0123456789"]


class Order(pydantic.BaseModel):
    id: int
    total: float


@pytest.fixture(scope="module")
def dev() -> Iterator[DevServer]:
    with DevServer(push_timeout=5.0) as server:
        yield server


@pytest.fixture
def mq(dev: DevServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[IronMQ]:
    monkeypatch.setenv("IRONMQ_EMULATOR_HOST", dev.url)  # the router's own client (dead letters)
    with dev.client() as client:
        yield client


def test_valid_body_is_typed_and_invalid_ones_are_dropped_or_rejected(
    mq: IronMQ, queue_name: str
) -> None:
    router = PushRouter(secret_keys=KEYS, dead_letter_queue=f"{queue_name}-dead")
    charged: list[Order] = []

    @router.route("/orders", queue=queue_name, subscriber="billing", model=Order)
    def billing(msg: PushMessage[Order]) -> None:
        charged.append(msg.payload)

    @router.route(
        "/audit",
        queue=f"{queue_name}-strict",
        subscriber="audit",
        model=Order,
        on_invalid="reject",
        retries=1,
        retries_delay=0.1,
        error_queue=f"{queue_name}-errors",
    )
    def audit(msg: PushMessage[Order]) -> None:
        charged.append(msg.payload)

    app = Starlette(routes=[Mount("/ironmq", app=router)], lifespan=router.lifespan)
    with ServerThread(app) as server:
        report = subscribe_app(router, server.url + "/ironmq", client=mq)
        assert [c.action for c in report.changes] == ["created", "created"]
        orders, strict = mq.queue(queue_name), mq.queue(f"{queue_name}-strict")
        [good, bad] = orders.post('{"id": 1, "total": 9.5}', '{"id": "one", "total": 9.5}')
        [rejected] = strict.post('{"total": 3}')
        good_status, bad_status = (orders.wait_for_push(m, timeout=20)[0] for m in (good, bad))
        [rejected_status] = strict.wait_for_push(rejected, timeout=20)
        dead = wait_until(lambda: mq.queue(f"{queue_name}-dead").peek(), 20, "the dead letter")
        errors = wait_until(lambda: mq.queue(f"{queue_name}-errors").peek(), 20, "the error")

    assert charged == [Order(id=1, total=9.5)]
    assert (good_status.status, bad_status.status) == ("deleted", "deleted")  # both 200
    [letter] = (json.loads(m.body) for m in dead)
    assert letter["source_msg_id"] == bad
    assert letter["reason"].startswith("invalid payload: id: Input should be a valid integer")
    assert (rejected_status.status, rejected_status.status_code) == ("error", 400)
    assert rejected_status.tries == 2  # the first try and one retry, then the error queue
    assert "invalid payload: id: Field required" in (rejected_status.msg or "")
    assert [json.loads(m.body)["source_msg_id"] for m in errors] == [rejected]
