"""ironpush.testing: building pushes and the push simulators (async and sync)."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from ironpush._protocol import message_url, parse_delivery
from ironpush._signing import push_secret
from ironpush.receiver._outcomes import Defer, PushMessage
from ironpush.receiver._router import PushRouter
from ironpush.testing import FAKE_IRONMQ, PushSimulator, SyncPushSimulator, build_push

KEYS = ["testing-key"]


@pytest.fixture
def router() -> PushRouter:
    router = PushRouter(secret_keys=KEYS)

    @router.route("/orders", queue="orders", subscriber="billing", json=True)
    async def orders(msg: PushMessage) -> Defer | None:
        return Defer(lambda: None) if msg.json().get("defer") else None

    return router


def test_build_push_makes_v3_headers_with_the_secret(router: PushRouter) -> None:
    headers, content, query = build_push(router, "/orders", {"id": 1}, message_id="m1")
    delivery = parse_delivery(headers)
    assert (delivery.message_id, delivery.subscriber_name, delivery.flavour) == (
        "m1",
        "billing",
        "v3",
    )
    assert delivery.reservation_id
    assert headers["X-Ironpush-Secret"] == push_secret("orders", "billing", KEYS)
    assert headers["User-Agent"] == "IronMQ Pusherd"
    assert content == b'{"id": 1}'
    assert query == ""
    # The v3 ack URL is the pusher's: built by ironpush._protocol.message_url.
    assert delivery.subscriber_message_url == message_url(
        FAKE_IRONMQ, "test", "orders", "m1", "billing", delivery.reservation_id
    )


def test_build_push_legacy_and_query_secret(router: PushRouter) -> None:
    headers, _, query = build_push(router, "/orders", "x", legacy=True, secret_in="query")
    delivery = parse_delivery(headers)
    assert delivery.flavour == "legacy"
    assert delivery.subscriber_message_url
    assert "X-Ironpush-Secret" not in headers
    assert query.startswith("ironpush_secret=")
    with pytest.raises(ValueError, match="no route"):
        build_push(router, "/missing")


@pytest.mark.anyio
async def test_simulator_on_a_mounted_app_records_acks(router: PushRouter) -> None:
    app = Starlette(routes=[Mount("/ironmq", app=router)])
    async with PushSimulator(app, router=router, mount="/ironmq") as sim:
        assert (await sim.push("/orders", {"defer": False})).status_code == 200
        deferred = await sim.push("/orders", {"defer": True})
        assert deferred.status_code == 202
        [ack] = await sim.wait_for_acks(1)
        assert (ack.message_id, ack.status_code) == (deferred.message_id, 200)
        assert (await sim.redeliver(deferred)).json() == {"status": "duplicate"}


@pytest.mark.anyio
async def test_wait_for_acks_times_out(router: PushRouter) -> None:
    async with PushSimulator(router) as sim:
        await sim.push("/orders", {})
        with pytest.raises(TimeoutError):
            await sim.wait_for_acks(1, timeout=0.05)


def test_simulator_needs_the_router_for_a_plain_app() -> None:
    with pytest.raises(TypeError, match="router="):
        PushSimulator(Starlette())


# --------------------------------------------------------------------------- the sync twin


def test_sync_simulator_runs_sync_tests_with_acks_and_dedupe(router: PushRouter) -> None:
    app = Starlette(routes=[Mount("/ironmq", app=router)])
    with SyncPushSimulator(app, router=router, mount="/ironmq") as sim:
        assert sim.push("/orders", {"defer": False}).status_code == 200
        deferred = sim.push("/orders", {"defer": True})
        assert deferred.status_code == 202
        [ack] = sim.wait_for_acks(1)
        assert (ack.message_id, ack.subscriber_name) == (deferred.message_id, "billing")
        assert sim.redeliver(deferred).json() == {"status": "duplicate"}
        assert sim.acks == [ack]


def test_sync_simulator_times_out_and_refuses_use_outside_with(router: PushRouter) -> None:
    sim = SyncPushSimulator(router)
    with pytest.raises(RuntimeError, match="inside `with"):
        sim.push("/orders", {})
    with sim:
        sim.push("/orders", {})
        with pytest.raises(TimeoutError):
            sim.wait_for_acks(1, timeout=0.05)
