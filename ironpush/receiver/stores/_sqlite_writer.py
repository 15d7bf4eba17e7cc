"""The SQLite store's engine room: one writer thread, group commit, and self-healing.

Every store call becomes an operation ``fn(conn, now, *args)`` queued to one thread per
process. The thread takes everything queued (up to ``max_batch``), runs it in one
``BEGIN IMMEDIATE`` … ``COMMIT`` and then wakes the callers: under load, many claims and
completions share one transaction, one lock acquisition and one WAL append. A caller's future
is settled only after its transaction committed, so nothing is reported done that was not
recorded. Processes sharing the file queue for the write lock on a side file
(``<path>.lock``, polled every 0.5 ms at most) rather than in SQLite's busy handler, whose
1, 2, 5, 10 … ms sleeps made two processes slower than one.

Healing (why a fault ends when its cause does):

- any engine error (locked, read-only, disk full, I/O) rolls the batch back, fails its callers
  with :class:`~ironpush._errors.StoreUnavailable`, closes the connection and opens the breaker
  (a short, doubling fail-fast delay); the next batch after it reopens the file, so a cached
  read-only or broken connection never outlives its cause, and a full WAL is checkpointed and
  truncated on reopen (and the WAL is kept small on a small volume, see ``sqlite._size_wal``);
- before each batch the file at ``path`` is compared with the one open (device and inode): a
  file replaced by another is reopened; a deleted file is restored at its path from the still
  open handle (SQLite's backup API), so dedupe memory and pending acks survive the deletion.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import queue
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ... import _tracing
from ..._errors import StoreUnavailable
from ._common import Breaker

log = logging.getLogger("ironpush.store")

Op = Callable[..., Any]  # fn(conn, now, *args) -> result

# Errors that say "the engine is unwell" (retry later), as opposed to a caller's mistake.
_CALLER_ERRORS = (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError)


class _Call:
    __slots__ = ("args", "fn", "future", "loop")

    def __init__(
        self, fn: Op, args: tuple[Any, ...], future: asyncio.Future[Any], loop: Any
    ) -> None:
        self.fn = fn
        self.args = args
        self.future = future
        self.loop = loop


class _Stop:
    pass


_STOP = _Stop()


def _settle(results: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for future, value, error in results:
        if future.done():
            continue  # the caller gave up (cancelled) meanwhile
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)


class Writer:
    """One connection and one thread per process, with group commit; see the module docs."""

    def __init__(
        self,
        path: Path,
        *,
        setup: Callable[[sqlite3.Connection], None],
        busy_timeout: float,
        clock: Callable[[], float],
        max_batch: int = 256,
        max_pending: int = 10_000,
    ) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self.max_batch = max_batch
        self.max_pending = max_pending
        self.breaker = Breaker("sqlite")
        self._setup = setup
        self._clock = clock
        self._conn: sqlite3.Connection | None = None
        self._ident: tuple[int, int] | None = None
        self._lock_fd: int | None = None
        self._queue: queue.SimpleQueue[_Call | _Stop] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._start_lock = threading.Lock()
        self.batches = 0  # transactions committed (group commit makes it < operations)

    # --- the caller's side -------------------------------------------------------------------

    async def call(self, fn: Op, *args: Any) -> Any:
        """Run ``fn(conn, now, *args)`` in the next transaction; its result once committed."""
        self.breaker.guard()
        self._start()
        if self._queue.qsize() >= self.max_pending:
            raise StoreUnavailable(
                f"sqlite store overloaded: {self.max_pending} operations waiting", store="sqlite"
            )
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.put(_Call(fn, args, future, loop))
        if _tracing.current() is None:
            return await future
        # Traced (inside an ironpush span): one CLIENT span per operation, queue wait and
        # group commit included; the path, never the arguments.
        name = fn.__name__.lstrip("_")
        attributes = {
            "db.system.name": "sqlite",
            "db.system": "sqlite",
            "db.operation.name": name,
            "db.namespace": str(self.path),
        }
        with _tracing.client_span(name, attributes):
            return await future

    def _start(self) -> None:
        if self._thread is not None and self._pid == os.getpid():
            return
        with self._start_lock:
            if self._thread is not None and self._pid == os.getpid():
                return
            # After a fork the parent's thread and connection do not exist here: start afresh
            # (the inherited connection is abandoned, never used or closed by the child).
            self._queue = queue.SimpleQueue()
            self._conn, self._ident = None, None
            if self._lock_fd is not None:  # shared with the parent: its lock would be ours
                os.close(self._lock_fd)
                self._lock_fd = None
            self._pid = os.getpid()
            self._thread = threading.Thread(target=self._run, name="ironpush-sqlite", daemon=True)
            self._thread.start()

    def close(self) -> None:
        """Stop the thread after the queued operations and close the connection (a later call
        starts them again)."""
        thread = self._thread
        if thread is not None and self._pid == os.getpid() and thread.is_alive():
            self._queue.put(_STOP)
            thread.join(timeout=self.busy_timeout + 5)
        self._thread = None

    # --- the thread's side -------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if isinstance(first, _Stop):
                break
            batch, stop = [first], False
            while len(batch) < self.max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if isinstance(item, _Stop):
                    stop = True
                    break
                batch.append(item)
            self._execute(batch)
            if stop:
                break
        self._drain()
        self._disconnect()

    def _drain(self) -> None:
        left: list[_Call] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, _Call):
                left.append(item)
        error = StoreUnavailable("sqlite store is closed", store="sqlite")
        self._reply([(c, None, error) for c in left])

    def _execute(self, batch: list[_Call]) -> None:
        calls = [c for c in batch if not c.future.cancelled()]
        if not calls:
            return
        try:
            self.breaker.guard()
            conn = self._connection()
            results = self._transaction(conn, calls)
        except _CallerError:
            # One operation failed on its own (a caller's mistake): the batch was rolled back,
            # so run each operation alone to give every caller its own answer.
            for call in calls:
                self._execute_alone(call)
            return
        except StoreUnavailable as exc:
            self._reply([(c, None, exc) for c in calls])
            return
        except (sqlite3.Error, OSError) as exc:
            error = self._fault(exc)
            self._reply([(c, None, error) for c in calls])
            return
        self.breaker.reset()
        self._reply(results)

    def _execute_alone(self, call: _Call) -> None:
        try:
            conn = self._connection()
            self._reply(self._transaction(conn, [call], isolate=True))
        except (sqlite3.Error, OSError) as exc:
            self._reply([(call, None, self._fault(exc))])

    def _transaction(
        self, conn: sqlite3.Connection, calls: list[_Call], *, isolate: bool = False
    ) -> list[tuple[_Call, Any, BaseException | None]]:
        now = self._clock()
        results: list[tuple[_Call, Any, BaseException | None]] = []
        self._lock()
        try:
            return self._locked_transaction(conn, calls, now, results, isolate=isolate)
        finally:
            self._unlock()

    def _locked_transaction(
        self,
        conn: sqlite3.Connection,
        calls: list[_Call],
        now: float,
        results: list[tuple[_Call, Any, BaseException | None]],
        *,
        isolate: bool,
    ) -> list[tuple[_Call, Any, BaseException | None]]:
        conn.execute("BEGIN IMMEDIATE")
        try:
            for call in calls:
                try:
                    results.append((call, call.fn(conn, now, *call.args), None))
                except (sqlite3.OperationalError, OSError):
                    raise
                except (*_CALLER_ERRORS, ValueError, TypeError, KeyError) as exc:
                    if not isolate:
                        raise _CallerError from exc
                    _rollback(conn)  # alone in its transaction: undo its own half-done writes
                    return [(call, None, exc)]
            conn.execute("COMMIT")
        except BaseException:
            _rollback(conn)
            raise
        self.batches += 1
        return results

    def _lock(self) -> None:
        """Queue behind the other ironpush processes writing this file.

        SQLite's own busy handler sleeps 1, 2, 5, 10 ... ms between attempts, so two processes
        contending for the write lock spend most of their time asleep (two workers were slower
        than one). A side lock file polled finely hands the lock over within a fraction of a
        millisecond; SQLite's locking still guards correctness (and other programs).
        """
        fd = self._lock_fd
        if fd is None:
            return
        delay, deadline = 0.00005, 0.0
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                now = time.monotonic()
                deadline = deadline or now + self.busy_timeout
                if now > deadline:
                    raise sqlite3.OperationalError(
                        "database is locked (by another ironpush process)"
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.0005)

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _reply(self, results: list[tuple[_Call, Any, BaseException | None]]) -> None:
        by_loop: dict[int, tuple[Any, list[tuple[asyncio.Future[Any], Any, Any]]]] = {}
        for call, value, error in results:
            entry = by_loop.setdefault(id(call.loop), (call.loop, []))
            entry[1].append((call.future, value, error))
        for loop, settled in by_loop.values():
            # RuntimeError: that event loop is closed, nobody is waiting any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, settled)

    def _fault(self, exc: BaseException) -> StoreUnavailable:
        self._disconnect()
        error = self.breaker.trip(exc)
        log.warning("sqlite store %s: %s (reopening)", self.path, self.breaker.reason)
        return error

    # --- the connection ----------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        conn = self._conn
        if conn is not None:
            ident = _identity(self.path)
            if ident == self._ident:
                return conn
            if ident is None:
                self._restore(conn)
            else:
                log.warning("sqlite store %s was replaced by another file: reopening", self.path)
                self._disconnect()
        return self._open()

    def _open(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            self.path,
            timeout=self.busy_timeout,
            isolation_level=None,
            check_same_thread=False,
            cached_statements=64,
        )
        try:
            self._setup(conn)
            # A WAL left large by a full disk is folded back and truncated, freeing the space.
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            ident = _identity(self.path)
        except BaseException:
            conn.close()
            raise
        self._conn, self._ident = conn, ident
        self._lock_fd = _open_lock_file(Path(f"{self.path}.lock"))
        return conn

    def _disconnect(self) -> None:
        conn, self._conn, self._ident = self._conn, None, None
        lock_fd, self._lock_fd = self._lock_fd, None
        if lock_fd is not None:
            os.close(lock_fd)
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):
                conn.close()

    def _restore(self, conn: sqlite3.Connection) -> None:
        """The file was deleted under us: put its content back at ``path`` from ``conn``."""
        log.warning("sqlite store %s was deleted: restoring it from the open file", self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f"{self.path.name}.restore-{os.getpid()}-{uuid.uuid4().hex[:6]}")
        try:
            with contextlib.suppress(sqlite3.Error):  # the backup reads through the WAL anyway
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            target = sqlite3.connect(tmp)
            try:
                conn.backup(target)
            finally:
                target.close()
            self._disconnect()
            self._install(tmp)
        finally:
            tmp.unlink(missing_ok=True)

    def _install(self, tmp: Path) -> None:
        # Several processes may restore at once: a lock file lets the first one install its
        # copy; the others find the path taken and simply reopen it.
        lock_path = self.path.with_name(self.path.name + ".restore-lock")
        with open(lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                if _identity(self.path) is not None:
                    return
                for suffix in ("-wal", "-shm"):  # the deleted database's, not ours
                    Path(str(self.path) + suffix).unlink(missing_ok=True)
                os.link(tmp, self.path)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


class _CallerError(Exception):
    """Raised inside a batch when one operation failed by itself (not the engine)."""


def _open_lock_file(path: Path) -> int | None:
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError:
        return None  # a read-only directory: SQLite's own locking alone


def _rollback(conn: sqlite3.Connection) -> None:
    try:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
    except sqlite3.Error:
        pass  # the connection is dropped by the caller's fault handling anyway


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_dev, st.st_ino)
