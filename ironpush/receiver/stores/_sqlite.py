"""The SQLite store: claims and outbox in a file, durable and shared by processes on one host.

Import it as ``from ironpush.receiver.stores import SQLiteStore``. Each process has one writer
thread with group commit (see :mod:`.sqlite_writer`); processes on one host share the file
through SQLite's WAL and ``BEGIN IMMEDIATE`` locking, so a claim is decided atomically across
all of them. The statements are constant texts, so SQLite's statement cache prepares each
once per connection.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
import uuid
from collections.abc import Callable, Collection
from pathlib import Path

from ..._errors import StoreUnavailable
from ..._protocol import Delivery
from ._base import ActiveState, Claim, Key, OutboxItem, Outcome, StoreProblem, this_owner
from ._common import (
    ACTIVE,
    ack_delivery,
    decode_delivery,
    encode_delivery,
    item_payload,
    takeable_owner,
)
from ._common import item_from_payload as _item
from ._sqlite_writer import Writer

SCHEMA_VERSION = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS ironpush_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS ironpush_claims (
    message_id  TEXT NOT NULL,
    subscriber  TEXT NOT NULL,
    state       TEXT NOT NULL,
    claim_id    TEXT,
    lease_until REAL NOT NULL DEFAULT 0,
    delivery    TEXT NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 1,
    outcome     TEXT,
    expires_at  REAL NOT NULL,
    owner       TEXT,
    PRIMARY KEY (message_id, subscriber)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS ironpush_claims_expiry ON ironpush_claims (expires_at);
CREATE INDEX IF NOT EXISTS ironpush_claims_claim ON ironpush_claims (claim_id);
CREATE TABLE IF NOT EXISTS ironpush_outbox (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    queue       TEXT NOT NULL,
    payload     TEXT NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    created_at  REAL NOT NULL,
    next_at     REAL NOT NULL,
    lease_until REAL NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS ironpush_outbox_due ON ironpush_outbox (next_at);
"""

# Expired rows are purged on every Nth claim, so the table stays small without a timer.
_PURGE_EVERY = 500


class SQLiteStore:
    """Claims and outbox in an SQLite file: durable, and shared by processes on one host.

    The file is opened lazily (and again after a fork, or after any fault), in WAL mode; a
    ``busy_timeout`` bounds how long a call waits for another process's lock before it raises
    :class:`~ironpush._errors.StoreUnavailable` (the router answers 503)::

        store = SQLiteStore("ironpush.db")          # relative to the working directory
        router = PushRouter(secret_keys=keys, store=store)
    """

    kind = "sqlite"
    shared = True
    dedupes = True

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        busy_timeout: float = 5.0,
        check_timeout: float = 2.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        self.check_timeout = check_timeout
        self._writer = Writer(self.path, setup=self._setup, busy_timeout=busy_timeout, clock=clock)
        self._claims = 0

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"

    def _setup(self, conn: sqlite3.Connection) -> None:
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
        # NORMAL is durable against process crashes (kill -9) in WAL mode; only an OS crash
        # or power loss can drop the last transactions.
        conn.execute("PRAGMA synchronous = NORMAL")
        _size_wal(conn, self.path.parent)
        conn.execute("PRAGMA temp_store = MEMORY")
        deadline = time.monotonic() + self.busy_timeout
        while True:
            # Switching to WAL needs an exclusive lock and SQLite does not wait for it (no
            # busy handler), so several processes opening a new file at once retry here.
            try:
                if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                    conn.execute("PRAGMA journal_mode = WAL")
                _migrate(conn)
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    # --- claims ------------------------------------------------------------------------------

    async def claim(self, key: Key, delivery: Delivery, *, lease: float, ttl: float) -> Claim:
        self._claims += 1
        purge = self._claims % _PURGE_EVERY == 0
        owner = str(this_owner())
        result: Claim = await self._writer.call(
            _claim, key, encode_delivery(delivery), lease, ttl, owner, purge
        )
        return result

    async def hold(self, key: Key, claim_id: str, *, state: ActiveState, lease: float) -> bool:
        changed: bool = await self._writer.call(_hold, key, claim_id, state, lease)
        return changed

    async def renew(self, claim_ids: Collection[str], *, lease: float) -> None:
        if claim_ids:
            await self._writer.call(_renew, list(claim_ids), lease)

    async def complete(
        self, key: Key, *, outcome: Outcome, ttl: float, delivery: Delivery
    ) -> Delivery:
        newest: str | None = await self._writer.call(_complete, key, outcome, ttl)
        return decode_delivery(newest) or delivery

    async def complete_ack(self, key: Key, *, ttl: float, item: OutboxItem) -> Delivery:
        """:meth:`complete` (``acked``) and :meth:`add` of ``item`` (an ack) with the newest
        delivery, in one transaction (a deferred job's end)."""
        delivery = ack_delivery(item)
        newest: str | None = await self._writer.call(_complete_ack, key, ttl, item)
        return decode_delivery(newest) or delivery

    async def complete_once(
        self, key: Key, *, outcome: Outcome, ttl: float, delivery: Delivery
    ) -> Delivery | None:
        done, newest = await self._writer.call(_complete_once, key, outcome, ttl)
        return None if done else decode_delivery(newest) or delivery

    async def release(self, key: Key, claim_id: str | None) -> bool:
        released: bool = await self._writer.call(_release, key, claim_id)
        return released

    async def newest(self, key: Key) -> Delivery | None:
        text: str | None = await self._writer.call(_newest, key)
        return decode_delivery(text)

    async def purge(self) -> None:
        """Delete finished claims whose ``ttl`` has passed (also done now and then by claims)."""
        await self._writer.call(_purge)

    # --- the outbox --------------------------------------------------------------------------

    async def add(self, item: OutboxItem) -> None:
        await self._writer.call(_add, item, item_payload(item))

    async def take(self, *, limit: int, lease: float) -> list[OutboxItem]:
        items: list[OutboxItem] = await self._writer.call(_take, limit, lease)
        return items

    async def finish(self, item_ids: Collection[str]) -> None:
        if item_ids:
            await self._writer.call(_finish, list(item_ids))

    async def retry(self, item_id: str, *, attempts: int, next_at: float) -> None:
        await self._writer.call(_retry, item_id, attempts, next_at)

    async def depth(self) -> int:
        count: int = await self._writer.call(_depth)
        return count

    async def next_due(self) -> float | None:
        due: float | None = await self._writer.call(_next_due)
        return due

    # --- life --------------------------------------------------------------------------------

    async def check(self) -> None:
        """A write probe in the next transaction, bounded by ``check_timeout``: it fails while
        the file is read-only, full, deleted beyond repair or locked by another process."""
        try:
            await asyncio.wait_for(self._writer.call(_probe), self.check_timeout)
        except TimeoutError:
            raise StoreUnavailable(
                f"sqlite store did not answer within {self.check_timeout:g} s "
                "(locked by another process?)",
                store="sqlite",
            ) from None

    def problems(self) -> list[StoreProblem]:
        """None beyond what :meth:`check` finds: a file has no eviction policy."""
        return []

    async def close(self) -> None:
        """Finish the queued operations, stop the thread and close the file (reopened if the
        store is used again)."""
        await asyncio.to_thread(self._writer.close)

    @property
    def transactions(self) -> int:
        """Transactions committed by this process (fewer than calls, thanks to group commit)."""
        return self._writer.batches


# =========================================================================== operations
# Each runs in the writer thread inside the batch's transaction: fn(conn, now, *args).


def _size_wal(conn: sqlite3.Connection, directory: Path) -> None:
    """Keep the WAL to an eighth of the free space (at most SQLite's 1000 pages).

    Between two checkpoints the WAL grows by every page written; on a small volume the default
    (~4 MiB) can fill the disk, and then the checkpoint that would empty the WAL has no room to
    copy its pages: the store would stay full for good. Checkpointing earlier prevents that.
    """
    page = int(conn.execute("PRAGMA page_size").fetchone()[0])
    try:
        stat = os.statvfs(directory)
        free_pages = stat.f_bavail * stat.f_frsize // page
    except OSError:
        free_pages = 8000
    pages = max(16, min(1000, free_pages // 8))
    conn.execute(f"PRAGMA wal_autocheckpoint = {pages}")
    # After a checkpoint the WAL file is cut back to that size, so a burst does not keep space.
    conn.execute(f"PRAGMA journal_size_limit = {pages * page}")


def _migrate(conn: sqlite3.Connection) -> None:
    conn.executescript(_SCHEMA)
    columns = {row[1] for row in conn.execute("PRAGMA table_info(ironpush_claims)")}
    if "owner" not in columns:  # schema 1 (ironpush 0.x) had no claim owners
        conn.execute("ALTER TABLE ironpush_claims ADD COLUMN owner TEXT")
    row = conn.execute("SELECT value FROM ironpush_meta WHERE key = 'schema_version'").fetchone()
    if row is None:
        conn.execute(
            "INSERT OR IGNORE INTO ironpush_meta VALUES ('schema_version', ?)",
            (str(SCHEMA_VERSION),),
        )
    elif int(row[0]) > SCHEMA_VERSION:
        raise StoreUnavailable(
            f"sqlite store schema {row[0]} is newer than this ironpush ({SCHEMA_VERSION})",
            store="sqlite",
        )


def _claim(
    conn: sqlite3.Connection,
    now: float,
    key: Key,
    delivery: str,
    lease: float,
    ttl: float,
    owner: str,
    purge: bool,
) -> Claim:
    claim_id = uuid.uuid4().hex
    if purge:
        _purge(conn, now)
    inserted = conn.execute(
        "INSERT OR IGNORE INTO ironpush_claims (message_id, subscriber, state, claim_id, "
        "lease_until, delivery, attempts, expires_at, owner) "
        "VALUES (?, ?, 'running', ?, ?, ?, 1, ?, ?)",
        (*key, claim_id, now + lease, delivery, now + ttl, owner),
    ).rowcount
    if inserted:
        return Claim("new", claim_id=claim_id, attempt=1)
    state, lease_until, expires_at, attempts, outcome, holder = conn.execute(
        "SELECT state, lease_until, expires_at, attempts, outcome, owner FROM ironpush_claims "
        "WHERE message_id = ? AND subscriber = ?",
        key,
    ).fetchone()
    if state == "done" and expires_at > now:
        return Claim("done", outcome=outcome)
    if state in ACTIVE and lease_until > now and not takeable_owner(state, holder):
        conn.execute(
            "UPDATE ironpush_claims SET delivery = ? WHERE message_id = ? AND subscriber = ?",
            (delivery, *key),
        )
        return Claim("busy", state=state)
    # Idle (failed), a lapsed lease or a dead owner (crashed), or a forgotten done: take over.
    attempt = 1 if state == "done" else attempts + 1
    conn.execute(
        "UPDATE ironpush_claims SET state = 'running', claim_id = ?, lease_until = ?, "
        "delivery = ?, attempts = ?, outcome = NULL, expires_at = ?, owner = ? "
        "WHERE message_id = ? AND subscriber = ?",
        (claim_id, now + lease, delivery, attempt, now + ttl, owner, *key),
    )
    return Claim("new", claim_id=claim_id, attempt=attempt)


def _purge(conn: sqlite3.Connection, now: float) -> None:
    conn.execute(
        "DELETE FROM ironpush_claims WHERE expires_at < ? "
        "AND (state IN ('done', 'idle') OR lease_until < ?)",
        (now, now),
    )


def _hold(
    conn: sqlite3.Connection, now: float, key: Key, claim_id: str, state: str, lease: float
) -> bool:
    return bool(
        conn.execute(
            "UPDATE ironpush_claims SET state = ?, lease_until = ? WHERE message_id = ? "
            "AND subscriber = ? AND claim_id = ? AND state IN ('running', 'deferred', 'external')",
            (state, now + lease, *key, claim_id),
        ).rowcount
    )


def _renew(conn: sqlite3.Connection, now: float, claim_ids: list[str], lease: float) -> None:
    conn.executemany(
        "UPDATE ironpush_claims SET lease_until = ? "
        "WHERE claim_id = ? AND state IN ('running', 'deferred')",
        [(now + lease, claim_id) for claim_id in claim_ids],
    )


def _complete(
    conn: sqlite3.Connection, now: float, key: Key, outcome: str, ttl: float
) -> str | None:
    row = conn.execute(
        "SELECT state, delivery FROM ironpush_claims WHERE message_id = ? AND subscriber = ?",
        key,
    ).fetchone()
    newest = row[1] if row is not None and row[0] in ACTIVE else None
    conn.execute(
        "INSERT INTO ironpush_claims (message_id, subscriber, state, delivery, outcome, "
        "expires_at) VALUES (?, ?, 'done', '', ?, ?) ON CONFLICT (message_id, subscriber) "
        "DO UPDATE SET state = 'done', claim_id = NULL, lease_until = 0, delivery = '', "
        "outcome = excluded.outcome, expires_at = excluded.expires_at, owner = NULL",
        (*key, outcome, now + ttl),
    )
    return newest


def _complete_ack(
    conn: sqlite3.Connection, now: float, key: Key, ttl: float, item: OutboxItem
) -> str | None:
    newest = _complete(conn, now, key, "acked", ttl)
    _add(conn, now, item, newest or item_payload(item))
    return newest


def _complete_once(
    conn: sqlite3.Connection, now: float, key: Key, outcome: str, ttl: float
) -> tuple[bool, str | None]:
    """(True, None) when ``key`` is handled already; else :func:`_complete`'s answer."""
    row = conn.execute(
        "SELECT 1 FROM ironpush_claims WHERE message_id = ? AND subscriber = ? "
        "AND state = 'done' AND expires_at > ?",
        (*key, now),
    ).fetchone()
    if row is not None:
        return True, None
    return False, _complete(conn, now, key, outcome, ttl)


def _release(conn: sqlite3.Connection, now: float, key: Key, claim_id: str | None) -> bool:
    sql = (
        "UPDATE ironpush_claims SET state = 'idle', claim_id = NULL, lease_until = 0, "
        "owner = NULL WHERE message_id = ? AND subscriber = ? "
        "AND state IN ('running', 'deferred', 'external')"
    )
    if claim_id is None:
        return bool(conn.execute(sql, key).rowcount)
    return bool(conn.execute(sql + " AND claim_id = ?", (*key, claim_id)).rowcount)


def _newest(conn: sqlite3.Connection, now: float, key: Key) -> str | None:
    row = conn.execute(
        "SELECT delivery FROM ironpush_claims WHERE message_id = ? AND subscriber = ? "
        "AND state IN ('running', 'deferred', 'external')",
        key,
    ).fetchone()
    return None if row is None else str(row[0])


def _add(conn: sqlite3.Connection, now: float, item: OutboxItem, payload: str) -> None:
    conn.execute(
        "INSERT OR IGNORE INTO ironpush_outbox (id, kind, queue, payload, attempts, created_at, "
        "next_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (item.id, item.kind, item.queue, payload, item.attempts, item.created_at, item.next_at),
    )


def _take(conn: sqlite3.Connection, now: float, limit: int, lease: float) -> list[OutboxItem]:
    rows = conn.execute(
        "SELECT id, kind, queue, payload, attempts, created_at, next_at FROM ironpush_outbox "
        "WHERE next_at <= ? AND lease_until <= ? ORDER BY next_at, created_at LIMIT ?",
        (now, now, limit),
    ).fetchall()
    conn.executemany(
        "UPDATE ironpush_outbox SET lease_until = ? WHERE id = ?",
        [(now + lease, row[0]) for row in rows],
    )
    return [
        _item(id=i, kind=k, queue=q, payload=p, attempts=a, created_at=c, next_at=n)
        for i, k, q, p, a, c, n in rows
    ]


def _finish(conn: sqlite3.Connection, now: float, item_ids: list[str]) -> None:
    conn.executemany("DELETE FROM ironpush_outbox WHERE id = ?", [(i,) for i in item_ids])


def _retry(
    conn: sqlite3.Connection, now: float, item_id: str, attempts: int, next_at: float
) -> None:
    conn.execute(
        "UPDATE ironpush_outbox SET attempts = ?, next_at = ?, lease_until = 0 WHERE id = ?",
        (attempts, next_at, item_id),
    )


def _depth(conn: sqlite3.Connection, now: float) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM ironpush_outbox").fetchone()[0])


def _next_due(conn: sqlite3.Connection, now: float) -> float | None:
    # An item leased by another process is due for us only when its lease runs out.
    value = conn.execute("SELECT MIN(MAX(next_at, lease_until)) FROM ironpush_outbox").fetchone()
    return None if value[0] is None else float(value[0])


def _probe(conn: sqlite3.Connection, now: float) -> None:
    # A real write: it fails while the file is read-only or the disk is full.
    conn.execute("UPDATE ironpush_meta SET value = value WHERE key = 'schema_version'")
