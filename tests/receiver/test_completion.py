"""A finished handler or job is recorded at once (issue 11, item 3), and a store that fails is
answered 503, never with an ack the store does not know about."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from support import wait_until_async

from ironpush.receiver._outcomes import Defer, PushMessage
from ironpush.receiver._router import PushRouter
from ironpush.testing import PushResult, PushSimulator
from receiver.flaky_store import FlakyStore

pytestmark = pytest.mark.anyio
KEYS = ["completion-key"]


def routed(store: FlakyStore) -> PushRouter:
    """One route per kind of work: async and sync handlers, async and sync deferred jobs."""
    router = PushRouter(secret_keys=KEYS, store=store)

    async def async_handler(msg: PushMessage) -> None:
        return None

    def sync_handler(msg: PushMessage) -> None:
        return None

    async def async_job() -> None:
        return None

    def blocking_job() -> None:
        return None

    async def defer_async(msg: PushMessage) -> Defer:
        return Defer(async_job)

    async def defer_sync(msg: PushMessage) -> Defer:
        return Defer(blocking_job)

    router.add_route("/async", async_handler, queue="q", subscriber="a")
    router.add_route("/sync", sync_handler, queue="q", subscriber="s")
    router.add_route("/async-job", defer_async, queue="q", subscriber="aj")
    router.add_route("/sync-job", defer_sync, queue="q", subscriber="sj")
    return router


@pytest.fixture
async def stuck() -> AsyncIterator[tuple[FlakyStore, PushSimulator]]:
    """A router whose store is stuck on the claims of 12 other pushes, left in flight."""
    store = FlakyStore()
    store.hang_keys = lambda key: key[0].startswith("stuck-")
    router = routed(store)
    async with PushSimulator(router) as sim, anyio.create_task_group() as tg:
        for i in range(12):
            tg.start_soon(functools.partial(sim.push, "/async", "x", message_id=f"stuck-{i}"))
        await wait_until_async(lambda: router.counters.totals["received"] == 12)
        yield store, sim
        assert not [n for n, k in store.calls if k is not None and k[0].startswith("stuck-")]
        store.unhang.set()  # the stuck pushes finish now; nothing they did was seen before


@pytest.mark.parametrize("path", ["/async", "/sync", "/async-job", "/sync-job"])
async def test_a_completion_is_not_queued_behind_other_pushes_store_calls(
    stuck: tuple[FlakyStore, PushSimulator], path: str
) -> None:
    store, sim = stuck
    result = await sim.push(path, "x", message_id=f"done-{path}")
    assert result.status_code in (200, 202)
    await wait_until_async(lambda: store.completed() == [result.message_id], 10, "the record")
    if path.endswith("-job"):
        [ack] = await sim.wait_for_acks(1)
        assert ack.message_id == result.message_id


@pytest.mark.parametrize("deferred", [False, True], ids=["async handler", "async job"])
async def test_nothing_else_runs_between_an_async_return_and_its_record(deferred: bool) -> None:
    """Recorded before control goes back to the event loop: a ticker task sees no turn between
    the moment the work returns and the moment the store is told."""
    ticks = 0
    seen: dict[str, int] = {}

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    async def work() -> None:
        seen["returned"] = ticks

    async def handler(msg: PushMessage) -> Defer | None:
        if deferred:
            return Defer(work)
        await work()
        return None

    store = FlakyStore()
    store.on_complete = lambda key: seen.setdefault("recorded", ticks)
    router = PushRouter(secret_keys=KEYS, store=store)
    router.add_route("/r", handler, queue="q", subscriber="s")
    async with PushSimulator(router) as sim, anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        result = await sim.push("/r", "x")
        await wait_until_async(lambda: "recorded" in seen, 10, "the record")
        tg.cancel_scope.cancel()
    assert result.status_code == (202 if deferred else 200)
    assert seen["recorded"] == seen["returned"]


async def test_a_sync_handler_is_recorded_before_its_answer_is_sent() -> None:
    store = FlakyStore()
    router = PushRouter(secret_keys=KEYS, store=store)
    router.add_route("/r", lambda msg: None, queue="q", subscriber="s")
    async with PushSimulator(router) as sim:
        result = await sim.push("/r", "x")
        # the answer came back only after the record: nothing to wait for
        assert (result.status_code, store.completed()) == (200, [result.message_id])


# --- a failing store: 503, and never an ack without a record ---------------------------------


async def push_with(store: FlakyStore, handler: Any, body: str = "x") -> tuple[PushResult, Any]:
    router = PushRouter(secret_keys=KEYS, store=store)
    router.add_route("/r", handler, queue="q", subscriber="s")
    async with PushSimulator(router) as sim:
        result = await sim.push("/r", body)
        await router.shutdown()  # runs the jobs to their end and flushes the outbox
        return result, sim


async def test_a_failing_claim_answers_503_without_running_the_handler() -> None:
    store, seen = FlakyStore(), []
    store.fail.add("claim")
    result, sim = await push_with(store, seen.append)
    assert (result.status_code, result.json()) == (503, {"status": "unavailable"})
    assert seen == []
    assert sim.acks == []
    assert sim.router.counters.totals["busy"] == 1


async def test_a_failing_completion_answers_503_and_acks_nothing() -> None:
    store, seen = FlakyStore(), []
    store.fail.add("complete")
    result, sim = await push_with(store, seen.append)
    assert seen, "the handler ran"
    assert (result.status_code, result.json()) == (503, {"status": "unavailable"})
    assert sim.acks == []


async def test_a_deferred_job_whose_completion_fails_is_not_acked() -> None:
    store, ran = FlakyStore(), []
    store.fail.add("complete")

    async def handler(msg: PushMessage) -> Defer:
        return Defer(ran.append, msg.id)

    result, sim = await push_with(store, handler)
    assert result.status_code == 202
    assert ran == [result.message_id]
    assert sim.acks == []  # not recorded, so not acked: the lease runs out, IronMQ pushes again


async def test_a_failing_hand_off_answers_503() -> None:
    store = FlakyStore()
    store.fail.add("hold")

    async def handler(msg: PushMessage) -> Defer:
        return Defer()  # an external worker's: the claim is held for it with its long lease

    result, sim = await push_with(store, handler)
    assert result.status_code == 503
    assert sim.router.counters.by_route[("q", "s", "store_unavailable")] == 1
    assert sim.acks == []


async def test_a_deferred_job_needs_no_store_call_between_its_claim_and_its_end() -> None:
    store, seen = FlakyStore(), []
    store.fail.add("hold")  # never asked: the claim the push made is the job's

    async def job() -> None:
        seen.append(list(store.calls))

    async def handler(msg: PushMessage) -> Defer:
        return Defer(job)

    result, sim = await push_with(store, handler)
    assert result.status_code == 202
    key = (result.message_id, "s")
    assert seen == [[("claim", key)]]
    assert store.calls == [("claim", key), ("complete", key)]
    assert [ack.message_id for ack in sim.acks] == [result.message_id]
