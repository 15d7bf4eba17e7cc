"""``/_health`` tells the truth (issue 11, item 4): 503 with a reason when the store fails or
hangs, or when most recent pushes were refused with 503; 200 otherwise, in bounded time."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from ironpush.receiver._outcomes import PushMessage, Retry
from ironpush.receiver._router import PushRouter
from ironpush.testing import PushSimulator
from receiver.flaky_store import FlakyStore

pytestmark = pytest.mark.anyio
KEYS = ["health-key"]
FIELDS = {"status", "routes", "counters", "outbox_depth", "inflight_jobs"}


def router_on(store: FlakyStore, **options: Any) -> PushRouter:
    router = PushRouter(secret_keys=KEYS, store=store, **options)
    router.add_route("/r", lambda msg: None, queue="q", subscriber="s")
    return router


async def health(sim: PushSimulator) -> tuple[int, dict[str, Any]]:
    answer = await sim.http.get("/_health")
    return answer.status_code, answer.json()


async def test_health_is_200_with_its_fields_while_all_is_well() -> None:
    async with PushSimulator(router_on(FlakyStore())) as sim:
        assert (await sim.push("/r", "x")).status_code == 200
        code, body = await health(sim)
    assert (code, body["status"]) == (200, "ok")
    assert set(body) == FIELDS
    assert body["counters"]["acked"] == 1


async def test_a_failing_store_check_makes_health_503_with_the_reason() -> None:
    store = FlakyStore()
    store.fail.add("check")
    async with PushSimulator(router_on(store)) as sim:
        code, body = await health(sim)
        store.fail.clear()  # the store heals: so does health
        healed, _ = await health(sim)
    assert (code, body["status"]) == (503, "failing")
    assert "unavailable" in body["reason"]
    assert "test fault" in body["reason"]
    assert set(body) == {*FIELDS, "reason"}
    assert healed == 200


async def test_a_hanging_store_makes_health_answer_503_in_bounded_time() -> None:
    store = FlakyStore()
    store.hang.add("check")
    async with PushSimulator(router_on(store, health_timeout=0.05)) as sim:
        with anyio.fail_after(30):  # a hang would hit this, not the assertion
            first = await health(sim)
            second = await health(sim)  # shares the probe still in flight
        assert (await sim.push("/r", "x")).status_code == 200  # pushes are not held up
        store.unhang.set()
    for code, body in (first, second):
        assert (code, body["status"]) == (503, "failing")
        assert "did not answer" in body["reason"]


async def test_most_pushes_refused_with_503_makes_health_503() -> None:
    store = FlakyStore()
    store.fail.add("claim")  # every push: 503 "unavailable"
    async with PushSimulator(router_on(store)) as sim:
        for _ in range(12):
            assert (await sim.push("/r", "x")).status_code == 503
        code, body = await health(sim)
    assert (code, body["status"]) == (503, "failing")
    assert "12 of the last 12 pushes were refused" in body["reason"]


async def test_few_refusals_or_handler_retries_keep_health_200() -> None:
    store = FlakyStore()
    router = PushRouter(secret_keys=KEYS, store=store)

    async def retry(msg: PushMessage) -> Retry:
        return Retry("the handler's own choice")

    router.add_route("/retry", retry, queue="q", subscriber="s")
    async with PushSimulator(router) as sim:
        for _ in range(12):
            assert (await sim.push("/retry", "x")).status_code == 503
        store.fail.add("claim")
        for _ in range(2):
            assert (await sim.push("/retry", "x")).status_code == 503
        code, body = await health(sim)
    assert (code, body["status"]) == (200, "ok")
