"""Opening a :class:`~ironpush.receiver.stores._postgres.PostgresStore`: the schema check and
its migrations, each round trip with its own deadline.

Before its first statement a store connects (TCP, TLS, authentication: libpq's
``connect_timeout``) and checks its schema. Against a database in another zone (+100 ms each
way, common for a managed one) those round trips took longer than one call's ``timeout`` (2 s):
bounded by the first call's deadline, the check was cancelled every time and the store never
opened. So opening is budgeted per round trip instead (and takes few): every statement
here has ``step`` seconds (the store's ``timeout``), however many the schema needs; a server
that is down or hung still fails the open within one ``step`` (or the connect timeout). Round
trips (none is prepared: each runs once per store):

- a schema already at this version (every start but the first): **1**, the version read;
- otherwise, in one transaction under an advisory lock (one migrator at a time across processes
  and hosts; the others then find the schema up to date): 1 for ``BEGIN`` + the lock + ``CREATE
  SCHEMA``/``TABLE IF NOT EXISTS``, 1 for the version, 1 per migration (with its version row)
  and 1 for ``COMMIT``::

    await migrate(conn, "ironpush", step=2.0)   # conn in autocommit mode

A statement that fails or runs out of time leaves the connection in a transaction: the caller
closes it (the server rolls back), as the store does with every failed connection.
"""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg
from psycopg import sql as pgsql

from ..._errors import StoreUnavailable
from ._postgres_sql import MIGRATIONS

SCHEMA_VERSION = len(MIGRATIONS)

_Query = str | pgsql.SQL | pgsql.Composed


async def migrate(conn: psycopg.AsyncConnection[Any], schema: str, *, step: float) -> None:
    """Bring ``schema`` to :data:`SCHEMA_VERSION` on ``conn`` (autocommit), every round trip
    within ``step`` seconds (:class:`TimeoutError` otherwise); :class:`StoreUnavailable` for a
    schema newer than this ironpush."""

    async def run(query: _Query) -> psycopg.AsyncCursor[Any]:
        async with asyncio.timeout(step):
            return await conn.execute(query, prepare=False)

    name = pgsql.Identifier(schema)
    read_version = pgsql.SQL("SELECT max(version) FROM {}.schema_version").format(name)
    try:
        current = await _version(await run(read_version))
    except psycopg.errors.UndefinedTable:  # no schema or table yet (autocommit: nothing to undo)
        current = 0
    if _checked(current, schema):
        return
    await run(
        pgsql.SQL(
            "BEGIN; SELECT pg_advisory_xact_lock(hashtext({lock}));"
            " CREATE SCHEMA IF NOT EXISTS {s};"
            " CREATE TABLE IF NOT EXISTS {s}.schema_version (version integer NOT NULL)"
        ).format(lock=pgsql.Literal(schema), s=name)
    )
    current = await _version(await run(read_version))  # under the lock: another may have won
    if not _checked(current, schema):
        for version in range(current + 1, SCHEMA_VERSION + 1):
            await run(
                pgsql.SQL("{migration}; INSERT INTO {s}.schema_version VALUES ({version})").format(
                    migration=pgsql.SQL(MIGRATIONS[version - 1].strip().rstrip(";")).format(s=name),
                    s=name,
                    version=pgsql.Literal(version),
                )
            )
    await run("COMMIT")


async def _version(cursor: psycopg.AsyncCursor[Any]) -> int:
    row = await cursor.fetchone()
    return int(row[0]) if row and row[0] is not None else 0


def _checked(current: int, schema: str) -> bool:
    """Whether the schema is at this version (a newer one is refused: its rows may mean what
    this ironpush does not know)."""
    if current > SCHEMA_VERSION:
        raise StoreUnavailable(
            f"postgres store schema {schema!r} is at version {current}, newer than this "
            f"ironpush ({SCHEMA_VERSION})",
            store="postgres",
        )
    return current == SCHEMA_VERSION
