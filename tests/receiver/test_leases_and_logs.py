"""Claim leases against IronMQ's retry budget, the null store, the store spec, and the log
lines (one per delivery, one per confirmed ack) that never carry a secret."""

from __future__ import annotations

import logging
from pathlib import Path

import anyio
import pytest
from support import wait_until_async

from ironpush._signing import push_secret
from ironpush.receiver._outcomes import Defer, PushMessage
from ironpush.receiver._router import PushRouter
from ironpush.receiver._routes import lease_warning, retry_budget
from ironpush.testing import PushSimulator
from receiver.flaky_store import FlakyStore

pytestmark = pytest.mark.anyio
KEYS = ["lease-key"]


def test_the_default_lease_expires_well_within_the_dev_servers_retry_budget() -> None:
    router = PushRouter(secret_keys=KEYS)
    route = router.add_route("/r", print, queue="q", subscriber="s", retries=3, retries_delay=3)
    assert retry_budget(route) == 12
    assert router.claim_lease < retry_budget(route)  # a crashed owner's claim runs out in time


@pytest.mark.parametrize(
    ("retries", "delay", "warns"),
    [
        (3, 3, True),
        (0, 5, True),
        (3, 5, False),
        (None, None, False),
        (None, 3, True),
        (5, None, False),
    ],
)
def test_lease_warning_when_the_retry_budget_is_not_twice_the_lease(
    retries: int | None, delay: float | None, warns: bool, caplog: pytest.LogCaptureFixture
) -> None:
    router = PushRouter(secret_keys=KEYS, claim_lease=10)
    with caplog.at_level(logging.WARNING, logger="ironpush.receiver"):
        route = router.add_route(
            "/r", print, queue="q", subscriber="s", retries=retries, retries_delay=delay
        )
    warning = lease_warning(route, router.claim_lease)
    assert (warning is not None) == warns
    if warning is not None:
        assert "claim_lease" in warning
        assert f"{retry_budget(route):g}s" in warning
        assert warning in caplog.text
    else:
        assert "claim_lease" not in caplog.text


async def test_the_heartbeat_renews_the_claim_of_a_running_job() -> None:
    store = FlakyStore()
    router = PushRouter(secret_keys=KEYS, store=store, claim_lease=0.3)  # beats every 0.1 s
    release = anyio.Event()

    async def handler(msg: PushMessage) -> Defer:
        return Defer(release.wait)

    router.add_route("/r", handler, queue="q", subscriber="s", retries=10, retries_delay=1)
    async with PushSimulator(router) as sim:
        first = await sim.push("/r", "x")
        await wait_until_async(lambda: store.calls.count(("renew", None)) >= 2, 10, "renewals")
        assert (await sim.redeliver(first)).json() == {"status": "in_progress"}
        release.set()
        await sim.wait_for_acks(1)


async def test_dedupe_off_is_the_null_store_and_still_acks_deferred_work() -> None:
    router = PushRouter(secret_keys=KEYS, dedupe=False)
    ran: list[str] = []

    async def handler(msg: PushMessage) -> Defer:
        return Defer(ran.append, msg.id)

    router.add_route("/r", handler, queue="q", subscriber="s")
    assert (router.store.kind, router.store.dedupes) == ("null", False)
    async with PushSimulator(router) as sim:
        first = await sim.push("/r", "x")
        again = await sim.redeliver(first)
        assert (first.status_code, again.status_code) == (202, 202)
        acks = await sim.wait_for_acks(2)
    assert ran == [first.message_id] * 2
    assert {a.reservation_id for a in acks} == {first.reservation_id, again.reservation_id}


async def test_a_path_opens_a_durable_store(tmp_path: Path) -> None:
    router = PushRouter(secret_keys=KEYS, store=tmp_path / "receiver.db")
    router.add_route("/r", lambda msg: None, queue="q", subscriber="s")
    assert router.store.kind == "sqlite"
    async with PushSimulator(router) as sim:
        first = await sim.push("/r", "x")
        assert (await sim.redeliver(first)).json() == {"status": "duplicate"}
    await router.store.close()


async def test_one_line_per_delivery_and_per_confirmed_ack_without_secrets(
    caplog: pytest.LogCaptureFixture,
) -> None:
    router = PushRouter(secret_keys=KEYS)
    tokens: list[str] = []

    async def handler(msg: PushMessage) -> Defer:
        tokens.append(msg.ack_token)
        return Defer(anyio.sleep, 0)

    router.add_route("/r", handler, queue="jobs", subscriber="worker")
    with caplog.at_level(logging.INFO, logger="ironpush"):
        async with PushSimulator(router) as sim:
            result = await sim.push("/r", "x")
            await sim.wait_for_acks(1)
            await wait_until_async(
                lambda: [r for r in caplog.records if r.name == "ironpush.receiver.outbox"]
            )
    [line] = [r for r in caplog.records if r.getMessage().startswith("push ")]
    assert (line.name, line.levelno) == ("ironpush.receiver", logging.INFO)
    assert {k: line.__dict__[k] for k in ("message_id", "queue", "subscriber", "status")} == {
        "message_id": result.message_id,
        "queue": "jobs",
        "subscriber": "worker",
        "status": 202,
    }
    assert line.__dict__["outcome"] == "deferred"
    assert line.__dict__["duration_ms"] >= 0
    [ack] = [r for r in caplog.records if r.name == "ironpush.receiver.outbox"]
    assert ack.levelno == logging.INFO
    text = ack.getMessage()
    assert result.message_id in text
    assert "queue=jobs" in text
    assert f"reservation={result.reservation_id}" in text
    assert "result=acked" in text
    for secret in (*tokens, push_secret("jobs", "worker", KEYS), *KEYS):
        assert secret not in caplog.text
