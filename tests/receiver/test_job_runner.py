"""The deferred-job runner: bounded concurrency, draining, and cancelling past the grace."""

from __future__ import annotations

import asyncio

import anyio
import pytest

from ironpush.receiver._jobs import JobRunner

pytestmark = pytest.mark.anyio


async def test_job_runner_bounds_concurrency_and_drains() -> None:
    runner = JobRunner(2)
    release = anyio.Event()
    finished: list[int] = []

    async def job(n: int) -> None:
        await release.wait()
        finished.append(n)

    for n in range(2):
        assert runner.try_reserve()
        runner.start(job(n))
    assert not runner.try_reserve()
    assert runner.in_flight == 2
    release.set()
    assert await runner.drain(5) == 0
    assert sorted(finished) == [0, 1]
    assert runner.in_flight == 0
    assert not runner.try_reserve()  # drained: refuses new work


async def test_job_runner_cancels_jobs_past_the_grace() -> None:
    runner = JobRunner(1)
    assert runner.try_reserve()
    runner.start(anyio.sleep(60))
    assert await runner.drain(0.01) == 1
    assert runner.in_flight == 0


async def test_a_job_that_ends_itself_gives_everything_back_without_a_done_callback() -> None:
    runner = JobRunner(1)
    seen: list[tuple[int, int]] = []

    async def job() -> None:
        task = asyncio.current_task()
        assert task is not None
        try:
            runner.release(task)  # its work is done: the slot is free, the task finishing
            seen.append((runner.in_flight, runner.finishing))
        finally:
            runner.ended(task)
            seen.append((runner.in_flight, runner.finishing))

    assert runner.try_reserve()
    runner.start(job(), ends_itself=True)
    assert await runner.drain(5) == 0
    assert seen == [(0, 1), (0, 0)]


async def test_a_job_that_ends_itself_cancelled_before_it_ran_is_given_back_by_drain() -> None:
    """Its ``finally`` never ran: drain gives its slot back instead of waiting on a task that
    ended (it would spin until the grace ran out, and count the job as still running)."""
    runner = JobRunner(1)
    ran: list[bool] = []

    async def job() -> None:
        ran.append(True)

    assert runner.try_reserve()
    runner.start(job(), ends_itself=True)
    [task] = runner._tasks
    task.cancel()  # before its first step
    with anyio.fail_after(10):  # a spinning drain would take its 30 s of grace
        assert await runner.drain(30) == 0
    assert (runner.in_flight, runner.finishing, ran) == (0, 0, [])
