"""A deferred job's slot bounds its work, not the store round trips that record it (issue 23).

``max_deferred`` is how many jobs may run at once: a job gives its slot back as its code
returns, and the store calls that record its completion and queue its ack happen after,
without a slot. Those *finishing* jobs count against ``max_unsent_acks`` (they are acks about
to be queued), and shutdown waits for them, so a completion is never dropped.
"""

from __future__ import annotations

import asyncio

import anyio
import pytest
from support import wait_until_async

from ironpush.receiver._jobs import JobRunner
from ironpush.receiver._outcomes import Defer, PushMessage
from ironpush.receiver._router import PushRouter
from ironpush.testing import PushSimulator
from receiver.flaky_store import FlakyStore

pytestmark = pytest.mark.anyio
KEYS = ["job-slots-key"]


def deferring(store: FlakyStore, ran: list[str], **options: object) -> PushRouter:
    router = PushRouter(secret_keys=KEYS, store=store, **options)  # type: ignore[arg-type]

    async def job(message_id: str) -> None:
        ran.append(message_id)

    @router.route("/jobs", queue="jobs", subscriber="worker")
    async def handle(msg: PushMessage) -> Defer:
        return Defer(job, msg.id)

    return router


async def test_a_job_recording_its_completion_holds_no_slot() -> None:
    store, ran = FlakyStore(), list[str]()
    store.hang.add("complete")  # the store is slow to record: the completions wait
    router = deferring(store, ran, max_deferred=1)
    async with PushSimulator(router) as sim:
        runner = router.background.current().runner
        assert (await sim.push("/jobs", "a", message_id="m-1")).status_code == 202
        await wait_until_async(lambda: runner.finishing == 1, 10, "the first job to finish")
        assert runner.in_flight == 0  # its slot is free while its completion waits
        second = await sim.push("/jobs", "b", message_id="m-2")
        assert second.status_code == 202  # not 503: the one slot is free
        await wait_until_async(lambda: runner.finishing == 2, 10, "the second job to finish")
        assert ran == ["m-1", "m-2"]
        assert sim.acks == []  # nothing recorded yet, so nothing acked
        store.unhang.set()
        acks = await sim.wait_for_acks(2, timeout=30)
        assert sorted(str(a.message_id) for a in acks) == ["m-1", "m-2"]
        await wait_until_async(lambda: runner.finishing == 0, 10, "both recorded")


async def test_finishing_jobs_count_against_the_unsent_acks_bound() -> None:
    store, ran = FlakyStore(), list[str]()
    store.hang.add("complete")
    router = deferring(store, ran, max_deferred=10, max_unsent_acks=1)
    async with PushSimulator(router) as sim:
        runner = router.background.current().runner
        assert (await sim.push("/jobs", "a", message_id="m-1")).status_code == 202
        await wait_until_async(lambda: runner.finishing == 1, 10, "the job to finish")
        refused = await sim.push("/jobs", "b", message_id="m-2")
        assert (refused.status_code, refused.json()) == (503, {"status": "busy"})
        assert ran == ["m-1"]
        store.unhang.set()
        await sim.wait_for_acks(1, timeout=30)
        await wait_until_async(lambda: runner.finishing == 0, 10, "the completion recorded")
        assert (await sim.push("/jobs", "b", message_id="m-2")).status_code == 202


async def test_shutdown_records_a_finishing_job_and_sends_its_ack() -> None:
    store, ran = FlakyStore(), list[str]()
    store.hang.add("complete")
    router = deferring(store, ran)
    async with PushSimulator(router) as sim:
        runner = router.background.current().runner
        assert (await sim.push("/jobs", "a", message_id="m-1")).status_code == 202
        await wait_until_async(lambda: runner.finishing == 1, 10, "the job to finish")
        async with anyio.create_task_group() as tg:
            tg.start_soon(router.shutdown)
            await wait_until_async(lambda: not runner.accepting, 10, "the drain to begin")
            assert sim.acks == []
            store.unhang.set()  # the store answers while the router shuts down
        assert [a.message_id for a in sim.acks] == ["m-1"]
        assert ("complete", ("m-1", "worker")) in store.calls


async def test_a_burst_of_pushes_beyond_the_slots_waits_for_jobs_that_end_at_once() -> None:
    store, ran = FlakyStore(), list[str]()
    router = deferring(store, ran, max_deferred=2)
    async with PushSimulator(router) as sim:
        ids = [f"m-{i}" for i in range(12)]
        answers = await asyncio.gather(*(sim.push("/jobs", "x", message_id=m) for m in ids))
        assert [a.status_code for a in answers] == [202] * 12  # no 503: no job was long
        acks = await sim.wait_for_acks(12, timeout=30)
        assert sorted(str(a.message_id) for a in acks) == sorted(ids)
        assert sorted(ran) == sorted(ids)


async def test_waiting_for_room_ends_with_a_slot_given_back_or_without_one() -> None:
    runner = JobRunner(1)
    gate = asyncio.Event()

    async def job() -> None:
        await gate.wait()
        runner.release()

    assert runner.try_reserve()
    runner.start(job())
    assert not runner.has_room()
    assert not await runner.wait_for_room(0.05)  # the job is long: no slot in time
    waiting = asyncio.ensure_future(runner.wait_for_room(30))
    gate.set()
    assert await waiting  # given back as the job's work ended
    assert runner.try_reserve()
    runner.unreserve()
    runner.accepting = False
    assert not await runner.wait_for_room(30)  # draining: at once
    assert await runner.drain(5) == 0
