"""``/_ack`` and ``/_release`` act only on the (queue, subscriber) pairs the router declares
(issue 11, item 6): a valid token of the same keys for anything else gets 404, and nothing
is sent to IronMQ or changed in the store."""

from __future__ import annotations

import pytest

from ironpush._protocol import Delivery
from ironpush._signing import dump_ack_token
from ironpush.receiver._outcomes import Defer, PushMessage
from ironpush.receiver._router import PushRouter
from ironpush.testing import PushSimulator

pytestmark = pytest.mark.anyio
KEYS = ["scope-key"]


async def external(msg: PushMessage) -> Defer:
    return Defer()


def router() -> PushRouter:
    router = PushRouter(secret_keys=KEYS)
    router.add_route("/jobs", external, queue="jobs", subscriber="worker")
    return router


@pytest.mark.parametrize(
    ("queue", "subscriber"),
    [("other-queue", "worker"), ("jobs", "someone-else"), ("other-queue", "other")],
)
@pytest.mark.parametrize("endpoint", ["/_ack", "/_release"])
async def test_a_token_for_an_undeclared_pair_is_404_and_nothing_happens(
    queue: str, subscriber: str, endpoint: str
) -> None:
    async with PushSimulator(router()) as sim:
        held = await sim.push("/jobs", "x", message_id="m-scope", reservation_id="r1")
        assert held.status_code == 202
        delivery = Delivery("m-scope", reservation_id="r1", subscriber_name=subscriber)
        token = dump_ack_token(queue, delivery, KEYS)  # validly signed by the same keys
        answer = await sim.http.post(endpoint, content=token)
        assert answer.status_code == 404
        assert "no route" in answer.json()["error"]
        assert sim.acks == []
        again = await sim.redeliver(held)
        assert again.json() == {"status": "in_progress"}  # still held: not released, not acked


@pytest.mark.parametrize("endpoint", ["/_ack", "/_release"])
async def test_a_token_for_a_declared_pair_is_acted_on(endpoint: str) -> None:
    async with PushSimulator(router()) as sim:
        held = await sim.push("/jobs", "x", message_id="m-ok", reservation_id="r1")
        token = dump_ack_token("jobs", Delivery("m-ok", "r1", "worker"), KEYS)
        answer = await sim.http.post(endpoint, content=token)
        assert answer.status_code == 200
        if endpoint == "/_ack":
            assert answer.json() == {"status": "acked"}
            assert [a.message_id for a in sim.acks] == ["m-ok"]
        else:
            assert answer.json() == {"status": "released"}
            assert sim.acks == []
            again = await sim.redeliver(held)  # runs the handler again
            assert again.json() == {"status": "deferred"}
