"""SQLite write-through for the dev server's state (``db=PATH`` / ``--db PATH``).

The in-memory state is the working set; every change is also queued to one writer thread,
which commits whatever has accumulated in a single transaction (group commit). The event loop
never waits on SQLite except where it asks to: API calls that change state await
:meth:`Persistence.barrier` before answering, so **a 2xx means the change is committed**.

"Durable" for the dev server means: committed to the database file in WAL mode with
``synchronous=NORMAL``. That survives the process being killed (``kill -9``) at any moment,
but not a power cut or OS crash (the last commits may be lost then) — the right trade for a
development tool. Push progress (tries, statuses) is written without waiting: after a crash a
push whose outcome was not yet written is simply tried again (at-least-once, as IronMQ).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import queue
import sqlite3
import threading
from collections.abc import Iterator
from typing import Any

log = logging.getLogger("ironpush.devserver")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS queues (
    project TEXT NOT NULL, name TEXT NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (project, name));
CREATE TABLE IF NOT EXISTS messages (
    id TEXT PRIMARY KEY, project TEXT NOT NULL, queue TEXT NOT NULL, data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS messages_by_queue ON messages (project, queue);
"""

_STOP = object()
_BATCH = 5000

# An operation for the writer: (sql, params) or a barrier future to resolve after the commit.
_Op = tuple[str, tuple[Any, ...]] | asyncio.Future[None] | object


class Persistence:
    """A SQLite file written by a background thread; see the module docstring."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(_SCHEMA)
        self._ops: queue.SimpleQueue[_Op] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.failed: BaseException | None = None

    # ------------------------------------------------------------------ loading

    def load_queues(self) -> Iterator[tuple[str, str, dict[str, Any]]]:
        for project, name, data in self._conn.execute("SELECT project, name, data FROM queues"):
            yield project, name, json.loads(data)

    def load_messages(self) -> Iterator[tuple[str, str, str, dict[str, Any]]]:
        rows = self._conn.execute("SELECT id, project, queue, data FROM messages")
        for mid, project, queue_name, data in rows:
            yield mid, project, queue_name, json.loads(data)

    # ------------------------------------------------------------------ writing

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._thread = threading.Thread(target=self._run, name="ironpush-devserver-db", daemon=True)
        self._thread.start()

    def put_queue(self, project: str, name: str, row: dict[str, Any]) -> None:
        self._ops.put(("REPLACE INTO queues VALUES (?, ?, ?)", (project, name, row)))

    def delete_queue(self, project: str, name: str) -> None:
        self._ops.put(("DELETE FROM queues WHERE project = ? AND name = ?", (project, name)))
        self._ops.put(("DELETE FROM messages WHERE project = ? AND queue = ?", (project, name)))

    def put_message(self, mid: str, project: str, queue_name: str, row: dict[str, Any]) -> None:
        sql = "REPLACE INTO messages VALUES (?, ?, ?, ?)"
        self._ops.put((sql, (mid, project, queue_name, row)))

    def delete_message(self, mid: str) -> None:
        self._ops.put(("DELETE FROM messages WHERE id = ?", (mid,)))

    def reset(self) -> None:
        self._ops.put(("DELETE FROM messages", ()))
        self._ops.put(("DELETE FROM queues", ()))

    def barrier(self) -> asyncio.Future[None]:
        """A future resolved once every change queued so far is committed."""
        assert self._loop is not None, "start() first"
        fut: asyncio.Future[None] = self._loop.create_future()
        self._ops.put(fut)
        return fut

    def close(self) -> None:
        """Commit what is queued, stop the writer and close the file."""
        if self._thread is not None:
            self._ops.put(_STOP)
            self._thread.join()
            self._thread = None
        self._conn.close()

    def _run(self) -> None:
        stop = False
        while not stop:
            batch = [self._ops.get()]
            with contextlib.suppress(queue.Empty):
                while len(batch) < _BATCH:
                    batch.append(self._ops.get_nowait())
            stop = any(op is _STOP for op in batch)
            self._commit(batch)

    def _commit(self, batch: list[_Op]) -> None:
        waiters: list[asyncio.Future[None]] = []
        error: BaseException | None = None
        try:
            self._conn.execute("BEGIN")
            for op in batch:
                if isinstance(op, asyncio.Future):
                    waiters.append(op)
                elif isinstance(op, tuple):
                    sql, params = op
                    self._conn.execute(sql, tuple(_encode(p) for p in params))
            self._conn.execute("COMMIT")
        except sqlite3.Error as exc:  # disk full, file removed...: report, keep serving from memory
            error = self.failed = exc
            log.error("dev server: writing %s failed: %s", self.path, exc)
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("ROLLBACK")
        if waiters and self._loop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # loop closed meanwhile
                self._loop.call_soon_threadsafe(_resolve, waiters, error)


def _encode(value: Any) -> Any:
    return json.dumps(value, separators=(",", ":")) if isinstance(value, dict) else value


def _resolve(waiters: list[asyncio.Future[None]], error: BaseException | None) -> None:
    for fut in waiters:
        if not fut.done():
            if error is None:
                fut.set_result(None)
            else:
                fut.set_exception(RuntimeError(f"state not saved: {error}"))
