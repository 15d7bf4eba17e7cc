"""What the Celery end-to-end processes did, in one SQLite file (``CELERY_TEST_LEDGER``).

The receiver records each handler run, the worker each task start, failure and finish; the test
reads the counts. SQLite in WAL mode takes writers from several processes at once.
"""

from __future__ import annotations

import os
import sqlite3


def _connect(path: str | None = None) -> sqlite3.Connection:
    db = sqlite3.connect(path or os.environ["CELERY_TEST_LEDGER"], timeout=30)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE IF NOT EXISTS ledger (event TEXT, message_id TEXT, pid INTEGER)")
    return db


def record(event: str, message_id: str) -> None:
    with _connect() as db:
        db.execute("INSERT INTO ledger VALUES (?, ?, ?)", (event, message_id, os.getpid()))


def count(event: str, message_id: str, path: str | None = None) -> int:
    with _connect(path) as db:
        (n,) = db.execute(
            "SELECT COUNT(*) FROM ledger WHERE event = ? AND message_id = ?", (event, message_id)
        ).fetchone()
    return int(n)


def events(message_id: str, path: str | None = None) -> list[str]:
    with _connect(path) as db:
        rows = db.execute(
            "SELECT event FROM ledger WHERE message_id = ? ORDER BY rowid", (message_id,)
        ).fetchall()
    return [row[0] for row in rows]
