"""Benchmark: what a quick-path push costs in ``PostgresStore``, client and server, per push.

Load-independent figures for deciding how the store talks to PostgreSQL (issue 23): the store
is called directly (``claim`` + ``complete``, no HTTP), ``-c`` pushes in flight, in a database
used by this run alone (``ironpush_bench``). Per push:

- **CPU µs in this process** (``time.process_time``: the store's Python and the driver);
- **CPU µs in PostgreSQL**: the store's own backends only (their pids from
  ``pg_stat_activity`` of the bench database, ``/proc/<pid>/stat`` before and after), so other
  jobs using the same cluster do not count; the WAL writer and checkpointer are left out;
- **transactions and statements per push, counted by the server**: ``xact_commit +
  xact_rollback`` of the bench database in ``pg_stat_database``, read from another database
  after the store's connections closed (a backend flushes its counters when it exits);
  every store call is one autocommit statement, so one transaction is one round trip. Counted
  at 1 in flight (nothing to batch: the contract's 2 per quick push) and at ``-c``;
- the table's **HOT updates** share (``pg_stat_user_tables``): a ``complete`` that rewrites no
  indexed column updates the row in place, with no index insertion.

The figures are medians over rounds; ``--in-flight 1 2`` compares stores allowing 1 or 2
batches of each statement at a time, in alternating rounds (order rotated). Run from the
repository root (needs the local PostgreSQL, ``IRONPUSH_TEST_POSTGRES_DSN``)::

    python -m benchmarks.bench_pg_store [--rounds 5] [-n 4000] [-c 32] [--in-flight 1 2]

Not part of CI.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from typing import Any

import psycopg

from benchmarks.bench_stores import BENCH_DB, bench_dsn, pg_settled_transactions
from benchmarks.harness import cpu_seconds, machine, rotated
from ironpush._protocol import Delivery
from ironpush.receiver.stores import PostgresStore, open_store


async def quick(store: PostgresStore, message_id: str) -> None:
    key, d = (message_id, "billing"), Delivery(message_id, "r1", "billing")
    claim = await store.claim(key, d, lease=30, ttl=600)
    assert claim.status == "new", claim
    await store.complete(key, outcome="acked", ttl=600, delivery=d)


async def run(store: PostgresStore, pushes: int, concurrency: int) -> None:
    tag = uuid.uuid4().hex[:8]
    per_worker = pushes // concurrency

    async def worker(w: int) -> None:
        for i in range(per_worker):
            await quick(store, f"{tag}-{w}-{i}")

    await asyncio.gather(*(worker(w) for w in range(concurrency)))


def backend_pids(monitor: psycopg.Connection[Any], application_name: str) -> list[int]:
    rows = monitor.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = %s AND application_name = %s",
        [BENCH_DB, application_name],
    ).fetchall()
    return [int(r[0]) for r in rows]


def table_stats(monitor: psycopg.Connection[Any], schema: str) -> tuple[int, int]:
    row = monitor.execute(
        "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables "
        "WHERE schemaname = %s AND relname = 'claims'",
        [schema],
    ).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


async def transactions_per_push(spec: str, pushes: int, concurrency: int) -> float:
    """Server-counted transactions per quick push (opening and checking the store left out)."""
    deltas = []
    for n in (0, pushes):
        store = open_store(spec)
        assert isinstance(store, PostgresStore)
        before = pg_settled_transactions()
        await store.check()
        if n:
            await run(store, n, concurrency)
        await store.close()
        deltas.append(pg_settled_transactions() - before)
    return (deltas[1] - deltas[0]) / pushes


async def cost_rounds(
    spec: str, in_flight: list[int], *, rounds: int, pushes: int, concurrency: int
) -> dict[int, dict[str, float]]:
    """Per variant (the batches each statement may have in flight; 0: the store's default),
    the medians of alternating rounds: wall, this process's and the store's backends' CPU µs
    per push. Each variant is a store of its own, its backends named by ``application_name``."""
    stores: dict[int, PostgresStore] = {}
    for n in in_flight:
        store = open_store(f"{spec}&application_name=pgcost_{n}")
        assert isinstance(store, PostgresStore)
        # (an older store, without batches, has none to set: run from an older tree)
        for batcher in getattr(store, "_batchers", {}).values():
            batcher.max_in_flight = n or batcher.max_in_flight
        stores[n] = store
    samples: dict[int, dict[str, list[float]]] = {
        n: {"wall": [], "client": [], "server": []} for n in in_flight
    }
    with psycopg.connect(bench_dsn(), autocommit=True) as monitor:
        for store in stores.values():
            await store.check()
            await run(store, 400, concurrency)  # open its connections, prepare the statements
        for cycle in range(rounds):
            for variant in rotated([str(n) for n in in_flight], cycle):
                store, mine = stores[int(variant)], samples[int(variant)]
                name = f"pgcost_{variant}"
                before = {p: cpu_seconds(p) for p in backend_pids(monitor, name)}
                client, wall = time.process_time(), time.perf_counter()
                await run(store, pushes, concurrency)
                mine["wall"].append((time.perf_counter() - wall) / pushes * 1e6)
                mine["client"].append((time.process_time() - client) / pushes * 1e6)
                # Backends opened during the round count whole.
                after = {p: cpu_seconds(p) for p in backend_pids(monitor, name)}
                used = sum(v - before.get(p, 0.0) for p, v in after.items())
                mine["server"].append(used / pushes * 1e6)
        for store in stores.values():
            await store.close()
    return {n: {k: statistics.median(v) for k, v in got.items()} for n, got in samples.items()}


async def main_async(args: argparse.Namespace) -> None:
    schema = f"pgcost{uuid.uuid4().hex[:6]}"
    spec = f"{bench_dsn()}?schema={schema}"
    try:
        costs = await cost_rounds(
            spec,
            args.in_flight,
            rounds=args.rounds,
            pushes=args.pushes,
            concurrency=args.concurrency,
        )
        with psycopg.connect(bench_dsn(), autocommit=True) as monitor:
            updates, hot = table_stats(monitor, schema)
        one = await transactions_per_push(spec, args.round_trip_pushes, 1)
        many = await transactions_per_push(spec, args.round_trip_pushes * 4, args.concurrency)
    finally:
        with psycopg.connect(bench_dsn(), autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    shown = " ".join(str(n) for n in args.in_flight)
    print(
        f"{machine()}, load average {os.getloadavg()[0]:.1f}; "
        f"`python -m benchmarks.bench_pg_store --rounds {args.rounds} -n {args.pushes} "
        f"-c {args.concurrency}" + (f" --in-flight {shown}`" if args.in_flight != [0] else "`")
    )
    for n, c in costs.items():
        print(
            f"quick path, {args.concurrency} in flight"
            + (f", {n} batch(es) of each statement at a time" if n else "")
            + f": {c['wall']:.0f} µs/push wall, CPU µs/push: this process {c['client']:.0f}, "
            f"PostgreSQL backends {c['server']:.0f}, total {c['client'] + c['server']:.0f}"
        )
    print(
        f"server-counted transactions per push (the store's default): {one:.2f} at 1 in "
        f"flight, {many:.2f} at {args.concurrency}; HOT updates {hot:,} of {updates:,} "
        f"({hot / max(updates, 1):.0%})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("-n", "--pushes", type=int, default=4000)
    parser.add_argument("-c", "--concurrency", type=int, default=32)
    parser.add_argument("--round-trip-pushes", type=int, default=200)
    parser.add_argument(
        "--in-flight",
        type=int,
        nargs="*",
        default=[0],
        help="compare stores allowing N batches of each statement at a time (0: the default)",
    )
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
