"""External workers: ``Defer()``, then ``POST /_ack`` or ``/_release`` with the ack token."""

from __future__ import annotations

import pytest

from ironpush._signing import load_ack_token, push_secret
from ironpush.receiver._outcomes import Defer, PushMessage
from ironpush.receiver._router import PushRouter
from ironpush.testing import PushSimulator

from .contract import KEYS, Calls

pytestmark = pytest.mark.anyio


async def test_external_defer_then_ack_endpoint_uses_the_newest_reservation(
    sim: PushSimulator, calls: Calls
) -> None:
    first = await sim.push("/plain", "external")
    assert first.status_code == 202
    token = calls.messages[0].ack_token
    assert load_ack_token(token, KEYS)[1].reservation_id == first.reservation_id
    second = await sim.redeliver(first)  # the worker is slow: IronMQ pushed again
    assert second.json() == {"status": "in_progress"}
    assert len(calls.messages) == 1
    answer = await sim.http.post("/_ack", content=token)
    assert (answer.status_code, answer.json()) == (200, {"status": "acked"})
    [ack] = sim.acks
    assert ack.reservation_id == second.reservation_id
    assert (await sim.redeliver(first)).json() == {"status": "duplicate"}


async def test_ack_endpoint_accepts_json_and_reports_late_acks(calls: Calls) -> None:
    router = PushRouter(secret_keys=KEYS)

    @router.route("/ext", queue="q", subscriber="s")
    async def ext(msg: PushMessage) -> Defer:
        calls.messages.append(msg)
        return Defer()

    async with PushSimulator(router, ack_status=404) as sim:
        await sim.push("/ext", "x")
        answer = await sim.http.post("/_ack", json={"token": calls.messages[0].ack_token})
        assert answer.json() == {"status": "late"}
        assert router.counters.totals["late_acks"] == 1


async def test_ack_endpoint_refuses_bad_tokens(sim: PushSimulator) -> None:
    answer = await sim.http.post("/_ack", content=b"forged.token.value")
    assert answer.status_code == 403
    assert sim.acks == []
    secret = push_secret("orders", "billing", KEYS)  # a push secret is not an ack token
    assert (await sim.http.post("/_ack", content=secret)).status_code == 403


async def test_release_endpoint_lets_the_next_push_run_the_handler(
    sim: PushSimulator, calls: Calls
) -> None:
    first = await sim.push("/plain", "external")
    answer = await sim.http.post("/_release", content=calls.messages[0].ack_token)
    assert answer.json() == {"status": "released"}
    again = await sim.redeliver(first, body="ack")
    assert again.status_code == 200
    assert [m.attempt for m in calls.messages] == [1, 2]
