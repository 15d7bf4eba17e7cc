"""Benchmark: the stores' own clients vs redis-py and psycopg_pool, same calls, same run.

``RedisStore`` talks to Redis through its own lean RESP2 client
(``ironpush/receiver/stores/_resp.py``) and ``PostgresStore`` keeps its own connections
(``_pg_connections.py``) instead of psycopg_pool. **Each stays only while it beats the library
it replaced**; this script is that measurement. Per push, the quick path's two calls as the
stores make them:

- Redis: ``EVALSHA`` of the ``claim`` and ``complete`` scripts, through (a) redis-py's asyncio
  client (a plain ``ConnectionPool``, RESP2, hiredis' parser when installed, no retries: the
  configuration the store used) and (b) ``RespClient``;
- PostgreSQL: the ``claim`` and ``complete`` statements, through (a) an
  ``AsyncConnectionPool`` (``pool.connection()`` + ``conn.execute``, the store's former
  plumbing) and (b) ``Connections`` (a warm connection and its cursor).

Each contestant runs ``-n`` pushes with ``-c`` in flight in alternating rounds (order rotated);
figures: µs per push (wall), this process's CPU µs per push, and the rate ratio to the library
in the same round (median, IQR). Needs the local Redis and PostgreSQL; not part of CI::

    python -m benchmarks.bench_store_clients [--rounds 12] [-n 3000] [-c 32] [--write]
    python -m benchmarks.bench_store_clients --profile "postgres: Connections"   # where it goes
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
import redis.asyncio as aioredis
import uvloop
from psycopg_pool import AsyncConnectionPool
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from benchmarks.harness import ROOT, machine, rotated, summarize, write_between_markers
from ironpush.receiver.stores._pg_connections import Connections
from ironpush.receiver.stores._postgres import PostgresStore
from ironpush.receiver.stores._postgres_sql import SQL
from ironpush.receiver.stores._redis_scripts import SCRIPTS
from ironpush.receiver.stores._resp import RespClient

REDIS_URL = os.environ.get("IRONPUSH_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
PG_DSN = os.environ.get("IRONPUSH_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
README = ROOT / "benchmarks" / "README.md"
MARKER = "bench_store_clients"
DELIVERY = '{"id":"m","reservation_id":"r1","subscriber":"billing","url":"http://x/y"}'
OWNER = "host:1:abc"
Push = Callable[[str], Awaitable[None]]


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --------------------------------------------------------------------------- Redis


async def redis_contestants(prefix: str) -> tuple[dict[str, Push], Callable[[], Awaitable[None]]]:
    pool = aioredis.ConnectionPool.from_url(
        REDIS_URL, max_connections=128, socket_timeout=2.0, socket_connect_timeout=2.0,
        socket_keepalive=True, protocol=2,
    )  # fmt: skip
    library = aioredis.Redis(connection_pool=pool, retry=Retry(NoBackoff(), 0))
    scripts = {n: library.register_script(SCRIPTS[n]) for n in ("claim", "complete")}
    lean = RespClient(REDIS_URL, timeout=2.0)
    shas = {n: s.sha for n, s in scripts.items()}
    for text in SCRIPTS.values():
        await lean.call("SCRIPT", "LOAD", text)

    def claim_args(message_id: str) -> tuple[str, list[Any]]:
        key = f"{prefix}:c:{len(message_id)}:{message_id}:billing"
        return key, [uuid.uuid4().hex, 10_000, 600_000, DELIVERY, OWNER]

    async def via_redis_py(message_id: str) -> None:
        key, args = claim_args(message_id)
        await scripts["claim"](keys=[key], args=args)
        await scripts["complete"](keys=[key], args=["acked", 600_000])

    async def via_lean(message_id: str) -> None:
        key, args = claim_args(message_id)
        await lean.call("EVALSHA", shas["claim"], 1, key, *args)
        await lean.call("EVALSHA", shas["complete"], 1, key, "acked", 600_000)

    async def close() -> None:
        await library.aclose()
        await lean.close()

    return {"redis: redis-py": via_redis_py, "redis: RespClient": via_lean}, close


# --------------------------------------------------------------------------- PostgreSQL


async def postgres_contestants(
    schema: str,
) -> tuple[dict[str, Push], Callable[[], Awaitable[None]]]:
    store = PostgresStore(PG_DSN, schema=schema)
    await store.check()  # creates the schema
    sql = {n: SQL[n].replace("{s}", f'"{schema}"') for n in ("claim", "complete")}
    kwargs = {"autocommit": True, "connect_timeout": 2, "prepare_threshold": 0}
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        PG_DSN, min_size=1, max_size=16, timeout=2.0, kwargs=kwargs, open=False
    )
    await pool.open(wait=True)
    lean = Connections(PG_DSN, size=16, connect_timeout=2)

    def params(message_id: str) -> dict[str, dict[str, Any]]:
        # The store's statements take a batch of calls as one JSON array: a batch of one here.
        claim = (message_id, "billing", uuid.uuid4().hex, DELIVERY, OWNER, 10.0, 600.0)
        complete = (message_id, "billing", "acked", 600.0)
        return {
            "claim": {"calls": json.dumps([claim])},
            "complete": {"calls": json.dumps([complete])},
        }

    async def via_pool(message_id: str) -> None:
        p = params(message_id)
        for name in ("claim", "complete"):
            async with pool.connection() as conn:
                cursor = await conn.execute(sql[name], p[name])
                await cursor.fetchall()

    async def via_lean(message_id: str) -> None:
        p = params(message_id)
        for name in ("claim", "complete"):
            lease = await lean.get()
            try:
                await lease.cursor.execute(sql[name], p[name])
                await lease.cursor.fetchall()
            except BaseException:
                lease.broken = True
                raise
            finally:
                lean.put(lease)

    async def close() -> None:
        await pool.close()
        await lean.close()
        await store.close()
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')

    return {"postgres: psycopg_pool": via_pool, "postgres: Connections": via_lean}, close


# --------------------------------------------------------------------------- the run


async def one_round(push: Push, tag: str, pushes: int, concurrency: int) -> tuple[float, float]:
    ids = iter(range(pushes))

    async def worker() -> None:
        for i in ids:
            await push(f"{tag}-{i}")

    started, used = time.perf_counter(), cpu()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started, cpu() - used


async def run(args: argparse.Namespace) -> str:
    run_id = uuid.uuid4().hex[:6]
    redis_pushes, close_redis = await redis_contestants(f"bench_clients_{run_id}")
    pg_pushes, close_pg = await postgres_contestants(f"bench_clients_{run_id}")
    contestants = {**redis_pushes, **pg_pushes}
    names = list(contestants)
    samples: dict[str, list[tuple[float, float]]] = {n: [] for n in names}
    try:
        for name in names:  # warm-up
            await one_round(contestants[name], f"warm-{run_id}-{name}", 200, args.concurrency)
        if args.profile:
            return await profile(contestants[args.profile], run_id, args)
        for r in range(args.rounds):
            for name in rotated(names, r):
                tag = f"{run_id}-{r}-{name}"
                samples[name].append(
                    await one_round(contestants[name], tag, args.pushes, args.concurrency)
                )
    finally:
        await close_redis()
        await close_pg()
        client = aioredis.Redis.from_url(REDIS_URL)
        async for key in client.scan_iter(match=f"bench_clients_{run_id}:*", count=1000):
            await client.delete(key)
        await client.aclose()
    pairs = [
        ("redis: RespClient", "redis: redis-py"),
        ("postgres: Connections", "postgres: psycopg_pool"),
    ]
    lines = [
        f"{machine()}; {args.rounds} rounds of {args.pushes:,} quick-path pushes (2 calls "
        f"each), {args.concurrency} in flight, uvloop; load average "
        f"{os.getloadavg()[0]:.1f} at the end. Command: `python -m benchmarks."
        f"bench_store_clients --write`.",
        "",
        "| client | µs per push (wall, median) | CPU µs per push (this process) "
        "| rate vs the library, same round (median, IQR) |",
        "| --- | --- | --- | --- |",
    ]
    for mine, library in pairs:
        for name in (library, mine):
            wall = summarize([w / args.pushes * 1e6 for w, _ in samples[name]]).median
            used = summarize([c / args.pushes * 1e6 for _, c in samples[name]]).median
            ratio = summarize(
                [lw / mw for (mw, _), (lw, _) in zip(samples[name], samples[library], strict=True)]
            )
            lines.append(f"| {name} | {wall:.0f} | {used:.0f} | {ratio} |")
    return "\n".join(lines)


async def profile(push: Push, run_id: str, args: argparse.Namespace) -> str:
    """cProfile of one round of one contestant: the functions with the most own time."""
    import cProfile
    import io
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    await one_round(push, f"{run_id}-profile", args.pushes, args.concurrency)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(15)
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("-n", "--pushes", type=int, default=3000)
    parser.add_argument("-c", "--concurrency", type=int, default=32)
    parser.add_argument("--write", action="store_true", help="record in benchmarks/README.md")
    parser.add_argument(
        "--profile", metavar="CLIENT", help='cProfile one, e.g. "postgres: Connections"'
    )
    args = parser.parse_args()
    table = uvloop.run(run(args))
    print(table)
    if args.write and not args.profile:
        write_between_markers(README, MARKER, table)
        print(f"written: {README.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
