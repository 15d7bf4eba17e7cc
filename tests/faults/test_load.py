"""The receiver under load, short CI versions of ``benchmarks/load_receiver.py`` (the load kit,
``benchmarks/loadkit/``, is shared with the benchmark).

One receiver process (uvicorn, one worker) with deferred jobs, 200 concurrent connections
pushing, acks recorded by a counting sink. Asserted: every answer is 202, 503 (back-pressure)
or 200 (a duplicate), no push goes unanswered, 503 appears once the deferred cap is reached
(and not before), every 202'd message is acknowledged exactly once with its newest reservation,
the router's counters agree with what the pusher and the sink saw, the receiver shuts down
gracefully, and its memory stays within generous bounds. No assertion depends on the
machine's speed: the rates are printed, not asserted.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from support import build_push, wait_until_async

from benchmarks.loadkit.app import PATH, make_router
from benchmarks.loadkit.inflight import run_inflight
from benchmarks.loadkit.sustained import run_sustained
from ironpush.client import AsyncIronMQ
from ironpush.receiver._outcomes import Defer, PushMessage
from ironpush.receiver._router import PushRouter
from ironpush.receiver.stores import SQLiteStore


def show(title: str, summary: dict[str, object]) -> str:
    text = f"{title}: {json.dumps(summary, default=str)}"
    print(text)  # visible with -s; also the assertion message
    return text


@pytest.mark.anyio
async def test_200_connections_with_deferred_jobs_lose_no_ack_and_get_503_at_the_cap() -> None:
    result = await run_sustained(
        duration=4.0,
        connections=200,
        max_deferred=50,
        job_seconds=0.1,
        max_entries=2_000,
        redeliver_ratio=0.05,
    )
    report = show("sustained", result.summary())
    assert result.problems(flat_mb=20.0, growth_mb=50.0) == [], report
    # The properties behind problems(), spelled out:
    assert result.connection_errors == 0, report
    assert set(result.by_status) <= {200, 202, 503}, report
    assert result.by_status[503] > 0, report  # back-pressure happened, and the cap held:
    assert 0 < result.max_inflight <= 50, report
    assert result.max_outbox <= result.outbox_bound, report  # unsent acks are bounded too
    # (That no 503 comes *before* the cap is reached is asserted exactly by the next test:
    # here answers on different connections may be read in another order than sent.)
    acks = result.acks
    assert acks.expected == result.counters["deferred"] > 0, report  # messages that got 202
    assert acks.received == acks.expected, report
    assert (acks.lost, acks.duplicated, acks.wrong_reservation) == ([], [], []), report
    assert result.redeliveries > 0, report  # the newest-reservation rule was exercised
    assert result.counters["busy"] == result.by_status[503], report


@pytest.mark.anyio
async def test_1000_deferred_jobs_in_flight_hold_memory_flat_and_the_next_push_gets_503() -> None:
    result = await run_inflight(
        jobs=1000,
        overflow=100,
        connections=200,
        max_entries=2_000,
        hold_seconds=1.0,
        cycles=2,
        warmup=100,
    )
    report = show("inflight", result.summary())
    assert result.problems(held_flat_mb=5.0, cycle_growth_mb=20.0) == [], report
    for cycle in result.cycles:
        assert cycle.by_status == {202: 1000}, report  # no 503 below the cap
        assert cycle.inflight_seen == 1000, report
        assert cycle.overflow_by_status == {503: 100}, report  # 503 once it is reached
        assert cycle.acks.received == cycle.acks.expected == 1000, report
        assert cycle.acks.duplicated == [], report
    assert 0 < result.per_job_kb < 50, report  # generous: ~10 KB measured


# --------------------------------------------------------------------------- regressions


def slow_ironmq() -> tuple[AsyncIronMQ, asyncio.Event, list[str]]:
    """A client whose acks IronMQ confirms only once ``gate`` is set."""
    gate = asyncio.Event()
    acked: list[str] = []

    async def ironmq(request: httpx.Request) -> httpx.Response:
        await gate.wait()
        acked.append(request.url.path.rsplit("/", 1)[-1])
        return httpx.Response(200, json={"msg": "Deleted"})

    client = AsyncIronMQ(
        cloud="http://ironmq.test",
        project_id="p",
        token="t",
        transport=httpx.MockTransport(ironmq),
    )
    return client, gate, acked


async def quick_job() -> None:
    return None


def pusher(
    router: PushRouter, http: httpx.AsyncClient
) -> Callable[[str], Awaitable[httpx.Response]]:
    async def push(message_id: str) -> httpx.Response:
        headers, content, _ = build_push(router, PATH, b"x", message_id=message_id)
        return await http.post("/jobs", headers=headers, content=content)

    return push


@pytest.mark.anyio
async def test_acks_not_yet_confirmed_are_bounded_and_new_deferred_work_gets_503() -> None:
    # Found by the load run: jobs freed their slot as soon as their ack was queued, so when
    # acks were slower than jobs (a busy event loop, a distant IronMQ) the outbox grew without
    # bound: 4,800 unsent acks and +17 MB after 30 s, each ack later than the one before.
    # Unsent acks are now bounded by ``max_unsent_acks``: past it, new deferred work gets 503.
    client, gate, acked = slow_ironmq()

    async def handler(msg: PushMessage) -> Defer:
        return Defer(quick_job)

    router = make_router(handler, max_deferred=2, max_unsent_acks=2, client=client)
    transport = httpx.ASGITransport(app=router)
    async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as http:
        push = pusher(router, http)

        async def health() -> dict[str, int]:
            return dict((await http.get("/_health")).json())

        async def jobs_done_acks_waiting() -> bool:
            h = await health()
            return h["inflight_jobs"] == 0 and h["outbox_depth"] == 2

        try:
            assert [(await push(m)).status_code for m in ("m0", "m1")] == [202, 202]
            await wait_until_async(jobs_done_acks_waiting, 5, "both jobs done, both acks unsent")
            refused = await push("m2")
            assert refused.status_code == 503  # before the fix: 202, and the outbox grew
            assert refused.json() == {"status": "busy"}
            gate.set()
            await wait_until_async(lambda: sorted(acked) == ["m0", "m1"], 5, "the two acks")

            async def room() -> bool:
                return (await health())["outbox_depth"] == 0

            await wait_until_async(room, 5, "an empty outbox")
            assert (await push("m2")).status_code == 202  # IronMQ retried: room again
            await wait_until_async(lambda: "m2" in acked, 5, "the third ack")
        finally:
            await router.shutdown()
            await client.aclose()


@pytest.mark.anyio
async def test_acks_sent_by_another_worker_leave_no_waiter_behind(tmp_path: Path) -> None:
    # Found while load-testing the outbox: with one SQLite store shared by several workers,
    # a worker's outbox also sends the acks queued by the others, and the queuing worker kept
    # a future per such ack forever (about half of all acks with two workers: a leak that
    # grows with traffic). Two routers on one store stand in for two uvicorn workers.
    acked: list[str] = []

    async def ironmq(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.001)  # a round trip, so both outboxes have batches in flight
        acked.append(request.url.path.rsplit("/", 1)[-1])
        return httpx.Response(200, json={"msg": "Deleted"})

    async def handler(msg: PushMessage) -> Defer:
        return Defer(quick_job)

    routers, clients, https = [], [], []
    for name in ("a", "b"):
        client = AsyncIronMQ(
            cloud="http://ironmq.test",
            project_id="p",
            token="t",
            transport=httpx.MockTransport(ironmq),
        )
        router = make_router(
            handler, store=SQLiteStore(tmp_path / "shared.db"), client=client, max_deferred=500
        )
        transport = httpx.ASGITransport(app=router)
        routers.append(router)
        clients.append(client)
        https.append(httpx.AsyncClient(transport=transport, base_url=f"http://{name}"))
    pushes = [pusher(router, http) for router, http in zip(routers, https, strict=True)]
    try:
        answers = await asyncio.gather(*(pushes[i % 2](f"m{i}") for i in range(400)))
        assert {r.status_code for r in answers} == {202}
        await wait_until_async(lambda: len(set(acked)) == 400, 20, "400 acks")

        async def outbox_empty() -> bool:
            return bool(await routers[0].store.depth() == 0)

        await wait_until_async(outbox_empty, 5, "an empty outbox")
        assert len(acked) == 400  # each ack sent once, by one of the two workers
        for router in routers:
            runtime = router.background.running
            assert runtime is not None
            # Before the fix: ~100 of each router's 200 futures were never resolved or freed.
            assert runtime.outbox.waiting == 0
    finally:
        for router, client, http in zip(routers, clients, https, strict=True):
            await router.shutdown()
            await client.aclose()
            await http.aclose()
