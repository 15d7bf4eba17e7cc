"""The PostgreSQL store: claims and outbox shared by receivers on many hosts
(``ironpush[postgres]``: psycopg 3).

::

    from ironpush.receiver.stores import PostgresStore

    router = PushRouter(secret_keys=keys, store=PostgresStore("postgresql://app@db/app"))
    # or: PushRouter(store="postgresql://app@db/app"), or IRONPUSH_STORE=postgresql://...

Every call is one SQL statement in autocommit mode (see :mod:`._postgres_sql`), so it is
atomic and costs one round trip; statements are prepared on each connection's first use,
and the store keeps its own connections, each with one cursor (:mod:`._pg_connections`:
cheaper per call than a psycopg_pool checkout). The quick path's calls (``claim``,
``complete``, ``complete_once``) that a process makes at the same time go out together, one
statement and one transaction per batch (:mod:`._batch`, group commit), so that under load
PostgreSQL's cost per statement is shared by many pushes.
Round trips per push (at most; fewer when calls share a batch):

- quick path: ``claim`` + ``complete`` = **2**;
- deferred path (``Defer(job)``): ``claim`` + ``complete`` + outbox ``add`` = 3, plus the
  sender's ``take`` (``FOR UPDATE SKIP LOCKED``) and ``finish``, each one round trip for a
  whole batch of acks (so ~3 per push under load, 5 when acks go out one by one); a hand-off
  to an external worker (``Defer()``) adds ``hold`` (its long lease);
- a redelivery of a handled message: 1; of a message whose owner died on this host: 2.

The tables live in their own schema (``schema="ironpush"`` by default), created on first use
with a ``schema_version`` table and migrations applied under an advisory lock. Handled
messages expire at an indexed ``expires_at`` and are deleted by a purge that runs in the
background every ``purge_every`` seconds (a bounded ``DELETE``). A server that is down or slow
raises :class:`~ironpush._errors.StoreUnavailable` within ``timeout`` seconds; a connection
that failed is closed (after a connection failure the idle ones too) and new ones are opened
on demand, behind a short doubling fail-fast delay.

**Opening.** The first call opens the store: a connection (libpq's ``connect_timeout``) and
the schema check, with its migrations on a first start (:mod:`._pg_schema`). That is budgeted
per round trip, not by the first call's ``timeout``: each of its statements has ``timeout``
seconds, so a database far away opens (a first start is 7 round trips, 2 of them to connect
without TLS; a later start 3), and a server that is down or hung still fails it within one
``timeout``. The calls that arrive meanwhile wait for that one open (their own ``timeout``
starts after it); one that gives up (the health probe's deadline) does not cancel it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Collection, Coroutine, Sequence
from typing import Any

from ... import _json
from ..._errors import StoreUnavailable
from ..._protocol import Delivery
from ..._redact import redact_url
from ._base import ActiveState, Claim, Key, OutboxItem, Outcome, StoreProblem
from ._batch import Batcher
from ._common import (
    Breaker,
    ClaimTokens,
    decode_delivery,
    describe,
    encode_delivery,
    item_payload,
    newest_or,
    takeable_owner,
)
from ._common import item_from_payload as _item
from ._postgres_sql import BATCHED, SQL

try:
    import psycopg

    from ._pg_connections import Connections, Lease
    from ._pg_schema import migrate
except ImportError as exc:  # pragma: no cover - exercised by the import-hint test
    raise ImportError("PostgresStore needs psycopg 3: pip install 'ironpush[postgres]'") from exc

_MAX_TAKEOVERS = 3
_PURGE_LIMIT = 10_000
_MAX_BATCH = 256  # calls per statement
_BATCHES_IN_FLIGHT = 1  # per statement: the next batch fills while this one runs

Row = tuple[Any, ...]


class PostgresStore:
    """Claims, newest deliveries and the outbox in PostgreSQL; see the module docs.

    ``timeout`` bounds every call (waiting for a free connection, connecting, and the
    statement itself), and each round trip of opening the store (the schema check and its
    migrations, once: see the module docs); at most ``max_connections`` connections are open::

        store = PostgresStore("postgresql://app@db/app", schema="orders_push", timeout=2.0)
    """

    kind = "postgres"
    shared = True
    dedupes = True

    def __init__(
        self,
        dsn: str = "postgresql://postgres@127.0.0.1:5432/postgres",
        *,
        schema: str = "ironpush",
        timeout: float = 2.0,
        max_connections: int = 16,
        purge_every: float = 60.0,
    ) -> None:
        self.dsn = dsn
        self.schema = schema
        self.timeout = timeout
        self.purge_every = purge_every
        self._max_connections = max_connections
        self._connections = self._new_connections()
        self._sql = {name: text.replace("{s}", _quote(schema)) for name, text in SQL.items()}
        self._migrated = False
        self._opening: asyncio.Task[None] | None = None
        self._last_purge = time.monotonic()
        self._background: set[asyncio.Task[None]] = set()
        self.breaker = Breaker("postgres", secrets=_password(dsn))
        self._tokens = ClaimTokens()
        self._batchers: dict[str, Batcher[Row, Row]] = {
            name: Batcher(
                self._batch_runner(name),
                max_batch=_MAX_BATCH,
                max_in_flight=_BATCHES_IN_FLIGHT,
                isolate=_isolate,
            )
            for name in BATCHED
        }

    def __repr__(self) -> str:
        return f"PostgresStore({redact_url(self.dsn)!r}, schema={self.schema!r})"

    # --- plumbing ----------------------------------------------------------------------------

    @property
    def _connect_timeout(self) -> int:
        return max(2, int(self.timeout + 0.999))  # libpq takes whole seconds

    def _new_connections(self) -> Connections:
        return Connections(
            self.dsn, size=self._max_connections, connect_timeout=self._connect_timeout
        )

    async def _open(self) -> None:
        """Check (and migrate) the schema once, before the first statement: one open shared
        by the calls that arrive meanwhile, not cancelled when they give up (module docs)."""
        task = self._opening
        if task is None or task.done() or task.get_loop() is not asyncio.get_running_loop():
            task = self._opening = self._spawn(self._open_now())
            task.add_done_callback(_retrieve)  # failed while nobody waited: the next call retries
        await asyncio.shield(task)

    async def _open_now(self) -> None:
        async with asyncio.timeout(self._connect_timeout):  # libpq's bound, as a deadline too
            lease = await self._connections.get()
        try:
            await migrate(lease.conn, self.schema, step=self.timeout)
        except BaseException:
            lease.broken = True  # maybe inside the migration's transaction: close it
            raise
        finally:
            self._connections.put(lease)
        self._migrated = True

    async def _run(self, name: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        self.breaker.guard()
        try:
            if not self._migrated:
                await self._open()
            async with asyncio.timeout(self.timeout):  # cheaper than wait_for: no extra task
                rows = await self._execute(name, params)
        except (psycopg.Error, TimeoutError, OSError) as exc:
            raise self._fault(exc) from exc
        self.breaker.reset()
        self._maybe_purge()
        return rows

    async def _batched(self, name: str, key: Key, args: Row) -> Row | None:
        """One call of the batch statement ``name``: its answer row (None: no row), within
        ``timeout`` (kept by the batch: no timer per call). Every push makes two of these, so
        what can be done once per batch is (the breaker's reset, the purge's clock)."""
        self.breaker.guard()
        try:
            if not self._migrated:
                await self._open()
            deadline = time.monotonic() + self.timeout  # the event loop's clock
            if self._connections.tracing():
                with self._connections.traced(name):
                    return await self._batchers[name].submit(key, args, deadline=deadline)
            return await self._batchers[name].submit(key, args, deadline=deadline)
        except (psycopg.Error, TimeoutError, OSError) as exc:
            raise self._fault(exc) from exc

    def _batch_runner(
        self, name: str
    ) -> Callable[[Sequence[Row], float], Awaitable[list[Row | None]]]:
        async def run(calls: Sequence[Row], deadline: float) -> list[Row | None]:
            # orjson when installed: a batch of 32 claims in a sixth of json.dumps' time.
            params = {"calls": _json.dumps(calls).decode()}
            # The earliest of its calls' deadlines (time.monotonic(), which the loop may not use)
            async with asyncio.timeout(deadline - time.monotonic()):
                rows = await self._execute(name, params)
            self.breaker.reset()
            self._maybe_purge()
            answers: list[Row | None] = [None] * len(calls)
            for row in rows:
                answers[row[0] - 1] = row[1:]
            return answers

        return run

    def _fault(self, exc: BaseException) -> StoreUnavailable:
        if isinstance(exc, psycopg.DataError):
            # The call's own data, refused by the driver or the server: the engine is well, so
            # the breaker stays closed and the other calls go on.
            reason = describe(exc, self.breaker.secrets)
            return StoreUnavailable(f"postgres store refused the call: {reason}", store="postgres")
        # After a server restart every idle connection is dead: drop them all now rather than
        # fail one push per connection.
        if isinstance(exc, psycopg.OperationalError | TimeoutError | OSError):
            self._connections.drop_idle()
        return self.breaker.trip(exc)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def _execute(self, name: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        lease = await self._connections.get()
        try:
            cursor = lease.cursor
            await self._connections.execute(lease, name, self._sql[name], params)  # traced
            return await cursor.fetchall() if cursor.description else []
        except BaseException:
            # Failed, timed out or cancelled mid-statement: its state is unknown, never reuse.
            lease.broken = True
            raise
        finally:
            self._connections.put(lease)

    def _maybe_purge(self) -> None:
        now = time.monotonic()
        if now - self._last_purge < self.purge_every:
            return
        self._last_purge = now
        self._spawn(self.purge())

    async def purge(self) -> None:
        """Delete expired handled/idle claims (up to 10,000 per run; runs by itself)."""
        with contextlib.suppress(StoreUnavailable):  # the next run will try again
            await self._run("purge", {"limit": _PURGE_LIMIT})

    # --- claims ------------------------------------------------------------------------------

    async def claim(self, key: Key, delivery: Delivery, *, lease: float, ttl: float) -> Claim:
        cid, owner = self._tokens.next()
        encoded = encode_delivery(delivery)
        for attempt in range(_MAX_TAKEOVERS):
            if attempt:
                cid = self._tokens.next()[0]
            args = (key[0], key[1], cid, encoded, owner, float(lease), float(ttl))
            row = await self._batched("claim", key, args)
            if row is None:  # the row vanished between the two parts (a purge): claim again
                continue
            status, attempts, outcome, state, holder, held_by = row
            if status == "new":
                return Claim("new", claim_id=cid, attempt=int(attempts))
            if status == "done":
                return Claim("done", outcome=outcome)
            if not takeable_owner(state, holder):
                return Claim("busy", state=state)
            params = {"m": key[0], "sub": key[1], "d": encoded, "owner": owner, "cid": cid,
                      "lease": lease, "ttl": ttl, "old": held_by}  # fmt: skip
            taken = await self._run("takeover", params)
            if taken:
                return Claim("new", claim_id=cid, attempt=int(taken[0][0]))
        return Claim("busy", state="running")

    async def hold(self, key: Key, claim_id: str, *, state: ActiveState, lease: float) -> bool:
        params = {"m": key[0], "sub": key[1], "cid": claim_id, "state": state, "lease": lease}
        return bool(await self._run("hold", params))

    async def renew(self, claim_ids: Collection[str], *, lease: float) -> None:
        if claim_ids:
            await self._run("renew", {"ids": list(claim_ids), "lease": lease})

    async def complete(
        self, key: Key, *, outcome: Outcome, ttl: float, delivery: Delivery
    ) -> Delivery:
        row = await self._batched("complete", key, (key[0], key[1], outcome, float(ttl)))
        return newest_or(row[0] if row else None, delivery)

    async def complete_once(
        self, key: Key, *, outcome: Outcome, ttl: float, delivery: Delivery
    ) -> Delivery | None:
        row = await self._batched("complete_once", key, (key[0], key[1], outcome, float(ttl)))
        return None if row is None else newest_or(row[0], delivery)

    async def release(self, key: Key, claim_id: str | None) -> bool:
        return bool(await self._run("release", {"m": key[0], "sub": key[1], "cid": claim_id}))

    async def newest(self, key: Key) -> Delivery | None:
        rows = await self._run("newest", {"m": key[0], "sub": key[1]})
        return decode_delivery(rows[0][0]) if rows else None

    # --- the outbox --------------------------------------------------------------------------

    async def add(self, item: OutboxItem) -> None:
        params = {
            "id": item.id,
            "kind": item.kind,
            "queue": item.queue,
            "payload": item_payload(item),
            "attempts": item.attempts,
            "created": item.created_at,
            "next": item.next_at,
        }
        await self._run("add", params)

    async def take(self, *, limit: int, lease: float) -> list[OutboxItem]:
        rows = await self._run("take", {"limit": limit, "lease": lease})
        rows.sort(key=lambda r: (r[6], r[5]))  # RETURNING keeps no order: due first, FIFO
        return [
            _item(id=i, kind=k, queue=q, payload=p, attempts=a, created_at=c, next_at=n)
            for i, k, q, p, a, c, n in rows
        ]

    async def finish(self, item_ids: Collection[str]) -> None:
        if item_ids:
            await self._run("finish", {"ids": list(item_ids)})

    async def retry(self, item_id: str, *, attempts: int, next_at: float) -> None:
        await self._run("retry", {"id": item_id, "attempts": attempts, "next": next_at})

    async def depth(self) -> int:
        rows = await self._run("stats", {})
        return int(rows[0][0])

    async def next_due(self) -> float | None:
        rows = await self._run("stats", {})
        return None if rows[0][1] is None else float(rows[0][1])

    # --- life --------------------------------------------------------------------------------

    async def check(self) -> None:
        """``SELECT 1`` on a pooled connection within ``timeout``, after opening the store
        (connect and schema check, budgeted per round trip) if it is not open yet."""
        self.breaker.guard()
        try:
            if not self._migrated:
                await self._open()
            async with asyncio.timeout(self.timeout):
                await self._execute_probe()
        except (psycopg.Error, TimeoutError, OSError) as exc:
            raise self._fault(exc) from exc
        self.breaker.reset()

    async def _execute_probe(self) -> None:
        lease: Lease = await self._connections.get()
        try:
            await lease.cursor.execute("SELECT 1")
        except BaseException:
            lease.broken = True
            raise
        finally:
            self._connections.put(lease)

    def problems(self) -> list[StoreProblem]:
        """None beyond what :meth:`check` finds: PostgreSQL never drops rows by itself."""
        return []

    async def close(self) -> None:
        """Stop the background purge, let the batches running end, close the connections."""
        for task in list(self._background):
            task.cancel()
        for batcher in self._batchers.values():
            await batcher.wait_idle()
        # A later call opens new connections (the store closes with the router's lifespan).
        old, self._connections = self._connections, self._new_connections()
        await old.close()


def _isolate(exc: BaseException) -> bool:
    """Whether a failed batch is retried call by call: the fault may be one call's (data the
    server or the driver refuses; a deadlock with another writer, which aborted the statement
    as a whole), not the server's."""
    return isinstance(exc, psycopg.DataError | psycopg.errors.TransactionRollback)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _retrieve(task: asyncio.Task[None]) -> None:
    if not task.cancelled():
        task.exception()


def _password(dsn: str) -> tuple[str | None, ...]:
    try:
        password = psycopg.conninfo.conninfo_to_dict(dsn).get("password")
    except psycopg.Error:
        return ()
    return (None if password is None else str(password),)
