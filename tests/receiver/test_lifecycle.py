"""Startup, graceful shutdown, crashed claims, dedupe off, the ASGI lifespan."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from ironpush._protocol import Delivery
from ironpush.receiver._outcomes import Defer, PushMessage
from ironpush.receiver._router import PushRouter
from ironpush.receiver.stores import MemoryStore
from ironpush.testing import PushSimulator

from .contract import KEYS, Calls

pytestmark = pytest.mark.anyio


# --- lifecycle ----------------------------------------------------------------------------------


async def test_shutdown_waits_for_jobs_then_refuses_new_deferred_work(calls: Calls) -> None:
    router = PushRouter(secret_keys=KEYS, shutdown_grace=5)

    @router.route("/d", queue="q", subscriber="s")
    async def deferring(msg: PushMessage) -> Defer:
        return Defer(job)

    async def job() -> None:
        await anyio.sleep(0.05)
        calls.jobs.append("finished")

    async with PushSimulator(router) as sim:
        assert (await sim.push("/d", "x")).status_code == 202
        await router.shutdown()  # graceful: the running job finishes and is acked
        assert calls.jobs == ["finished"]
        assert len(sim.acks) == 1
        refused = await sim.push("/d", "y")
        assert refused.status_code == 503
        assert (await sim.http.get("/_health")).json()["status"] == "draining"


async def test_shutdown_cancels_jobs_past_the_grace_and_releases_them(calls: Calls) -> None:
    store = MemoryStore()
    router = PushRouter(secret_keys=KEYS, store=store, shutdown_grace=0.05)

    @router.route("/d", queue="q", subscriber="s")
    async def deferring(msg: PushMessage) -> Defer:
        return Defer(anyio.sleep, 60)

    async with PushSimulator(router) as sim:
        first = await sim.push("/d", "x")
        await router.shutdown()
        assert sim.acks == []
        claim = await store.claim((first.message_id, "s"), Delivery("d"), lease=30, ttl=60)
        assert claim.status == "new"
        assert claim.attempt == 2


async def test_expired_claim_of_a_crashed_process_is_taken_over(calls: Calls) -> None:
    now = [1000.0]
    store = MemoryStore(clock=lambda: now[0])
    router = PushRouter(secret_keys=KEYS, store=store, claim_lease=30)
    router.add_route("/r", calls.messages.append, queue="q", subscriber="s")
    await store.claim(("m-crash", "s"), Delivery("m-crash"), lease=30, ttl=600)  # a crash
    async with PushSimulator(router) as sim:
        blocked = await sim.push("/r", "x", message_id="m-crash")
        assert blocked.status_code == 202
        assert calls.messages == []
        now[0] += 31
        taken = await sim.push("/r", "x", message_id="m-crash")
        assert taken.status_code == 200
        assert calls.messages[0].attempt == 2


async def test_dedupe_off_runs_every_push(calls: Calls) -> None:
    router = PushRouter(secret_keys=KEYS, dedupe=False)
    router.add_route("/r", calls.messages.append, queue="q", subscriber="s")
    async with PushSimulator(router) as sim:
        first = await sim.push("/r", "x")
        await sim.redeliver(first)
    assert len(calls.messages) == 2


async def test_lifespan_protocol_when_run_alone(router: PushRouter) -> None:
    messages = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[str] = []

    async def receive() -> dict[str, str]:
        return messages.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message["type"])

    await router({"type": "lifespan"}, receive, send)
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


async def test_metrics_collector_registers_in_a_user_registry(sim: PushSimulator) -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    await sim.push("/plain", "ack")
    registry = CollectorRegistry()
    registry.register(sim.router.metrics_collector())
    text = generate_latest(registry).decode()
    assert "ironpush_acked_total 1.0" in text
    assert "ironpush_outbox_depth 0.0" in text
