"""The SQLite store heals from real faults: read-only files, a full volume, a deleted or
replaced file, another process's exclusive lock.

The tests run as root, which ignores permission bits, so "read-only" is made real with
``chattr +i`` (immutable: even root's writes fail) and a full disk with a small ``tmpfs``.
Each fault must give :class:`StoreUnavailable` while it lasts (a 503, never a silent success)
and end by itself when its cause does, without a restart.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from support import wait_until_async

from ironpush._errors import StoreUnavailable
from ironpush.receiver.stores import OutboxItem, SQLiteStore

from .contender import delivery

pytestmark = pytest.mark.anyio

KEY = ("m1", "billing")

_LOCKER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN EXCLUSIVE")
conn.execute("INSERT INTO ironpush_meta VALUES ('locker', 'x')")
print("locked", flush=True)
sys.stdin.read()
conn.execute("ROLLBACK")
"""


def remove(*paths: str | Path) -> None:
    for path in paths:
        Path(path).unlink(missing_ok=True)


def start_locker(path: Path) -> subprocess.Popen[str]:
    """Another process holding SQLite's write lock on ``path`` until its stdin closes."""
    return subprocess.Popen(
        [sys.executable, "-c", _LOCKER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def chattr(flag: str, *paths: Path) -> None:
    subprocess.run(["chattr", flag, *map(str, paths)], check=True, capture_output=True)


async def works(store: SQLiteStore, message_id: str) -> bool:
    """One claim and completion; False while the store answers StoreUnavailable."""
    key = (message_id, "billing")
    try:
        await store.claim(key, delivery(message_id), lease=30, ttl=600)
        await store.complete(key, outcome="acked", ttl=600, delivery=delivery(message_id))
    except StoreUnavailable:
        return False
    return True


async def heals(store: SQLiteStore, what: str) -> None:
    counter = iter(range(10**6))

    async def ok() -> bool:
        return await works(store, f"after-{next(counter)}")

    await wait_until_async(ok, 30, what, interval=0.05)
    await asyncio.wait_for(store.check(), 10)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    opened = SQLiteStore(tmp_path / "store.db", busy_timeout=1.0)
    yield opened
    await opened.close()


@pytest.fixture
def immutable() -> Iterator[list[Path]]:
    """Files made immutable by a test; made mutable again whatever happens."""
    paths: list[Path] = []
    yield paths
    existing = [p for p in paths if p.exists()]
    if existing:
        chattr("-i", *existing)


@pytest.fixture
def small_volume(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs, unmounted afterwards."""
    mount = tmp_path / "volume"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(volume: Path) -> Path:
    """Fill ``volume`` to the last byte with a file; return it (delete it to free the space)."""
    ballast = volume / "ballast"
    fd = os.open(ballast, os.O_WRONLY | os.O_CREAT)
    try:
        for size in (65536, 4096, 512, 1):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError:
                pass
    finally:
        os.close(fd)
    return ballast


async def test_a_store_opened_while_its_file_is_read_only_recovers_when_writable(
    tmp_path: Path, immutable: list[Path]
) -> None:
    path = tmp_path / "store.db"
    first = SQLiteStore(path)
    assert await works(first, "before")
    await first.close()
    immutable.append(path)
    chattr("+i", path)
    store = SQLiteStore(path, busy_timeout=1.0)
    try:
        assert not await works(store, "m1")  # SQLite fell back to a read-only connection
        with pytest.raises(StoreUnavailable):
            await store.check()
        chattr("-i", path)
        await heals(store, "the store to write again once the file is writable")
        assert (
            await store.claim(("before", "billing"), delivery("x"), lease=30, ttl=60)
        ).status == "done"
    finally:
        await store.close()


async def test_a_running_store_whose_files_turn_read_only_recovers(
    store: SQLiteStore, immutable: list[Path]
) -> None:
    assert await works(store, "before")
    files = [store.path, Path(f"{store.path}-wal")]  # never the -shm: it is memory-mapped
    immutable.extend(files)
    chattr("+i", *files)
    assert not await works(store, "m1")
    with pytest.raises(StoreUnavailable):
        await store.check()
    chattr("-i", *files)
    await heals(store, "the store to write again once its files are writable")


async def test_a_full_volume_fails_while_full_and_recovers_when_space_is_freed(
    small_volume: Path,
) -> None:
    store = SQLiteStore(small_volume / "store.db", busy_timeout=1.0)
    try:
        assert await works(store, "before")
        ballast = fill(small_volume)
        recorded = 0
        for i in range(20_000):  # new rows need new pages, which the volume no longer has
            if not await works(store, f"m{i}-{'x' * 200}"):
                break
            recorded += 1
        else:
            pytest.fail("20,000 claims fit on a full volume")
        with pytest.raises(StoreUnavailable):
            await store.check()
        ballast.unlink()
        await heals(store, "the store to write again once space is freed")
        last = (f"m{recorded - 1}-{'x' * 200}", "billing")
        if recorded:  # what was acknowledged as recorded before the disk filled is still there
            assert (await store.claim(last, delivery("x"), lease=30, ttl=60)).status == "done"
    finally:
        await store.close()


async def test_the_wal_never_fills_a_small_volume_by_itself(small_volume: Path) -> None:
    # On 2 MiB, SQLite's default WAL (~4 MiB between checkpoints) filled the volume, and then
    # the checkpoint that would have emptied it had no room: "disk full" until a restart.
    store = SQLiteStore(small_volume / "store.db", busy_timeout=1.0)
    try:
        for i in range(3_000):
            key = (f"m{i % 50}", "billing")
            claim = await store.claim(key, delivery("m", "r" * 500), lease=30, ttl=600)
            assert claim.claim_id
            assert await store.release(key, claim.claim_id)
        await store.check()
        assert shutil.disk_usage(small_volume).free > 512 * 1024
    finally:
        await store.close()


async def test_a_deleted_file_is_restored_with_its_claims_and_outbox(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    store = SQLiteStore(path)
    try:
        assert await works(store, "handled")
        item = OutboxItem("ack", "q", delivery=delivery("handled"))
        await store.add(item)
        remove(path, f"{path}-wal", f"{path}-shm")
        assert await works(store, "after")  # restored, then written
        await store.check()
    finally:
        await store.close()
    assert path.exists()
    reopened = SQLiteStore(path)  # as the next start would see it
    try:
        for message_id in ("handled", "after"):
            claim = await reopened.claim((message_id, "billing"), delivery("x"), lease=30, ttl=60)
            assert claim.status == "done", message_id
        assert [i.id for i in await reopened.take(limit=10, lease=60)] == [item.id]
    finally:
        await reopened.close()


async def test_a_deleted_database_file_alone_is_restored_too(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    store = SQLiteStore(path)
    try:
        assert await works(store, "handled")
        path.unlink()  # the -wal and -shm stay behind
        assert await works(store, "after")
    finally:
        await store.close()
    reopened = SQLiteStore(path)
    try:
        for message_id in ("handled", "after"):
            claim = await reopened.claim((message_id, "billing"), delivery("x"), lease=30, ttl=60)
            assert claim.status == "done", message_id
    finally:
        await reopened.close()


async def test_a_replaced_file_is_reopened(tmp_path: Path) -> None:
    path, other = tmp_path / "store.db", tmp_path / "other.db"
    store = SQLiteStore(path)
    try:
        assert await works(store, "old")
        replacement = SQLiteStore(other)
        assert await works(replacement, "new")
        await replacement.close()
        os.replace(other, path)
        remove(f"{path}-wal", f"{path}-shm")
        assert (
            await store.claim(("new", "billing"), delivery("x"), lease=30, ttl=60)
        ).status == "done"
        assert (
            await store.claim(("old", "billing"), delivery("x"), lease=30, ttl=60)
        ).status == "new"
    finally:
        await store.close()


async def test_another_process_holding_an_exclusive_lock_is_a_bounded_outage(
    store: SQLiteStore,
) -> None:
    assert await works(store, "before")
    locker = start_locker(store.path)
    try:
        assert locker.stdout is not None
        assert locker.stdout.readline().strip() == "locked"
        # Each call gives up after busy_timeout (1 s): a 503, not a push hanging forever.
        assert not await asyncio.wait_for(works(store, "m1"), 30)
        with pytest.raises(StoreUnavailable):
            await asyncio.wait_for(store.check(), 30)
    finally:
        assert locker.stdin is not None
        locker.stdin.close()
        locker.wait(timeout=30)
    await heals(store, "the store to write again once the lock is released")


async def test_group_commit_puts_concurrent_calls_in_shared_transactions(
    store: SQLiteStore,
) -> None:
    await store.check()
    before = store.transactions
    results = await asyncio.gather(*(works(store, f"m{i}") for i in range(400)))
    assert all(results)
    assert store.transactions - before < 800  # 800 calls; fewer transactions than calls


def _explode(conn: sqlite3.Connection, now: float) -> None:
    conn.execute("INSERT INTO ironpush_meta VALUES ('half-done', 'x')")
    raise ValueError("a bug in one operation")


async def test_an_operation_failing_by_itself_fails_alone_and_the_batch_goes_on(
    store: SQLiteStore,
) -> None:
    await store.check()
    results = await asyncio.gather(
        works(store, "a"), store._writer.call(_explode), works(store, "b"), return_exceptions=True
    )
    assert results[0] is True
    assert results[2] is True
    assert isinstance(results[1], ValueError)
    # its half-done write was rolled back with it
    assert (
        await store._writer.call(
            lambda conn, now: conn.execute(
                "SELECT count(*) FROM ironpush_meta WHERE key = 'half-done'"
            ).fetchone()[0]
        )
        == 0
    )


async def test_an_old_schema_file_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript(
        """
        CREATE TABLE ironpush_claims (message_id TEXT NOT NULL, subscriber TEXT NOT NULL,
            state TEXT NOT NULL, claim_id TEXT, lease_until REAL NOT NULL DEFAULT 0,
            delivery TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 1, outcome TEXT,
            expires_at REAL NOT NULL, PRIMARY KEY (message_id, subscriber)) WITHOUT ROWID;
        INSERT INTO ironpush_claims VALUES ('m1', 'billing', 'done', NULL, 0, '', 1, 'acked',
            9e12);
        """
    )
    conn.close()
    store = SQLiteStore(path)
    try:
        assert (await store.claim(KEY, delivery("m1"), lease=30, ttl=60)).status == "done"
        assert await works(store, "m2")
    finally:
        await store.close()


def _claim_after_fork(store: SQLiteStore, results: multiprocessing.Queue[str]) -> None:
    claim = asyncio.run(store.claim(("forked", "billing"), delivery("f"), lease=30, ttl=60))
    results.put(claim.status)


async def test_a_store_used_before_a_fork_works_in_the_child(store: SQLiteStore) -> None:
    assert await works(store, "parent")  # the parent's writer thread and connection exist
    ctx = multiprocessing.get_context("fork")
    results: multiprocessing.Queue[str] = ctx.Queue()
    child = ctx.Process(target=_claim_after_fork, args=(store, results))
    child.start()
    assert await asyncio.to_thread(results.get, True, 60) == "new"
    await asyncio.to_thread(child.join, 60)
    assert child.exitcode == 0
    # The parent's store goes on and sees the child's claim: its owner (the child) has exited,
    # so it is taken over at once, as attempt 2.
    claim = await store.claim(("forked", "billing"), delivery("f"), lease=30, ttl=60)
    assert (claim.status, claim.attempt) == ("new", 2)
    assert await works(store, "parent-again")
