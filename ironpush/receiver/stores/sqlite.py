"""The SQLite store: claims and outbox in a file, durable and shared by processes on one host.

Import it as ``from ironpush.receiver.stores import SQLiteStore``.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from pathlib import Path

from .legacy import _ACTIVE, ActiveState, Claim, Key, OutboxItem

__all__ = ["SQLiteStore"]

_SCHEMA = """
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

    The file is opened lazily (and reopened after a fork), in WAL mode with a
    ``busy_timeout``, so several uvicorn workers can use the same path; every claim is decided
    in one ``BEGIN IMMEDIATE`` transaction (``INSERT OR IGNORE``, then a conditional
    ``UPDATE``), so two processes can never both own a message::

        store = SQLiteStore("ironpush.db")          # relative to the working directory
        router = PushRouter(secret_keys=keys, store=store)
    """

    blocking = True

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        busy_timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        self._clock = clock
        self._conn: sqlite3.Connection | None = None
        self._pid = 0
        self._lock = threading.Lock()
        self._claims = 0

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"

    @contextmanager
    def _db(self, *, write: bool = True) -> Iterator[sqlite3.Connection]:
        with self._lock:
            conn = self._connection()
            if not write:
                yield conn
                return
            # IMMEDIATE takes the write lock up front: a read-then-write claim can never be
            # interleaved with another process's claim of the same message.
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def _connection(self) -> sqlite3.Connection:
        if self._conn is not None and self._pid == os.getpid():
            return self._conn
        # A connection inherited through fork() must not be used by the child; open a new one.
        if self.path.parent and not self.path.parent.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
        )
        try:
            self._setup(conn)
        except BaseException:
            conn.close()
            raise
        self._conn, self._pid = conn, os.getpid()
        return conn

    def _setup(self, conn: sqlite3.Connection) -> None:
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
        # NORMAL is durable against process crashes (kill -9) in WAL mode; only an OS crash
        # or power loss can drop the last transactions.
        conn.execute("PRAGMA synchronous = NORMAL")
        deadline = time.monotonic() + self.busy_timeout
        while True:
            # Switching to WAL needs an exclusive lock and SQLite does not wait for it (no
            # busy handler), so several processes opening a new file at once retry here.
            try:
                if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                    conn.execute("PRAGMA journal_mode = WAL")
                conn.executescript(_SCHEMA)
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    # --- dedupe ------------------------------------------------------------------------------

    def claim(self, key: Key, delivery: str, *, lease: float, ttl: float) -> Claim:
        now = self._clock()
        claim_id = uuid.uuid4().hex
        with self._db() as db:
            inserted = db.execute(
                "INSERT OR IGNORE INTO ironpush_claims (message_id, subscriber, state, "
                "claim_id, lease_until, delivery, attempts, expires_at) "
                "VALUES (?, ?, 'running', ?, ?, ?, 1, ?)",
                (*key, claim_id, now + lease, delivery, now + ttl),
            ).rowcount
            if inserted:
                self._maybe_purge(db, now)
                return Claim("new", claim_id=claim_id, attempt=1)
            state, lease_until, expires_at, attempts, outcome = db.execute(
                "SELECT state, lease_until, expires_at, attempts, outcome FROM ironpush_claims "
                "WHERE message_id = ? AND subscriber = ?",
                key,
            ).fetchone()
            if state == "done" and expires_at > now:
                return Claim("done", outcome=outcome)
            if state in _ACTIVE and lease_until > now:
                db.execute(
                    "UPDATE ironpush_claims SET delivery = ? "
                    "WHERE message_id = ? AND subscriber = ?",
                    (delivery, *key),
                )
                return Claim("busy", state=state)
            # Idle (failed), expired lease (crashed owner) or forgotten done: take it over.
            attempt = 1 if state == "done" else attempts + 1
            db.execute(
                "UPDATE ironpush_claims SET state = 'running', claim_id = ?, lease_until = ?, "
                "delivery = ?, attempts = ?, outcome = NULL, expires_at = ? "
                "WHERE message_id = ? AND subscriber = ?",
                (claim_id, now + lease, delivery, attempt, now + ttl, *key),
            )
            return Claim("new", claim_id=claim_id, attempt=attempt)

    def _maybe_purge(self, db: sqlite3.Connection, now: float) -> None:
        self._claims += 1
        if self._claims % _PURGE_EVERY == 0:
            self._purge(db, now)

    @staticmethod
    def _purge(db: sqlite3.Connection, now: float) -> None:
        db.execute(
            "DELETE FROM ironpush_claims WHERE expires_at < ? "
            "AND (state IN ('done', 'idle') OR lease_until < ?)",
            (now, now),
        )

    def purge(self) -> None:
        """Delete finished claims whose ``ttl`` has passed (also done now and then by claims)."""
        with self._db() as db:
            self._purge(db, self._clock())

    def hold(self, key: Key, claim_id: str, *, state: ActiveState, lease: float) -> bool:
        with self._db() as db:
            changed = db.execute(
                "UPDATE ironpush_claims SET state = ?, lease_until = ? "
                "WHERE message_id = ? AND subscriber = ? AND claim_id = ? "
                "AND state IN ('running','deferred','external')",
                (state, self._clock() + lease, *key, claim_id),
            ).rowcount
        return bool(changed)

    def renew(self, claim_ids: Collection[str], *, lease: float) -> None:
        ids = list(claim_ids)
        if not ids:
            return
        until = self._clock() + lease
        with self._db() as db:
            for start in range(0, len(ids), 500):  # stay under SQLite's variable limit
                chunk = ids[start : start + 500]
                marks = ",".join("?" * len(chunk))
                db.execute(
                    f"UPDATE ironpush_claims SET lease_until = ? WHERE claim_id IN ({marks}) "  # noqa: S608
                    "AND state IN ('running', 'deferred')",
                    (until, *chunk),
                )

    def complete(self, key: Key, *, outcome: str, ttl: float, delivery: str) -> str:
        now = self._clock()
        with self._db() as db:
            row = db.execute(
                "SELECT state, delivery FROM ironpush_claims "
                "WHERE message_id = ? AND subscriber = ?",
                key,
            ).fetchone()
            newest = row[1] if row is not None and row[0] in _ACTIVE else delivery
            db.execute(
                "INSERT INTO ironpush_claims (message_id, subscriber, state, delivery, outcome, "
                "expires_at) VALUES (?, ?, 'done', ?, ?, ?) ON CONFLICT (message_id, subscriber) "
                "DO UPDATE SET state = 'done', claim_id = NULL, lease_until = 0, "
                "delivery = excluded.delivery, outcome = excluded.outcome, "
                "expires_at = excluded.expires_at",
                (*key, newest, outcome, now + ttl),
            )
        return str(newest)

    def release(self, key: Key, claim_id: str | None) -> bool:
        sql = (
            "UPDATE ironpush_claims SET state = 'idle', claim_id = NULL, lease_until = 0 "
            "WHERE message_id = ? AND subscriber = ? AND state IN ('running','deferred','external')"
        )
        args: tuple[str, ...] = key
        if claim_id is not None:
            sql += " AND claim_id = ?"
            args = (*key, claim_id)
        with self._db() as db:
            return bool(db.execute(sql, args).rowcount)

    def newest(self, key: Key) -> str | None:
        with self._db(write=False) as db:
            row = db.execute(
                "SELECT delivery FROM ironpush_claims WHERE message_id = ? AND subscriber = ? "
                "AND state IN ('running','deferred','external')",
                key,
            ).fetchone()
        return None if row is None else str(row[0])

    # --- outbox ------------------------------------------------------------------------------

    def add(self, item: OutboxItem) -> None:
        with self._db() as db:
            db.execute(
                "INSERT INTO ironpush_outbox (id, kind, queue, payload, attempts, created_at, "
                "next_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    item.id,
                    item.kind,
                    item.queue,
                    item.payload,
                    item.attempts,
                    item.created_at,
                    item.next_at,
                ),
            )

    def take(self, *, limit: int, lease: float) -> list[OutboxItem]:
        now = self._clock()
        with self._db() as db:
            rows = db.execute(
                "SELECT id, kind, queue, payload, attempts, created_at, next_at "
                "FROM ironpush_outbox WHERE next_at <= ? AND lease_until <= ? "
                "ORDER BY next_at LIMIT ?",
                (now, now, limit),
            ).fetchall()
            db.executemany(
                "UPDATE ironpush_outbox SET lease_until = ? WHERE id = ?",
                [(now + lease, row[0]) for row in rows],
            )
        return [
            OutboxItem(kind=k, queue=q, payload=p, id=i, attempts=a, created_at=c, next_at=n)
            for i, k, q, p, a, c, n in rows
        ]

    def finish(self, item_ids: Collection[str]) -> None:
        if not item_ids:
            return
        with self._db() as db:
            db.executemany("DELETE FROM ironpush_outbox WHERE id = ?", [(i,) for i in item_ids])

    def retry(self, item_id: str, *, attempts: int, next_at: float) -> None:
        with self._db() as db:
            db.execute(
                "UPDATE ironpush_outbox SET attempts = ?, next_at = ?, lease_until = 0 "
                "WHERE id = ?",
                (attempts, next_at, item_id),
            )

    def depth(self) -> int:
        with self._db(write=False) as db:
            return int(db.execute("SELECT COUNT(*) FROM ironpush_outbox").fetchone()[0])

    def next_due(self) -> float | None:
        with self._db(write=False) as db:
            # An item leased by another process is due for us only when its lease runs out.
            value = db.execute(
                "SELECT MIN(MAX(next_at, lease_until)) FROM ironpush_outbox"
            ).fetchone()[0]
        return None if value is None else float(value)

    def close(self) -> None:
        """Close this process's connection (reopened on next use)."""
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None
