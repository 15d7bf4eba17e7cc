"""The one ack-token path: each documented answer, the same through every caller.

A router hands every push to an "external worker" (``Defer()``) on an SQLite store; the worker
settles it with the push's ack token through each caller of :mod:`ironpush.receiver._acks`:
``POST /_ack`` / ``/_release``, :func:`ironpush.integrations.acks.acknowledge` /
:func:`~ironpush.integrations.acks.release` (its own store object on the same file),
:class:`~ironpush.integrations.acks.PushAcks` (blocking, on its own loop thread) and the Celery
signal receivers of :func:`ironpush.celery.acknowledge_pushes` (Celery's own signal dispatch,
in-process; ``tests/integrations/test_celery_e2e.py`` runs real workers). The answers:

- ``acked``: IronMQ confirmed the ack, of the **newest** reservation;
- ``done``: the same token again (a job that ran twice): nothing is sent;
- ``late``: IronMQ refused the ack (403); the redelivery is answered 200 from the store;
- ``released`` then ``not_held``: the next push runs the handler again.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from celery import Celery, signals
from support import wait_until_async

from ironpush._errors import ConfigError, StoreUnavailable
from ironpush.celery import acknowledge_pushes
from ironpush.client import AsyncIronMQ
from ironpush.integrations.acks import PushAcks, acknowledge, release
from ironpush.receiver._outcomes import Defer, PushMessage
from ironpush.receiver._router import PushRouter
from ironpush.receiver._settings import AckTokens
from ironpush.receiver.stores import SQLiteStore
from ironpush.testing import PushSimulator, RecordedAck

from .flaky_store import FlakyStore

pytestmark = pytest.mark.anyio
KEYS = ["ack-path-key-0123456789abcdef0123456789"]
LATE = "late-"  # acks of message ids starting so are refused with 403 (reservation expired)
CALLERS = ["endpoint", "acknowledge", "push_acks", "celery"]


def ack_status(ack: RecordedAck) -> int:
    return 403 if (ack.message_id or "").startswith(LATE) else 200


@dataclass
class Settler:
    """One caller of the ack-token path: ``ack`` and ``release`` say what it answered."""

    ack: Callable[[str], Awaitable[str]]
    release: Callable[[str], Awaitable[str]]


@dataclass
class Setup:
    sim: PushSimulator
    tokens: list[str]
    settle: Settler

    async def push(self, message_id: str) -> Any:
        answer = await self.sim.push("/jobs", "work", message_id=message_id)
        assert answer.status_code == 202
        return answer


def worker_client(sim: PushSimulator) -> AsyncIronMQ:
    """A worker's own client: the receivers' keys, IronMQ answered by the simulator's fake."""
    return AsyncIronMQ(
        project_id="p",
        token="t",
        cloud="http://ironmq.test",
        secret_keys=KEYS,
        transport=httpx.MockTransport(sim.fake),
    )


def endpoint_settler(sim: PushSimulator) -> Settler:
    async def post(path: str, token: str) -> str:
        answer = await sim.http.post(path, content=token)
        assert answer.status_code == 200, answer.text
        return str(answer.json()["status"])

    return Settler(lambda t: post("/_ack", t), lambda t: post("/_release", t))


def push_acks(sim: PushSimulator, path: Path) -> PushAcks:
    return PushAcks(store=str(path), client=lambda: worker_client(sim))


def celery_settler(acks: PushAcks) -> Settler:
    """The signal receivers, called by Celery's dispatch as a worker's task ends."""
    app = Celery(f"ack-path-{uuid.uuid4().hex[:8]}", broker="memory://")
    acknowledge_pushes(app, acks=acks)

    @app.task(name="job")
    def job() -> None:  # pragma: no cover - never run: only its signals are sent
        return None

    def send(signal: Any, token: str, **extra: Any) -> str:
        job.push_request(id="task-1", ironpush_ack_token=token)
        try:
            answers = [a for _, a in signal.send(sender=job, **extra) if a is not None]
        finally:
            job.pop_request()
        [answer] = answers  # only this app's receiver acts on this app's task
        if isinstance(answer, bool):
            return "released" if answer else "not_held"
        return str(answer)

    async def success(token: str) -> str:
        return await anyio.to_thread.run_sync(lambda: send(signals.task_success, token))

    async def failure(token: str) -> str:
        return await anyio.to_thread.run_sync(
            lambda: send(signals.task_failure, token, task_id="task-1", exception=None)
        )

    return Settler(success, failure)


@pytest.fixture(params=CALLERS)
async def setup(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Setup]:
    path = tmp_path / "store.db"
    router = PushRouter(secret_keys=KEYS, store=path)
    tokens: list[str] = []

    @router.route("/jobs", queue="jobs", subscriber="worker")
    def handle(msg: PushMessage) -> Defer:
        tokens.append(msg.ack_token)
        return Defer()

    async with PushSimulator(router, ack_status=ack_status) as sim:
        caller = request.param
        if caller == "endpoint":
            yield Setup(sim, tokens, endpoint_settler(sim))
        elif caller == "acknowledge":
            store, client = SQLiteStore(path), worker_client(sim)

            async def ack(token: str) -> str:
                return str(await acknowledge(token, client=client, store=store))

            async def give_up(token: str) -> str:
                held = await release(token, store=store, keys=KEYS)
                return "released" if held else "not_held"

            try:
                yield Setup(sim, tokens, Settler(ack, give_up))
            finally:
                await store.close()
                await client.aclose()
        else:
            acks = push_acks(sim, path)
            try:
                if caller == "push_acks":

                    async def blocking_ack(token: str) -> str:
                        return str(await anyio.to_thread.run_sync(acks.ack, token))

                    async def blocking_release(token: str) -> str:
                        held = await anyio.to_thread.run_sync(acks.release, token)
                        return "released" if held else "not_held"

                    yield Setup(sim, tokens, Settler(blocking_ack, blocking_release))
                else:
                    yield Setup(sim, tokens, celery_settler(acks))
            finally:
                await anyio.to_thread.run_sync(acks.close)


async def test_acked_with_the_newest_reservation_then_done_without_sending(setup: Setup) -> None:
    first = await setup.push("m-acked")
    again = await setup.sim.redeliver(first)  # the worker is slow: IronMQ pushed again
    assert again.json() == {"status": "in_progress"}
    assert await setup.settle.ack(setup.tokens[0]) == "acked"
    [ack] = setup.sim.acks
    assert (ack.message_id, ack.reservation_id) == ("m-acked", again.reservation_id)
    # the job ran twice (a broker redelivered it): the store says it is done
    assert await setup.settle.ack(setup.tokens[0]) == "done"
    assert len(setup.sim.acks) == 1
    assert (await setup.sim.redeliver(first)).json() == {"status": "duplicate"}
    assert len(setup.tokens) == 1  # the handler never ran again


async def test_late_when_ironmq_refuses_and_the_redelivery_is_answered_from_the_store(
    setup: Setup,
) -> None:
    first = await setup.push(LATE + "1")
    assert await setup.settle.ack(setup.tokens[0]) == "late"
    assert [a.status_code for a in setup.sim.acks] == [403]
    assert (await setup.sim.redeliver(first)).json() == {"status": "duplicate"}
    assert len(setup.tokens) == 1


async def test_released_then_not_held_and_the_next_push_runs_the_handler(setup: Setup) -> None:
    first = await setup.push("m-released")
    assert await setup.settle.release(setup.tokens[0]) == "released"
    assert await setup.settle.release(setup.tokens[0]) == "not_held"
    assert (await setup.sim.redeliver(first)).json() == {"status": "deferred"}
    assert len(setup.tokens) == 2
    assert setup.sim.acks == []


# --------------------------------------------------------------------------- refusals


async def test_a_store_that_is_down_sends_nothing_until_it_records_the_push_then_acks_once(
    tmp_path: Path,
) -> None:
    """Recorded first, then acked: while the store is down nothing is sent. ``/_ack`` answers
    202 "queued" and its runtime retries until the store records the push (a redelivery
    meanwhile gets 202); a plain ``acknowledge`` retries for ``retry_for`` then raises; then one
    ack, and the token used again is "done"."""
    store = FlakyStore()
    router = PushRouter(secret_keys=KEYS, store=store, ack_tokens=AckTokens(wait=0.2))
    tokens: list[str] = []

    @router.route("/jobs", queue="jobs", subscriber="worker")
    def handle(msg: PushMessage) -> Defer:
        tokens.append(msg.ack_token)
        return Defer()

    async with PushSimulator(router) as sim:
        assert (await sim.push("/jobs", "x", message_id="m-down")).status_code == 202
        store.fail.add("complete")
        answer = await sim.http.post("/_ack", content=tokens[0])
        assert (answer.status_code, answer.json()) == (202, {"status": "queued"})
        client = worker_client(sim)
        with pytest.raises(StoreUnavailable, match="did not record push m-down"):
            await acknowledge(tokens[0], client=client, store=store, retry_for=0.3)
        await client.aclose()
        redelivered = await sim.push("/jobs", "x", message_id="m-down")
        assert (redelivered.status_code, redelivered.json()) == (202, {"status": "in_progress"})
        assert sim.acks == []  # nothing sent...
        assert len(tokens) == 1  # ...and the handler did not run again
        assert router.counters.totals["completions_retried"] == 1
        store.fail.clear()  # back: the pending completion is recorded, then acked once
        [ack] = await sim.wait_for_acks(1, timeout=30)
        assert ack.reservation_id == redelivered.reservation_id  # the newest one seen
        completions = router.background.current().completions
        await wait_until_async(lambda: completions.count == 0, 30, "the completion to settle")
        assert (await sim.http.post("/_ack", content=tokens[0])).json() == {"status": "done"}
        assert len(sim.acks) == 1


async def test_a_worker_without_the_receivers_keys_is_told_where_to_set_them() -> None:
    client = AsyncIronMQ(project_id="p", token="t", cloud="http://ironmq.test")
    try:
        with pytest.raises(ConfigError, match="IRONPUSH_SECRET_KEYS"):
            await acknowledge("whatever", client=client)
    finally:
        await client.aclose()
