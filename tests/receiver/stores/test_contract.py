"""The store contract, run with identical assertions on memory, SQLite, Redis and PostgreSQL.

Everything runs on the real engines with the real clock: leases and TTLs are short and every
wait is a condition polled with a deadline. Tests that need other processes (races, kill -9)
run on the shared stores; the memory store (one process by design) runs the same contenders
as concurrent tasks where that means something.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from faults.servers import OwnPostgres, OwnRedis, OwnServer
from support import wait_until, wait_until_async

from ironpush._errors import StoreUnavailable
from ironpush.receiver.stores import OutboxItem, Store, open_store

from .conftest import SHARED_KINDS
from .contender import ack, delivery, race, send

pytestmark = pytest.mark.anyio

KEY = ("m1", "billing")
CONTENDER = Path(__file__).with_name("contender.py")


# --------------------------------------------------------------------------- claim states


async def test_first_claim_is_new_then_busy_recording_the_newest(store: Store) -> None:
    first = await store.claim(KEY, delivery("m1", "r1"), lease=30, ttl=600)
    assert (first.status, first.attempt) == ("new", 1)
    assert first.claim_id
    second = await store.claim(KEY, delivery("m1", "r2"), lease=30, ttl=600)
    assert (second.status, second.state) == ("busy", "running")
    assert await store.newest(KEY) == delivery("m1", "r2")


async def test_complete_returns_the_newest_delivery_then_answers_done(store: Store) -> None:
    await store.claim(KEY, delivery("m1", "r1"), lease=30, ttl=600)
    await store.claim(KEY, delivery("m1", "r2"), lease=30, ttl=600)  # redelivered meanwhile
    newest = await store.complete(KEY, outcome="acked", ttl=600, delivery=delivery("m1", "r1"))
    assert newest == delivery("m1", "r2")
    done = await store.claim(KEY, delivery("m1", "r3"), lease=30, ttl=600)
    assert (done.status, done.outcome) == ("done", "acked")
    assert await store.newest(KEY) is None
    assert not await store.release(KEY, None)  # nothing active to give up


async def test_complete_without_a_claim_records_done(store: Store) -> None:
    own = delivery("m1", "r1")
    assert await store.complete(KEY, outcome="dropped", ttl=600, delivery=own) == own
    claim = await store.claim(KEY, delivery("m1", "r2"), lease=30, ttl=600)
    assert (claim.status, claim.outcome) == ("done", "dropped")


async def test_complete_once_completes_once_with_the_newest_delivery(store: Store) -> None:
    claim = await store.claim(KEY, delivery("m1", "r1"), lease=30, ttl=600)
    assert claim.claim_id
    assert await store.hold(KEY, claim.claim_id, state="external", lease=900)
    await store.claim(KEY, delivery("m1", "r2"), lease=30, ttl=600)  # redelivered meanwhile
    own = delivery("m1", "r1")
    assert await store.complete_once(KEY, outcome="acked", ttl=600, delivery=own) == delivery(
        "m1", "r2"
    )
    assert await store.complete_once(KEY, outcome="acked", ttl=600, delivery=own) is None
    done = await store.claim(KEY, delivery("m1", "r3"), lease=30, ttl=600)
    assert (done.status, done.outcome) == ("done", "acked")


async def test_complete_once_records_an_unknown_or_released_message(store: Store) -> None:
    unknown, released = ("m1", "billing"), ("m2", "billing")
    own = delivery("m1", "r1")
    assert await store.complete_once(unknown, outcome="acked", ttl=600, delivery=own) == own
    assert (await store.claim(unknown, own, lease=30, ttl=600)).status == "done"
    claim = await store.claim(released, delivery("m2"), lease=30, ttl=600)
    assert await store.release(released, claim.claim_id)
    mine = delivery("m2", "r9")
    assert await store.complete_once(released, outcome="acked", ttl=600, delivery=mine) == mine
    assert (await store.claim(released, mine, lease=30, ttl=600)).status == "done"


async def test_released_claim_runs_again_with_the_next_attempt(store: Store) -> None:
    claim = await store.claim(KEY, delivery("m1"), lease=30, ttl=600)
    assert claim.claim_id
    assert not await store.release(KEY, "someone-else")
    assert await store.release(KEY, claim.claim_id)
    assert not await store.release(KEY, claim.claim_id)  # idle now
    assert await store.newest(KEY) is None
    again = await store.claim(KEY, delivery("m1"), lease=30, ttl=600)
    assert (again.status, again.attempt) == ("new", 2)
    assert again.claim_id != claim.claim_id
    assert await store.release(KEY, None)  # any holder
    assert (await store.claim(KEY, delivery("m1"), lease=30, ttl=600)).attempt == 3


async def test_hold_switches_state_only_for_the_owner(store: Store) -> None:
    claim = await store.claim(KEY, delivery("m1"), lease=30, ttl=600)
    assert claim.claim_id
    assert not await store.hold(KEY, "someone-else", state="deferred", lease=30)
    assert await store.hold(KEY, claim.claim_id, state="deferred", lease=30)
    assert (await store.claim(KEY, delivery("m1"), lease=30, ttl=600)).state == "deferred"
    assert await store.hold(KEY, claim.claim_id, state="external", lease=900)
    assert (await store.claim(KEY, delivery("m1"), lease=30, ttl=600)).state == "external"
    await store.complete(KEY, outcome="acked", ttl=600, delivery=delivery("m1"))
    assert not await store.hold(KEY, claim.claim_id, state="deferred", lease=30)


async def test_a_lapsed_lease_is_taken_over_and_renewal_prevents_it(store: Store) -> None:
    kept_key = ("m2", "billing")
    lapsed = await store.claim(KEY, delivery("m1"), lease=1, ttl=600)
    kept = await store.claim(kept_key, delivery("m2"), lease=3, ttl=600)
    assert lapsed.claim_id
    assert kept.claim_id
    kept_id = kept.claim_id

    async def taken_over() -> bool:
        await store.renew([kept_id], lease=3)  # the owner's heartbeat, for one claim only
        claim = await store.claim(KEY, delivery("m1", "r2"), lease=30, ttl=600)
        return claim.status == "new" and claim.attempt == 2

    await wait_until_async(taken_over, 30, "the lapsed claim to be taken over")
    assert (await store.claim(kept_key, delivery("m2"), lease=30, ttl=600)).status == "busy"
    # the old owner lost the claim: it can no longer change it
    assert not await store.hold(KEY, lapsed.claim_id, state="deferred", lease=30)
    assert not await store.release(KEY, lapsed.claim_id)


async def test_handled_messages_are_forgotten_after_their_ttl(store: Store) -> None:
    await store.claim(KEY, delivery("m1"), lease=30, ttl=1)
    await store.complete(KEY, outcome="acked", ttl=1, delivery=delivery("m1"))
    assert (await store.claim(KEY, delivery("m1"), lease=30, ttl=1)).status == "done"

    async def forgotten() -> bool:
        claim = await store.claim(KEY, delivery("m1"), lease=30, ttl=600)
        return claim.status == "new" and claim.attempt == 1

    await wait_until_async(forgotten, 30, "the handled message to expire")


# --------------------------------------------------------------------------- the outbox


async def test_outbox_take_leases_items_until_finished_or_retried(store: Store) -> None:
    now = time.time()
    a = OutboxItem("ack", "q", delivery=delivery("m1"), created_at=now - 2)
    b = OutboxItem("post", "dlq", body='{"why": "poison"}', created_at=now - 1)
    await store.add(a)
    await store.add(b)
    await store.add(a)  # adding the same item again keeps one
    assert await store.depth() == 2
    due = await store.next_due()
    assert due is not None
    assert due <= time.time()
    taken = await store.take(limit=10, lease=60)
    assert [i.id for i in taken] == [a.id, b.id]  # FIFO
    assert taken[0] == a
    assert (taken[1].kind, taken[1].body, taken[1].queue) == ("post", '{"why": "poison"}', "dlq")
    assert await store.take(limit=10, lease=60) == []  # leased
    await store.finish([a.id])
    later = time.time() + 300
    await store.retry(b.id, attempts=1, next_at=later)
    assert await store.depth() == 1
    assert await store.take(limit=10, lease=60) == []  # not due yet
    assert await store.next_due() == pytest.approx(later, abs=0.01)
    await store.retry(b.id, attempts=2, next_at=time.time() - 1)
    [again] = await store.take(limit=10, lease=60)
    assert (again.id, again.attempts) == (b.id, 2)
    await store.finish([b.id, "unknown"])
    assert await store.depth() == 0
    assert await store.next_due() is None


async def test_an_outbox_lease_runs_out_for_a_crashed_sender(store: Store) -> None:
    await store.add(OutboxItem("ack", "q", delivery=delivery("m1")))
    assert len(await store.take(limit=10, lease=1)) == 1
    due = await store.next_due()
    assert due is not None
    assert due > time.time() - 0.5  # not before its lease ends

    async def taken_again() -> int:
        return len(await store.take(limit=10, lease=60))

    assert await wait_until_async(taken_again, 30, "the outbox lease to run out") == 1


async def test_take_respects_the_limit(store: Store) -> None:
    for i in range(5):
        await store.add(OutboxItem("ack", "q", delivery=delivery(f"m{i}")))
    first = await store.take(limit=3, lease=60)
    second = await store.take(limit=3, lease=60)
    assert (len(first), len(second)) == (3, 2)
    assert not {i.id for i in first} & {i.id for i in second}


# --------------------------------------------------------------------------- life


async def test_check_passes_on_a_healthy_store(store: Store) -> None:
    await asyncio.wait_for(store.check(), 10)
    assert store.kind in ("memory", "sqlite", "redis", "postgres")
    assert store.shared is (store.kind != "memory")
    assert store.dedupes


# --------------------------------------------------------------------------- processes


class Proc:
    """A contender process whose output lines are collected as they come."""

    def __init__(self, *args: str) -> None:
        self.popen = subprocess.Popen(
            [sys.executable, str(CONTENDER), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.lines.append(line.strip())

    def result(self, timeout: float = 60) -> str:
        self.popen.wait(timeout=timeout)
        self._reader.join(timeout=10)
        stderr = self.popen.stderr.read() if self.popen.stderr else ""
        assert self.popen.returncode == 0, stderr
        return self.lines[-1]

    def kill(self) -> None:
        if self.popen.poll() is None:
            os.kill(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=30)


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    started: list[Proc] = []
    yield started
    for proc in started:
        proc.kill()


async def test_four_contenders_racing_for_one_claim_exactly_one_wins(
    kind: str, spec: str, store: Store, procs: list[Proc]
) -> None:
    start_at = time.time() + (2.5 if kind in SHARED_KINDS else 0.05)
    if kind in SHARED_KINDS:
        procs.extend(Proc(spec, "race", "m1", str(start_at)) for _ in range(4))
        statuses = [p.result() for p in procs]
    else:  # one process by design: four concurrent tasks
        statuses = list(await asyncio.gather(*(race(store, "m1", start_at) for _ in range(4))))
    assert sorted(statuses) == ["busy", "busy", "busy", "new"]


async def test_four_workers_acking_one_token_at_once_complete_it_once(
    kind: str, spec: str, store: Store, procs: list[Proc]
) -> None:
    claim = await store.claim(KEY, delivery("m1", "r1"), lease=60, ttl=600)
    assert claim.claim_id
    assert await store.hold(KEY, claim.claim_id, state="external", lease=900)
    start_at = time.time() + (2.5 if kind in SHARED_KINDS else 0.05)
    if kind in SHARED_KINDS:
        procs.extend(Proc(spec, "ack", "m1", str(start_at)) for _ in range(4))
        answers = [p.result() for p in procs]
    else:
        answers = list(await asyncio.gather(*(ack(store, "m1", start_at) for _ in range(4))))
    assert sorted(answers) == ["done", "done", "done", "r1"]


async def test_three_senders_take_each_outbox_item_exactly_once(
    kind: str, spec: str, store: Store, procs: list[Proc]
) -> None:
    items = [OutboxItem("ack", "q", delivery=delivery(f"m{i}")) for i in range(60)]
    for item in items:
        await store.add(item)
    start_at = time.time() + (2.5 if kind in SHARED_KINDS else 0.05)
    if kind in SHARED_KINDS:
        procs.extend(Proc(spec, "send", str(start_at)) for _ in range(3))
        taken = [json.loads(p.result()) for p in procs]
    else:
        taken = list(await asyncio.gather(*(send(store, start_at) for _ in range(3))))
    every = [item_id for ids in taken for item_id in ids]
    assert sorted(every) == sorted(i.id for i in items)  # all of them, none twice
    assert await store.depth() == 0


@pytest.mark.parametrize("kind", SHARED_KINDS)
async def test_a_killed_local_owner_is_taken_over_at_once(
    spec: str, store: Store, procs: list[Proc]
) -> None:
    holder = Proc(spec, "hold", "m1", "120")
    procs.append(holder)
    wait_until(lambda: holder.lines, 60, "the holder to claim")
    assert json.loads(holder.lines[0])["status"] == "new"
    assert (await store.claim(KEY, delivery("m1", "r2"), lease=30, ttl=600)).status == "busy"
    holder.kill()
    # The lease has two minutes left: only the dead-owner rule can free the claim now.
    claim = await store.claim(KEY, delivery("m1", "r3"), lease=30, ttl=600)
    assert (claim.status, claim.attempt) == ("new", 2)


@pytest.mark.parametrize("kind", SHARED_KINDS)
async def test_an_external_claim_outlives_the_process_that_handed_it_over(
    spec: str, store: Store, procs: list[Proc]
) -> None:
    # The work left the process (a Celery task, an external worker holding the ack token):
    # its death must not let a redelivery start the work a second time.
    holder = Proc(spec, "hold", "m1", "120", "external")
    procs.append(holder)
    wait_until(lambda: holder.lines, 60, "the holder to claim")
    holder.kill()
    claim = await store.claim(KEY, delivery("m1", "r2"), lease=30, ttl=600)
    assert (claim.status, claim.state) == ("busy", "external")


@pytest.mark.parametrize("kind", SHARED_KINDS)
async def test_a_killed_remote_owner_loses_its_claim_when_the_lease_runs_out(
    spec: str, store: Store, procs: list[Proc]
) -> None:
    holder = Proc(spec, "hold", "m1", "2", "remote")
    procs.append(holder)
    wait_until(lambda: len(holder.lines) >= 6, 60, "the holder to renew its lease 5 times")
    # Renewed for longer than one lease: still held.
    assert (await store.claim(KEY, delivery("m1", "r2"), lease=30, ttl=600)).status == "busy"
    holder.kill()

    async def taken_over() -> bool:
        claim = await store.claim(KEY, delivery("m1", "r3"), lease=30, ttl=600)
        return claim.status == "new" and claim.attempt == 2

    await wait_until_async(taken_over, 30, "the dead owner's lease to run out")


# --------------------------------------------------------------------------- server restarts


@pytest.fixture(params=["redis", "postgres"])
def own_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OwnServer]:
    """A server of this test's own: the one it restarts (never a shared one)."""
    with OwnRedis(tmp_path) if request.param == "redis" else OwnPostgres(tmp_path) as server:
        yield server


async def test_a_server_restart_is_unavailable_while_down_then_heals(
    own_server: OwnServer,
) -> None:
    server, kind = own_server, own_server.kind
    store = open_store(server.url)
    try:
        await _restart_and_heal(server, kind, store)
    finally:
        await store.close()


async def _restart_and_heal(server: OwnServer, kind: str, store: Store) -> None:
    await store.claim(KEY, delivery("m1"), lease=30, ttl=600)
    await store.complete(KEY, outcome="acked", ttl=600, delivery=delivery("m1"))
    down, seen = threading.Event(), threading.Event()

    def while_down() -> None:  # the server stays down until the test has seen the outage
        down.set()
        seen.wait(120)

    restart = threading.Thread(target=server.restart, kwargs={"down_for": 0, "on_down": while_down})
    restart.start()
    try:
        await wait_until_async(down.is_set, 60, f"{kind} to stop")
        with pytest.raises(StoreUnavailable):
            await asyncio.wait_for(
                store.claim(("m2", "billing"), delivery("m2"), lease=30, ttl=60), 10
            )
        with pytest.raises(StoreUnavailable):
            await asyncio.wait_for(store.check(), 10)
    finally:
        seen.set()
        await asyncio.to_thread(restart.join, 120)
    assert server.reachable()

    async def healed() -> bool:
        try:
            await store.check()
            claim = await store.claim(("m3", "billing"), delivery("m3"), lease=30, ttl=600)
        except StoreUnavailable:
            return False
        return claim.status == "new"

    await wait_until_async(healed, 30, f"the {kind} store to heal")
    again = await store.claim(KEY, delivery("m1"), lease=30, ttl=600)
    # PostgreSQL keeps what was recorded; the test's Redis runs without persistence (--save "").
    assert again.status == ("done" if kind == "postgres" else "new")
