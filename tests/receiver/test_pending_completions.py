"""A finished job's completion is never forgotten (issue 19, N2): when the store cannot record
it, it is retried until it does, its redeliveries are answered 202 meanwhile (the job never
starts again), it is visible (``ironpush_pending_completions``, the ``completions_retried``
counter, a health reason, a log line per completion that no repeat limiter drops), bounded
(with the unsent acks, by ``Limits.max_unsent_acks``), and flushed at graceful shutdown.

Over real servers (PostgreSQL terminate/restart, Redis restart/``kill -STOP``):
``tests/faults/test_store_faults.py``; through Celery: ``tests/integrations``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest
from support import wait_until_async

from ironpush import Limits, Shutdown
from ironpush.cli._serve_logging import RepeatLimiter
from ironpush.receiver._outcomes import Defer, PushMessage
from ironpush.receiver._router import PushRouter
from ironpush.receiver.stores import OutboxItem
from ironpush.testing import PushSimulator
from receiver.flaky_store import FlakyStore

pytestmark = pytest.mark.anyio
KEYS = ["pending-completions-key-0123456789"]
MARKER = "could not record the deferred job of message "


class FlakyOutbox(FlakyStore):
    """A FlakyStore whose outbox ``add`` can fail too (``fail`` holds ``"add"``)."""

    async def add(self, item: OutboxItem) -> None:
        await self._fault("add")
        await super().add(item)


@dataclass
class Setup:
    sim: PushSimulator
    router: PushRouter
    store: FlakyOutbox
    runs: list[str]

    async def gauge(self) -> float:
        text = (await self.sim.http.get("/_metrics")).text
        [line] = [ln for ln in text.splitlines() if ln.startswith("ironpush_pending_completions ")]
        return float(line.split()[1])

    async def health(self) -> tuple[int, dict[str, Any]]:
        answer = await self.sim.http.get("/_health")
        return answer.status_code, answer.json()


def deferring_router(store: FlakyOutbox, runs: list[str], **options: Any) -> PushRouter:
    router = PushRouter(secret_keys=KEYS, store=store, **options)

    async def job(message_id: str) -> None:
        runs.append(message_id)
        store.fail.add("complete")  # the job ends as the store goes away

    @router.route("/jobs", queue="jobs", subscriber="worker")
    def handle(msg: PushMessage) -> Defer:
        return Defer(job, msg.id)

    return router


@asynccontextmanager
async def one_pending(message_id: str, **options: Any) -> AsyncIterator[Setup]:
    """A router (``options``: its keywords) whose push ``message_id`` was answered 202 and its
    job run, the completion left pending (the store failed to record it)."""
    store, runs = FlakyOutbox(), list[str]()
    router = deferring_router(store, runs, **options)
    async with PushSimulator(router) as sim:
        assert (await sim.push("/jobs", "x", message_id=message_id)).status_code == 202
        runtime = router.background.current()
        await wait_until_async(lambda: runtime.completions.count == 1, 10, "one pending")
        yield Setup(sim, router, store, runs)


@pytest.fixture
async def setup() -> AsyncIterator[Setup]:
    store, runs = FlakyOutbox(), list[str]()
    router = deferring_router(store, runs)
    async with PushSimulator(router) as sim:
        yield Setup(sim, router, store, runs)
        store.fail.clear()


async def test_a_redelivery_while_the_completion_waits_gets_202_and_the_ack_follows_the_store(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    sim, store = setup.sim, setup.store
    first = await sim.push("/jobs", "x", message_id="m-1")
    assert first.status_code == 202
    await wait_until_async(lambda: setup.runs == ["m-1"], 10, "the job to run")
    runtime = setup.router.background.current()
    await wait_until_async(lambda: runtime.completions.count == 1, 10, "the completion to wait")
    assert await setup.gauge() == 1.0
    code, body = await setup.health()
    assert code == 200  # degraded: the store's probe says whether it is down
    assert "1 finished job(s) not recorded in the memory store" in body["reason"]
    assert setup.router.counters.totals["completions_retried"] == 1
    assert [r for r in caplog.records if MARKER + "m-1" in r.getMessage()]
    for _ in range(3):  # IronMQ pushes again: still ours, the job never starts again
        again = await sim.push("/jobs", "x", message_id="m-1")
        assert (again.status_code, again.json()) == (202, {"status": "in_progress"})
    assert setup.runs == ["m-1"]
    assert sim.acks == []  # nothing acked that the store does not know
    store.fail.clear()  # the store is back: recorded, then the newest reservation acked
    [ack] = await sim.wait_for_acks(1, timeout=30)
    assert ack.reservation_id == again.reservation_id
    await wait_until_async(lambda: runtime.completions.count == 0, 10, "nothing pending")
    assert await setup.gauge() == 0.0
    done = await sim.push("/jobs", "x", message_id="m-1")
    assert (done.status_code, setup.runs) == (200, ["m-1"])  # recorded: answered from the store


async def test_the_ack_is_queued_even_when_the_outbox_is_what_fails(setup: Setup) -> None:
    sim, store = setup.sim, setup.store
    store.fail.add("add")  # recorded, but the outbox cannot take the ack
    assert (await sim.push("/jobs", "x", message_id="m-2")).status_code == 202
    runtime = setup.router.background.current()
    await wait_until_async(lambda: runtime.completions.count == 1, 10, "the completion to wait")
    store.fail.clear()
    [ack] = await sim.wait_for_acks(1, timeout=30)
    assert ack.message_id == "m-2"
    assert setup.runs == ["m-2"]


async def test_pending_completions_count_against_the_unsent_acks_bound() -> None:
    async with one_pending("m-a", limits=Limits(max_unsent_acks=1)) as s:
        sim, runtime = s.sim, s.router.background.current()
        refused = await sim.push("/jobs", "x", message_id="m-b")
        assert (refused.status_code, refused.json()) == (503, {"status": "busy"})
        assert s.runs == ["m-a"]
        s.store.fail.clear()
        await sim.wait_for_acks(1, timeout=30)
        await wait_until_async(lambda: runtime.completions.count == 0, 10, "nothing pending")
        assert (await sim.push("/jobs", "x", message_id="m-b")).status_code == 202


async def test_shutdown_flushes_a_pending_completion_once_the_store_answers() -> None:
    async with one_pending("m-s", shutdown=Shutdown(flush_timeout=10)) as s:
        # The store comes back while the router shuts down: the flush records and acks it.
        s.router.background.current().loop.call_later(0.3, s.store.fail.clear)
        await s.router.shutdown()
        assert [a.message_id for a in s.sim.acks] == ["m-s"]
        assert s.store.completed() == ["m-s"]


async def test_a_completion_the_store_never_takes_is_logged_as_lost_at_shutdown(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with one_pending("m-l", shutdown=Shutdown(flush_timeout=0.3)) as s:
        await s.router.shutdown()  # bounded by flush_timeout although the store stays down
        assert s.sim.acks == []
    lost = [r for r in caplog.records if "m-l" in r.getMessage() and "lost at shutdown" in r.msg]
    assert len(lost) == 1
    assert lost[0].levelno == logging.ERROR


def test_the_repeat_limiter_lets_every_completion_line_through() -> None:
    limiter = RepeatLimiter(interval=3600)
    logger = logging.getLogger("ironpush.receiver.completions")

    def record(n: int, every: bool) -> logging.LogRecord:
        extra = {"ironpush_every_time": True} if every else {}
        return logger.makeRecord(
            logger.name,
            logging.WARNING,
            __file__,
            1,
            MARKER + "%s (%s)",
            (f"m-{n}", "down"),
            None,
            extra=extra,
        )

    assert sum(limiter.filter(record(n, every=True)) for n in range(25)) == 25
    assert sum(limiter.filter(record(n, every=False)) for n in range(25)) == 1  # the others


async def test_a_store_error_other_than_unavailable_is_not_retried(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Only a store that did not answer is retried; a bug surfaces (logged), as before."""

    class Broken(FlakyOutbox):
        async def complete(self, *args: Any, **kwargs: Any) -> Any:
            raise ValueError("a bug")

    store, runs = Broken(), list[str]()
    router = deferring_router(store, runs)
    async with PushSimulator(router) as sim:
        assert (await sim.push("/jobs", "x", message_id="m-x")).status_code == 202
        await wait_until_async(lambda: runs == ["m-x"], 10, "the job to run")
        await wait_until_async(
            lambda: any(MARKER + "m-x" in r.getMessage() for r in caplog.records), 10, "the log"
        )
        assert router.background.current().completions.count == 0
        assert sim.acks == []
