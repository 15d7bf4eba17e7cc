"""Deferred work: 202, the job, its ack with the newest reservation, capacity."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import anyio
import pytest
from support import wait_until_async

from ironpush.receiver._outcomes import Defer, PushMessage
from ironpush.receiver._router import PushRouter
from ironpush.testing import PushSimulator

from .contract import KEYS, Calls

pytestmark = pytest.mark.anyio


# --- 202 -----------------------------------------------------------------------------------


async def test_defer_answers_202_runs_the_job_and_acks_its_reservation(
    sim: PushSimulator, calls: Calls
) -> None:
    result = await sim.push("/plain", "defer")
    assert (result.status_code, result.json()) == (202, {"status": "deferred"})
    [ack] = await sim.wait_for_acks(1)
    assert calls.jobs == [result.message_id]
    assert (ack.queue, ack.message_id) == ("orders", result.message_id)
    assert (ack.reservation_id, ack.subscriber_name) == (result.reservation_id, "billing")
    assert sim.router.counters.totals["deferred"] == 1
    await wait_until_async(lambda: sim.router.counters.totals["acked"] == 1)


async def test_a_jobs_202_leaves_what_the_answer_table_leaves(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A job's 202 is sent by Deferrals._accepted (Responder.answer written out); a hand-off's
    # 202 (Defer()) by Responder.answer itself: both must leave the same traces.
    router = PushRouter(secret_keys=KEYS)

    async def job() -> None:
        return None

    @router.route("/job", queue="orders", subscriber="job")
    async def with_job(msg: PushMessage) -> Defer:
        return Defer(job)

    @router.route("/handoff", queue="orders", subscriber="handoff")
    async def handed_off(msg: PushMessage) -> Defer:
        return Defer()

    caplog.set_level(logging.INFO, logger="ironpush.receiver")
    async with PushSimulator(router) as sim:
        results = {name: await sim.push(f"/{name}", "x") for name in ("job", "handoff")}
        await sim.wait_for_acks(1)  # the job's
    timings = router.counters.timings
    assert timings is not None
    for name, result in results.items():
        answer = result.response
        assert (answer.status_code, answer.json()) == (202, {"status": "deferred"}), name
        assert answer.headers["content-type"] == "application/json"
        assert router.counters.by_route[("orders", name, "deferred")] == 1
        assert sum(timings.push.series[("orders", name, "deferred")].counts) == 1
        assert sum(timings.handler.series[("orders", name, "deferred")].counts) == 1
        [record] = [
            r
            for r in caplog.records
            if r.name == "ironpush.receiver" and getattr(r, "subscriber", None) == name
            and getattr(r, "outcome", None) == "deferred"
        ]  # fmt: skip
        assert (record.levelno, record.funcName) == (logging.INFO, "log_delivery")
        assert record.message_id == result.message_id  # type: ignore[attr-defined]
        assert (record.attempt, record.status) == (1, 202)  # type: ignore[attr-defined]
        assert record.getMessage().startswith(f"push {result.message_id} queue=orders ")
    assert router.counters.totals["deferred"] == 2
    assert sum(timings.job.series[("orders", "job", "done")].counts) == 1
    # Both counted in health's window as verified pushes, neither refused.
    assert router.pipeline.responder.refusals.counts(time.perf_counter()) == (2, 0)


async def test_redelivery_during_a_deferred_job_answers_202_and_the_ack_uses_the_newest(
    calls: Calls,
) -> None:
    router = PushRouter(secret_keys=KEYS)
    release = anyio.Event()

    @router.route("/slow", queue="q", subscriber="s")
    async def slow(msg: PushMessage) -> Defer:
        calls.messages.append(msg)
        return Defer(job)

    async def job() -> None:
        calls.jobs.append("started")
        await release.wait()

    async with PushSimulator(router) as sim:
        first = await sim.push("/slow", "x")
        assert first.status_code == 202
        await wait_until_async(lambda: calls.jobs == ["started"])
        second = await sim.redeliver(first)
        third = await sim.redeliver(first)
        assert (second.status_code, third.status_code) == (202, 202)
        assert third.json() == {"status": "in_progress"}
        release.set()
        [ack] = await sim.wait_for_acks(1)
        assert ack.reservation_id == third.reservation_id != first.reservation_id
        assert len(calls.messages) == 1
        assert calls.jobs == ["started"]
        done = await sim.redeliver(first)
        assert done.json() == {"status": "duplicate"}


async def test_redelivery_while_the_first_handler_still_runs_does_not_run_it_twice(
    calls: Calls,
) -> None:
    router = PushRouter(secret_keys=KEYS)
    release = threading.Event()

    @router.route("/slow", queue="q", subscriber="s")
    def slow(msg: PushMessage) -> None:  # e.g. the pusher timed out after 10 s
        calls.messages.append(msg)
        release.wait(10)

    async with PushSimulator(router) as sim, anyio.create_task_group() as tg:
        results: list[Any] = []

        async def first_push() -> None:
            results.append(await sim.push("/slow", "x", message_id="m-1"))

        tg.start_soon(first_push)
        await wait_until_async(lambda: len(calls.messages) == 1)
        second = await sim.push("/slow", "x", message_id="m-1")
        assert (second.status_code, second.json()) == (202, {"status": "in_progress"})
        release.set()
        [ack] = await sim.wait_for_acks(1)
        # the first answer went to a pusher that gave up: the newest reservation is acked
        assert ack.reservation_id == second.reservation_id
        await wait_until_async(lambda: len(results) == 1)
        assert results[0].status_code == 200
        assert len(calls.messages) == 1


async def test_failed_job_is_not_acked_and_the_redelivery_runs_again(calls: Calls) -> None:
    router = PushRouter(secret_keys=KEYS)

    @router.route("/flaky", queue="q", subscriber="s")
    async def flaky(msg: PushMessage) -> Defer:
        calls.messages.append(msg)
        return Defer(job, msg.attempt)

    async def job(attempt: int) -> None:
        calls.jobs.append(f"attempt {attempt}")
        if attempt == 1:
            raise RuntimeError("job failed")

    async with PushSimulator(router) as sim:
        first = await sim.push("/flaky", "x")
        await wait_until_async(lambda: router.counters.totals["jobs_failed"] == 1)
        assert sim.acks == []
        second = await sim.redeliver(first)
        assert second.status_code == 202
        [ack] = await sim.wait_for_acks(1)
        assert ack.reservation_id == second.reservation_id
        assert calls.jobs == ["attempt 1", "attempt 2"]


async def test_late_ack_is_counted_and_not_retried(calls: Calls) -> None:
    router = PushRouter(secret_keys=KEYS)

    @router.route("/late", queue="q", subscriber="s")
    async def late(msg: PushMessage) -> Defer:
        return Defer(calls.jobs.append, "ran")

    async with PushSimulator(router, ack_status=403) as sim:
        await sim.push("/late", "x")
        await wait_until_async(lambda: router.counters.totals["late_acks"] == 1)
        assert len(sim.acks) == 1
        assert await router.store.depth() == 0


async def test_deferred_capacity_full_answers_503(calls: Calls) -> None:
    router = PushRouter(secret_keys=KEYS, max_deferred=1)
    release = anyio.Event()

    @router.route("/busy", queue="q", subscriber="s")
    async def busy(msg: PushMessage) -> Defer:
        calls.messages.append(msg)
        return Defer(release.wait)

    async with PushSimulator(router) as sim:
        assert (await sim.push("/busy", "1")).status_code == 202
        full = await sim.push("/busy", "2")
        assert (full.status_code, full.json()) == (503, {"status": "busy"})
        release.set()
        await sim.wait_for_acks(1)
        # the refused message was not recorded as handled: its redelivery runs
        assert (await sim.redeliver(full)).status_code == 202
        await sim.wait_for_acks(2)
