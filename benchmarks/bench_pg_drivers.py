"""Benchmark: the PostgreSQL store's final statements through psycopg 3 and through asyncpg.

Issue 23 asked for the store's driver to be chosen by measurement on the statements it ends
up with. This runs exactly ``PostgresStore``'s batch statements (``claim`` then ``complete``
for ``--batch`` new messages, the SQL of ``ironpush/receiver/stores/_postgres_sql.py``) on
one connection per driver, prepared, in alternating rounds, and reports per push:

- the CPU µs of this process (the driver: encoding the arrays, the protocol, decoding rows),
- the CPU µs of the connection's PostgreSQL backend (``/proc/<pid>/stat``),
- wall µs.

psycopg runs the statements as the store does (an ``AsyncConnection`` in autocommit mode,
``prepare_threshold=0``, the batch's calls as one JSON parameter); asyncpg on a plain
connection (``asyncpg.connect``, a prepared statement, ``$1``). asyncpg is not a dependency:
``pip install asyncpg`` to run this. Run from the repository root::

    python -m benchmarks.bench_pg_drivers [--rounds 9] [--batch 16] [-n 4000]

Not part of CI.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg

from benchmarks.bench_stores import bench_dsn
from benchmarks.harness import cpu_seconds, machine, rotated
from ironpush._protocol import Delivery, delivery_to_json
from ironpush.receiver.stores import PostgresStore

Batch = Callable[[str, list[str]], Awaitable[None]]


def batch_args(name: str, ids: list[str]) -> dict[str, str]:
    """The parameter of one batch of ``name`` for messages ``ids``, as the store builds it:
    the calls as one JSON array (``calls``)."""
    if name == "claim":
        calls: list[tuple[Any, ...]] = [
            (i, "billing", f"c-{i}", delivery_to_json(Delivery(i, "r1", "billing")),
             "host:1:abc", 30.0, 600.0)
            for i in ids
        ]  # fmt: skip
    else:
        calls = [(i, "billing", "acked", 600.0) for i in ids]
    return {"calls": json.dumps(calls)}


def numbered(sql: str) -> str:
    """psycopg's ``%(calls)s`` placeholder as asyncpg's ``$1``."""
    return re.sub(r"%\(calls\)s", "$1", sql)


async def psycopg_driver(dsn: str, sql: dict[str, str]) -> tuple[Batch, int, Callable[[], Any]]:
    conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True, prepare_threshold=0)
    cursor = conn.cursor()

    async def batch(name: str, ids: list[str]) -> None:
        await cursor.execute(sql[name], batch_args(name, ids))
        await cursor.fetchall()

    return batch, conn.info.backend_pid, conn.close


async def asyncpg_driver(dsn: str, sql: dict[str, str]) -> tuple[Batch, int, Callable[[], Any]]:
    import asyncpg  # type: ignore[import-not-found,unused-ignore]

    conn = await asyncpg.connect(dsn)
    statements = {name: await conn.prepare(numbered(sql[name])) for name in sql}

    async def batch(name: str, ids: list[str]) -> None:
        await statements[name].fetch(batch_args(name, ids)["calls"])

    return batch, conn.get_server_pid(), conn.close


async def one_round(batch: Batch, pid: int, pushes: int, size: int) -> tuple[float, float, float]:
    tag = uuid.uuid4().hex[:8]
    server, client, wall = cpu_seconds(pid), time.process_time(), time.perf_counter()
    for start in range(0, pushes, size):
        ids = [f"{tag}-{i}" for i in range(start, start + size)]
        await batch("claim", ids)
        await batch("complete", ids)
    return (
        (time.process_time() - client) / pushes * 1e6,
        (cpu_seconds(pid) - server) / pushes * 1e6,
        (time.perf_counter() - wall) / pushes * 1e6,
    )


async def main_async(args: argparse.Namespace) -> None:
    schema = f"drv{uuid.uuid4().hex[:6]}"
    dsn = bench_dsn()
    store = PostgresStore(dsn, schema=schema)
    await store.check()  # creates the schema
    sql = {name: store._sql[name] for name in ("claim", "complete")}
    drivers = {"psycopg": await psycopg_driver(dsn, sql)}
    try:
        drivers["asyncpg"] = await asyncpg_driver(dsn, sql)
    except ImportError:
        print("asyncpg is not installed (pip install asyncpg): psycopg only")
    samples: dict[str, list[tuple[float, float, float]]] = {name: [] for name in drivers}
    try:
        for batch, pid, _ in drivers.values():
            await one_round(batch, pid, 20 * args.batch, args.batch)  # prepare, warm up
        for cycle in range(args.rounds):
            for name in rotated(list(drivers), cycle):
                batch, pid, _ = drivers[name]
                samples[name].append(await one_round(batch, pid, args.pushes, args.batch))
    finally:
        for _, _, close in drivers.values():
            await close()
        await store.close()
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    print(
        f"{machine()}, load average {os.getloadavg()[0]:.1f}; `python -m "
        f"benchmarks.bench_pg_drivers --rounds {args.rounds} --batch {args.batch} "
        f"-n {args.pushes}`: claim + complete batches of {args.batch}, medians per push\n"
    )
    print("| driver | CPU µs/push, this process | CPU µs/push, backend | wall µs/push |")
    print("| --- | --- | --- | --- |")
    for name, runs in samples.items():
        client, server, wall = (statistics.median(r[k] for r in runs) for k in range(3))
        print(f"| {name} | {client:.1f} | {server:.1f} | {wall:.1f} |")
    if len(samples) == 2:
        ratios = [a[0] / b[0] for a, b in zip(samples["psycopg"], samples["asyncpg"], strict=True)]
        print(f"\npsycopg / asyncpg client CPU, per round: median {statistics.median(ratios):.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("-n", "--pushes", type=int, default=4000)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
