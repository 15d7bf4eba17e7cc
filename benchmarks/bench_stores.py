"""Benchmark: what a push costs in each store, called directly (no HTTP), and its round trips.

Paths, per push:

- **quick**: ``claim`` + ``complete`` (the handler answered at once);
- **deferred**: ``claim`` + ``complete`` + outbox ``add`` + ``take`` + ``finish`` (a
  ``Defer(job)`` push, which keeps its claim, then its ack through the outbox, one item per
  take: the worst case; the router folds ``complete`` and ``add`` into one ``complete_ack``
  call where the store has it, Redis included).

1. **Round trips per push, counted by the server**: Redis from ``INFO commandstats`` deltas
   (top-level commands: ``evalsha``/``eval``/``ping``/``script|load``; a script's inner calls
   are not round trips) on a private ``redis-server`` started for the run; PostgreSQL from
   ``pg_stat_database`` (``xact_commit + xact_rollback``) of a database used by this run alone,
   read from another database after the store's connections closed (every store call is one
   autocommit statement, so one transaction is one round trip). ``pg_stat_statements`` is not
   used: it needs ``shared_preload_libraries`` and a server restart. SQLite has no round trips:
   its transactions per push show the group commit.
2. **Cost**: every store is measured in alternating rounds (order rotated each round), ``-n``
   pushes per round with ``-c`` in flight; figures are per-push wall time and this process's CPU
   time (the SQLite writer thread included; the Redis/PostgreSQL servers' own CPU is not), and
   each store's throughput ratio to the memory store *in the same round* (median and IQR).
3. **SQLite, 2 processes on one file vs 1**: total quick-path throughput, alternating.

Run from the repository root: ``python -m benchmarks.bench_stores [--write]`` (``--write``
fills the table in ``benchmarks/README.md``). Needs the local Redis binary and PostgreSQL
(``IRONPUSH_TEST_POSTGRES_DSN``). Not part of CI.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import subprocess
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import redis

from benchmarks.harness import (
    ROOT,
    free_port,
    machine,
    rotated,
    summarize,
    write_between_markers,
    write_json,
)
from ironpush._protocol import Delivery
from ironpush.receiver.stores import OutboxItem, Store, open_store

PG_DSN = os.environ.get("IRONPUSH_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
BENCH_DB = "ironpush_bench"
_REDIS_TOP_LEVEL = ("cmdstat_evalsha", "cmdstat_eval", "cmdstat_ping", "cmdstat_script|load")

Path_ = Callable[[Store, str], Awaitable[None]]


# --------------------------------------------------------------------------- the two paths


async def quick(store: Store, message_id: str) -> None:
    key, d = (message_id, "billing"), Delivery(message_id, "r1", "billing")
    await store.claim(key, d, lease=30, ttl=600)
    await store.complete(key, outcome="acked", ttl=600, delivery=d)


async def deferred(store: Store, message_id: str) -> None:
    key, d = (message_id, "billing"), Delivery(message_id, "r1", "billing")
    claim = await store.claim(key, d, lease=30, ttl=600)
    assert claim.claim_id
    newest = await store.complete(key, outcome="acked", ttl=600, delivery=d)
    await store.add(OutboxItem("ack", "q", delivery=newest))
    items = await store.take(limit=1, lease=30)
    await store.finish([i.id for i in items])


async def deferred_recorded(store: Store, message_id: str) -> None:
    """The deferred path up to the ack being recorded; a sender takes the acks in batches."""
    key, d = (message_id, "billing"), Delivery(message_id, "r1", "billing")
    claim = await store.claim(key, d, lease=30, ttl=600)
    assert claim.claim_id
    newest = await store.complete(key, outcome="acked", ttl=600, delivery=d)
    await store.add(OutboxItem("ack", "q", delivery=newest))


async def drain(store: Store, batch: int) -> None:
    while items := await store.take(limit=batch, lease=30):
        await store.finish([i.id for i in items])


PATHS: dict[str, Path_] = {"quick": quick, "deferred": deferred}


async def run(store: Store, path: Path_, pushes: int, concurrency: int) -> tuple[float, float]:
    """(wall s, CPU s of this process) for ``pushes`` pushes, ``concurrency`` at a time."""
    tag = uuid.uuid4().hex[:8]
    per_worker = pushes // concurrency

    async def worker(w: int) -> None:
        for i in range(per_worker):
            await path(store, f"{tag}-{w}-{i}")

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    return time.perf_counter() - wall, time.process_time() - cpu


# --------------------------------------------------------------------------- the engines


class PrivateRedis:
    """A redis-server of this run only, so that its command counts are ours."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
        )
        self.client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 30
        while True:
            try:
                self.client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def round_trips(self) -> int:
        stats = self.client.info("commandstats")
        return sum(int(v["calls"]) for k, v in stats.items() if k in _REDIS_TOP_LEVEL)

    def stop(self) -> None:
        self.client.close()
        self.proc.kill()
        self.proc.wait(timeout=30)


def bench_dsn() -> str:
    """The DSN of a database for this benchmark alone (created when missing)."""
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [BENCH_DB])
        if exists.fetchone() is None:
            conn.execute(f'CREATE DATABASE "{BENCH_DB}"')
    parts = urlsplit(PG_DSN)
    return urlunsplit(parts._replace(path=f"/{BENCH_DB}"))


def pg_transactions() -> int:
    """Transactions the bench database has seen (read from the other database)."""
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = %s",
            [BENCH_DB],
        ).fetchone()
    return int(row[0]) if row else 0


def pg_settled_transactions() -> int:
    # Backends flush their counters when they exit or within a second of going idle: wait
    # until two readings agree.
    last = -1
    while True:
        time.sleep(1.2)
        now = pg_transactions()
        if now == last:
            return now
        last = now


# --------------------------------------------------------------------------- round trips


async def count_round_trips(spec: str, counter: Callable[[], int], pushes: int) -> dict[str, float]:
    out: dict[str, float] = {}
    paths = {**PATHS, "deferred_batched": deferred_recorded}
    for name, path in paths.items():
        for n in (0, pushes):  # n=0 measures what opening and checking a store costs
            store = open_store(spec)
            before = counter()
            await store.check()
            if n:
                await run(store, path, n, 1)
            await drain(store, 100)  # the sender, 100 acks per take (one empty take)
            await store.close()
            delta = counter() - before
            if n == 0:
                base = delta
            else:
                out[name] = (delta - base) / n
    return out


async def round_trips(pushes: int) -> dict[str, dict[str, float]]:
    private = PrivateRedis()
    try:
        redis_spec = f"{private.url}?prefix=rt{uuid.uuid4().hex[:6]}"
        result = {"redis": await count_round_trips(redis_spec, private.round_trips, pushes)}
    finally:
        private.stop()
    pg_spec = f"{bench_dsn()}?schema=rt{uuid.uuid4().hex[:6]}"
    warm = open_store(pg_spec)
    await warm.check()  # the schema is created here, not in the counted runs
    await warm.close()
    result["postgres"] = await count_round_trips(pg_spec, pg_settled_transactions, pushes)
    return result


# --------------------------------------------------------------------------- cost rounds


async def cost_rounds(
    specs: dict[str, str], *, rounds: int, pushes: int, concurrency: int
) -> dict[str, Any]:
    stores = {name: open_store(spec) for name, spec in specs.items()}
    for store in stores.values():
        await store.check()
        await run(store, quick, 200, 8)  # warm up connections and statement caches
    samples: dict[str, dict[str, list[tuple[float, float]]]] = {
        p: {n: [] for n in stores} for p in PATHS
    }
    try:
        for cycle in range(rounds):
            for path_name, path in PATHS.items():
                for name in rotated(list(stores), cycle):
                    samples[path_name][name].append(
                        await run(stores[name], path, pushes, concurrency)
                    )
    finally:
        for store in stores.values():
            await store.close()
    return samples


def summarize_costs(samples: dict[str, Any], pushes: int) -> dict[str, Any]:
    table: dict[str, Any] = {}
    for path_name, by_store in samples.items():
        memory = by_store["memory"]
        for name, runs in by_store.items():
            ratios = [m[0] / r[0] for r, m in zip(runs, memory, strict=True)]
            table.setdefault(path_name, {})[name] = {
                "us_per_push": summarize([r[0] / pushes * 1e6 for r in runs]).median,
                "cpu_us_per_push": summarize([r[1] / pushes * 1e6 for r in runs]).median,
                "ratio_to_memory": summarize(ratios),
            }
    return table


# --------------------------------------------------------------------------- SQLite processes


def _sqlite_worker(path: str, pushes: int, concurrency: int, start: Any, done: Any) -> None:
    async def go() -> None:
        store = open_store(path)
        await store.check()
        start.wait()
        await run(store, quick, pushes, concurrency)
        await store.close()

    asyncio.run(go())
    done.put(time.perf_counter())


def sqlite_processes(path: str, *, processes: int, pushes: int, concurrency: int) -> float:
    """Pushes per second of ``processes`` processes sharing one SQLite file."""
    ctx = multiprocessing.get_context("spawn")
    start, done = ctx.Event(), ctx.Queue()
    procs = [
        ctx.Process(target=_sqlite_worker, args=(path, pushes, concurrency, start, done))
        for _ in range(processes)
    ]
    for p in procs:
        p.start()
    time.sleep(2.0)  # let every process import and open the file before the start signal
    began = time.perf_counter()
    start.set()
    ends = [done.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    return processes * pushes / (max(ends) - began)


def sqlite_scaling(path: str, *, rounds: int, pushes: int, concurrency: int) -> dict[str, Any]:
    ratios, rates = [], {1: [], 2: []}
    for cycle in range(rounds):
        got = {}
        for n in rotated(["1", "2"], cycle):
            got[int(n)] = sqlite_processes(
                path, processes=int(n), pushes=pushes, concurrency=concurrency
            )
            rates[int(n)].append(got[int(n)])
        ratios.append(got[2] / got[1])
    return {
        "one_process_per_s": summarize(rates[1]).median,
        "two_processes_per_s": summarize(rates[2]).median,
        "ratio": summarize(ratios),
    }


# --------------------------------------------------------------------------- report


def report(
    rt: dict[str, dict[str, float]],
    costs: dict[str, Any],
    scaling: dict[str, Any],
    args: argparse.Namespace,
) -> str:
    lines = [
        f"Measured on {machine()}, load average {os.getloadavg()[0]:.1f} at the end; "
        f"`python -m benchmarks.bench_stores --rounds {args.rounds} -n {args.pushes} "
        f"-c {args.concurrency}`.",
        "",
        "Round trips per push, counted by the server (Redis: `INFO commandstats`; PostgreSQL:"
        " transactions in `pg_stat_database`; goal quick ≤ 2, deferred ≤ 4 + the sender's "
        "take/finish):",
        "",
        "| store | quick | deferred, one ack per take | deferred, acks taken 100 at a time |",
        "| --- | --- | --- | --- |",
    ]
    for name, paths in rt.items():
        lines.append(
            f"| {name} | {paths['quick']:.2f} | {paths['deferred']:.2f} | "
            f"{paths['deferred_batched']:.2f} |"
        )
    lines += [
        "",
        f"Cost per push called directly, {args.concurrency} in flight (median of "
        f"{args.rounds} alternating rounds; ratio = the store's rate / the memory store's in the "
        "same round, with the IQR):",
        "",
        "| path | store | µs per push (wall) | CPU µs per push (this process) | rate vs memory |",
        "| --- | --- | --- | --- | --- |",
    ]
    for path_name, by_store in costs.items():
        for name, fig in by_store.items():
            lines.append(
                f"| {path_name} | {name} | {fig['us_per_push']:.0f} | "
                f"{fig['cpu_us_per_push']:.0f} | {fig['ratio_to_memory']} |"
            )
    lines += [
        "",
        f"SQLite, quick path, processes sharing one file: 1 process "
        f"{scaling['one_process_per_s']:,.0f} pushes/s, 2 processes "
        f"{scaling['two_processes_per_s']:,.0f} pushes/s: **{scaling['ratio']}** (goal ≥ 1.6x).",
    ]
    return "\n".join(lines)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if hasattr(value, "median"):
        return {"median": value.median, "q1": value.q1, "q3": value.q3, "n": value.n}
    return value


async def main_async(args: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-stores-"))
    private = PrivateRedis()
    try:
        rt = await round_trips(args.round_trip_pushes)
        print(json.dumps(rt, indent=2))
        specs = {
            "memory": "memory",
            "sqlite": f"sqlite:///{tmp / 'store.db'}",
            "redis": f"{private.url}?prefix=cost{uuid.uuid4().hex[:6]}",
            "postgres": f"{bench_dsn()}?schema=cost{uuid.uuid4().hex[:6]}",
        }
        samples = await cost_rounds(
            specs, rounds=args.rounds, pushes=args.pushes, concurrency=args.concurrency
        )
    finally:
        private.stop()
    costs = summarize_costs(samples, args.pushes)
    scaling = sqlite_scaling(
        str(tmp / "shared.db"),
        rounds=args.scaling_rounds,
        pushes=args.pushes,
        concurrency=args.concurrency,
    )
    text = report(rt, costs, scaling, args)
    print(text)
    write_json(
        ROOT / "benchmarks" / "results" / "stores.json",
        _plain({"round_trips": rt, "costs": costs, "sqlite_scaling": scaling}),
    )
    if args.write:
        write_between_markers(ROOT / "benchmarks" / "README.md", "bench-stores", text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("-n", "--pushes", type=int, default=2000)
    parser.add_argument("-c", "--concurrency", type=int, default=32)
    parser.add_argument("--round-trip-pushes", type=int, default=200)
    parser.add_argument("--scaling-rounds", type=int, default=5)
    parser.add_argument("--write", action="store_true", help="fill benchmarks/README.md")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
