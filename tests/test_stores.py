"""Dedupe claims and the outbox, for both stores, plus SQLite's multi-process guarantees."""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ironpush.receiver.stores import MemoryStore, OutboxItem, SQLiteStore, Store

KEY = ("m1", "billing")


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path, clock: Clock) -> Iterator[Store]:
    s: Store
    if request.param == "memory":
        s = MemoryStore(clock=clock)
    else:
        s = SQLiteStore(tmp_path / "store.db", clock=clock)
    yield s
    s.close()


def test_first_claim_is_new_then_busy_while_held(store: Store) -> None:
    first = store.claim(KEY, "d1", lease=30, ttl=600)
    assert first.status == "new"
    assert first.claim_id
    assert first.attempt == 1
    second = store.claim(KEY, "d2", lease=30, ttl=600)
    assert second.status == "busy"
    assert second.state == "running"
    assert store.newest(KEY) == "d2"


def test_complete_returns_the_newest_delivery_and_then_answers_done(store: Store) -> None:
    claim = store.claim(KEY, "d1", lease=30, ttl=600)
    assert claim.claim_id
    store.claim(KEY, "d2", lease=30, ttl=600)  # a redelivery while running
    assert store.complete(KEY, outcome="acked", ttl=600, delivery="d1") == "d2"
    done = store.claim(KEY, "d3", lease=30, ttl=600)
    assert done.status == "done"
    assert done.outcome == "acked"
    assert store.newest(KEY) is None


def test_complete_without_a_claim_records_done(store: Store) -> None:
    assert store.complete(KEY, outcome="dropped", ttl=600, delivery="d1") == "d1"
    assert store.claim(KEY, "d2", lease=30, ttl=600).outcome == "dropped"


def test_released_claim_runs_again_with_the_next_attempt(store: Store) -> None:
    claim = store.claim(KEY, "d1", lease=30, ttl=600)
    assert claim.claim_id
    assert not store.release(KEY, "someone-else")
    assert store.release(KEY, claim.claim_id)
    again = store.claim(KEY, "d2", lease=30, ttl=600)
    assert again.status == "new"
    assert again.attempt == 2


def test_expired_lease_is_taken_over_and_renewal_prevents_it(store: Store, clock: Clock) -> None:
    crashed = store.claim(KEY, "d1", lease=30, ttl=600)
    kept = store.claim(("m2", "billing"), "d1", lease=30, ttl=600)
    assert crashed.claim_id
    assert kept.claim_id
    clock.now += 20
    store.renew([kept.claim_id], lease=30)
    clock.now += 20
    takeover = store.claim(KEY, "d2", lease=30, ttl=600)
    assert takeover.status == "new"
    assert takeover.attempt == 2
    assert store.claim(("m2", "billing"), "d2", lease=30, ttl=600).status == "busy"
    # the old owner lost the claim: it can no longer change it
    assert not store.hold(KEY, crashed.claim_id, state="deferred", lease=30)


def test_hold_switches_state_and_lease(store: Store, clock: Clock) -> None:
    claim = store.claim(KEY, "d1", lease=1, ttl=600)
    assert claim.claim_id
    assert store.hold(KEY, claim.claim_id, state="external", lease=900)
    clock.now += 100
    busy = store.claim(KEY, "d2", lease=1, ttl=600)
    assert busy.status == "busy"
    assert busy.state == "external"


def test_done_is_forgotten_after_ttl(store: Store, clock: Clock) -> None:
    store.claim(KEY, "d1", lease=30, ttl=60)
    store.complete(KEY, outcome="acked", ttl=60, delivery="d1")
    clock.now += 61
    fresh = store.claim(KEY, "d2", lease=30, ttl=60)
    assert fresh.status == "new"
    assert fresh.attempt == 1


def test_memory_store_is_bounded() -> None:
    store = MemoryStore(max_entries=3)
    for i in range(10):
        store.claim((f"m{i}", "s"), "d", lease=30, ttl=600)
        store.complete((f"m{i}", "s"), outcome="acked", ttl=600, delivery="d")
    assert len(store._rows) == 3
    assert store.claim(("m9", "s"), "d", lease=30, ttl=600).status == "done"
    assert store.claim(("m0", "s"), "d", lease=30, ttl=600).status == "new"


def test_outbox_take_leases_items_until_finished_or_retried(store: Store, clock: Clock) -> None:
    a, b = OutboxItem("ack", "q", "d1"), OutboxItem("post", "dlq", "body")
    store.add(a)
    store.add(b)
    assert store.depth() == 2
    taken = store.take(limit=10, lease=60)
    assert [i.id for i in taken] == [a.id, b.id]
    assert taken[1].kind == "post"
    assert taken[1].payload == "body"
    assert store.take(limit=10, lease=60) == []  # leased
    store.finish([a.id])
    store.retry(b.id, attempts=1, next_at=clock.now + 5)
    assert store.depth() == 1
    assert store.take(limit=10, lease=60) == []
    assert store.next_due() == clock.now + 5
    clock.now += 5
    [again] = store.take(limit=10, lease=60)
    assert again.id == b.id
    assert again.attempts == 1


def test_outbox_lease_expires_for_items_of_a_crashed_process(store: Store, clock: Clock) -> None:
    store.add(OutboxItem("ack", "q", "d1"))
    assert len(store.take(limit=10, lease=60)) == 1
    assert store.next_due() == clock.now + 60
    clock.now += 61
    assert len(store.take(limit=10, lease=60)) == 1


def test_sqlite_store_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "durable.db"
    first = SQLiteStore(path)
    first.claim(KEY, "d1", lease=30, ttl=600)
    first.complete(KEY, outcome="acked", ttl=600, delivery="d1")
    first.add(OutboxItem("ack", "q", "d1"))
    first.close()
    second = SQLiteStore(path)
    assert second.claim(KEY, "d2", lease=30, ttl=600).status == "done"
    assert second.depth() == 1
    second.close()


def test_sqlite_purge_removes_expired_rows(tmp_path: Path, clock: Clock) -> None:
    store = SQLiteStore(tmp_path / "p.db", clock=clock)
    store.claim(KEY, "d1", lease=30, ttl=60)
    store.complete(KEY, outcome="acked", ttl=60, delivery="d1")
    clock.now += 61
    store.purge()
    with store._db(write=False) as db:
        assert db.execute("SELECT COUNT(*) FROM ironpush_claims").fetchone()[0] == 0
    store.close()


def _claim_in_process(path: str, start_at: float, results: multiprocessing.Queue[str]) -> None:
    store = SQLiteStore(path)
    while time.time() < start_at:  # line the processes up so their claims collide
        pass
    results.put(store.claim(KEY, "d", lease=30, ttl=600).status)
    store.close()


def test_sqlite_claims_are_exclusive_across_processes(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.db")
    SQLiteStore(path).close()  # create the schema first
    ctx = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue[str] = ctx.Queue()
    start_at = time.time() + 1.5
    procs = [
        ctx.Process(target=_claim_in_process, args=(path, start_at, results)) for _ in range(4)
    ]
    for p in procs:
        p.start()
    statuses = sorted(results.get(timeout=30) for _ in procs)
    for p in procs:
        p.join(timeout=30)
    assert statuses == ["busy", "busy", "busy", "new"]
