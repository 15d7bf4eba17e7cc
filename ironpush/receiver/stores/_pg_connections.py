"""The connections of :class:`~ironpush.receiver.stores._postgres.PostgresStore`.

Why not psycopg_pool: its checkout (locks, a ``wait_for`` per waiting call) cost a large
share of a statement's CPU here (``benchmarks/bench_store_clients.py``). The store needs far
less: up to ``size`` autocommit connections, each with one reusable cursor, handed out
last-in first-out (the warm one) and given back at once; a connection that failed is closed,
never reused. Waiting for a connection is bounded by the
caller's timeout (the store wraps every call in ``asyncio.timeout``). Inside an ironpush span
(a traced push, job or ack: :mod:`ironpush._tracing`), :meth:`Connections.execute` makes each
statement an OpenTelemetry CLIENT span named after the store's statement (``claim``), with
``db.system.name=postgresql``, ``db.namespace`` (the database) and ``server.address``/
``server.port``: never the DSN (its password), the SQL's parameters or the rows::

    connections = Connections(dsn, size=16, connect_timeout=2)
    lease = await connections.get()
    try:
        await lease.cursor.execute("SELECT 1")
    finally:
        connections.put(lease)
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from dataclasses import dataclass
from typing import Any

import psycopg

from ... import _tracing


@dataclass(slots=True)
class Lease:
    """One connection and its cursor; ``broken`` set by the caller after a failure."""

    conn: psycopg.AsyncConnection[Any]
    cursor: psycopg.AsyncCursor[Any]
    broken: bool = False


class Connections:
    """Up to ``size`` connections to ``dsn``, opened on demand; see the module docs."""

    def __init__(self, dsn: str, *, size: int, connect_timeout: int) -> None:
        self._dsn = dsn
        self._size = max(1, size)
        self._connect_timeout = connect_timeout
        self._idle: collections.deque[Lease] = collections.deque()
        self._waiters: collections.deque[asyncio.Future[Lease | None]] = collections.deque()
        self._open = 0  # connections open or being opened
        self._closed = False
        self._span_attributes: dict[str, Any] | None = None  # made on the first traced call

    async def get(self) -> Lease:
        """A free connection: an idle one, a new one below ``size``, or the next one given
        back (wait bounded by the caller's timeout)."""
        while True:
            if self._closed:
                raise psycopg.OperationalError("the store is closed")
            if self._idle:
                return self._idle.pop()
            if self._open < self._size:
                return await self._connect()
            waiter: asyncio.Future[Lease | None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                lease = await waiter
            except asyncio.CancelledError:
                handed = waiter.result() if waiter.done() and not waiter.cancelled() else None
                if handed is not None:
                    self.put(handed)  # handed to us as we were cancelled: pass it on
                raise
            if lease is not None:
                return lease
            # None: a connection was closed, so there is room to open one: try again.

    async def _connect(self) -> Lease:
        self._open += 1
        try:
            conn = await psycopg.AsyncConnection.connect(
                self._dsn,
                autocommit=True,
                connect_timeout=self._connect_timeout,
                prepare_threshold=0,  # every statement prepared on its first use
            )
        except BaseException:
            self._open -= 1
            self._wake(None)
            raise
        return Lease(conn, conn.cursor())

    async def execute(
        self, lease: Lease, name: str, sql: str, params: dict[str, Any] | None = None
    ) -> None:
        """``lease.cursor.execute(sql, params)``: the store's statement ``name``, traced inside
        an ironpush span."""
        if _tracing.current() is None:
            await lease.cursor.execute(sql, params)
            return
        with _tracing.client_span(name, {**self._attributes(), "db.operation.name": name}):
            await lease.cursor.execute(sql, params)

    @staticmethod
    def tracing() -> bool:
        """Whether the caller is inside an ironpush span (its store calls are spans then)."""
        return _tracing.current() is not None

    def traced(self, name: str) -> contextlib.AbstractContextManager[object]:
        """A CLIENT span named ``name`` (with the same attributes as :meth:`execute`'s) around
        a call whose statement runs elsewhere, in a batch: the caller's wait for its answer.
        Enter it only when :meth:`tracing`."""
        return _tracing.client_span(name, {**self._attributes(), "db.operation.name": name})

    def _attributes(self) -> dict[str, Any]:
        if self._span_attributes is None:
            try:  # the parsed DSN: never its password
                info = psycopg.conninfo.conninfo_to_dict(self._dsn)
            except psycopg.Error:
                info = {}
            attributes: dict[str, Any] = {"db.system.name": "postgresql", "db.system": "postgresql"}
            if info.get("dbname"):
                attributes["db.namespace"] = str(info["dbname"])
            host = str(info.get("host") or "localhost").split(",")[0]
            attributes["server.address"] = host
            port = str(info.get("port") or "5432").split(",")[0]
            if port.isdigit():
                attributes["server.port"] = int(port)
            self._span_attributes = attributes
        return self._span_attributes

    def put(self, lease: Lease) -> None:
        """Give a connection back (closed instead when it failed or is not idle)."""
        idle = psycopg.pq.TransactionStatus.IDLE
        if lease.broken or self._closed or lease.conn.info.transaction_status != idle:
            self._discard(lease)
            self._wake(None)
            return
        if not self._wake(lease):
            self._idle.append(lease)

    def _wake(self, lease: Lease | None) -> bool:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(lease)
                return True
        return False

    def _discard(self, lease: Lease) -> None:
        self._open -= 1
        with contextlib.suppress(Exception):
            lease.conn.pgconn.finish()  # no goodbye round trip to a server that may be gone

    def drop_idle(self) -> None:
        """Close the idle connections (after a server restart they are all dead)."""
        while self._idle:
            self._discard(self._idle.pop())
        for _ in range(len(self._waiters)):
            self._wake(None)

    async def close(self) -> None:
        """Close every idle connection; those in use are closed when given back."""
        self._closed = True
        self.drop_idle()
