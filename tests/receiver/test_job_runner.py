"""The deferred-job runner: bounded concurrency, draining, and cancelling past the grace."""

from __future__ import annotations

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
