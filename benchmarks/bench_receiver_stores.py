"""Benchmark: the receiver with RedisStore and PostgresStore vs MemoryStore, same run.

Every server is up at once (``benchmarks/receiver_store_apps.py``, uvicorn, pinned apart from
``wrk``), measured in alternating slots (``benchmarks/harness.py``) with the same pushes as
``bench_receiver.py`` (unique message ids, the route's secret, a 1 KB JSON body). Contestants:
the quick 200 path and the ``Defer(job)`` 202 + ack path with each store, each path's ratio to
the memory store in the same cycle (median, IQR); and the Redis / PostgreSQL quick path served
by 3 uvicorn worker processes (3 instances sharing the store) vs 1, on the same CPU budget.
Figures: 2xx rate, ratio, server CPU µs per request (uvicorn and its workers), and the CPU the
Redis / PostgreSQL server spent per request in the same slots (other jobs on the machine use
those servers too, so that column is an upper bound). Each PostgreSQL contestant's process
keeps at most 8 connections (``max_connections=8``), so that all of them stay within the
server's default limit of 100.

Run from the repository root (needs ``wrk`` and the local Redis and PostgreSQL)::

    python -m benchmarks.bench_receiver_stores            # print the table
    python -m benchmarks.bench_receiver_stores --write    # and record it in benchmarks/README.md

Not part of CI.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.bench_receiver import json_body, push_script, wait_for_acks
from benchmarks.harness import (
    ROOT,
    Contestant,
    Load,
    Servers,
    ServerSpec,
    Slot,
    cpu_plan,
    cpu_seconds,
    dump_slots,
    free_port,
    machine,
    measure,
    per_cycle_ratios,
    rotated,
    summarize,
    write_between_markers,
    write_json,
    wrk_available,
)

README = ROOT / "benchmarks" / "README.md"
RESULTS = ROOT / "benchmarks" / "results" / "receiver_stores.json"
MARKER = "bench_receiver_stores"
PG_CONNECTIONS = 8  # per process: 4 PostgreSQL contestants (6 processes) stay under 100
REDIS_URL = os.environ.get("IRONPUSH_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES_DSN = os.environ.get(
    "IRONPUSH_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test"
)


@dataclass(frozen=True, slots=True)
class Row:
    name: str
    label: str
    app: str  # quick | defer_job
    store: str  # memory | redis | postgres
    workers: int = 1
    reference: str | None = None
    goal: float | None = None
    max_deferred: int | None = None  # None: the router's default


ROWS = [
    Row("mem_quick", "memory store, quick 200 (the reference)", "quick", "memory"),
    Row("redis_quick", "RedisStore, quick 200", "quick", "redis", 1, "mem_quick", 0.75),
    Row("pg_quick", "PostgresStore, quick 200", "quick", "postgres", 1, "mem_quick", 0.6),
    Row("mem_defer", "memory store, `Defer(job)` 202 + ack (the reference)", "defer_job",
        "memory"),
    Row("redis_defer", "RedisStore, `Defer(job)` 202 + ack", "defer_job", "redis", 1,
        "mem_defer", 0.75),
    Row("pg_defer", "PostgresStore, `Defer(job)` 202 + ack", "defer_job", "postgres", 1,
        "mem_defer", 0.6),
    Row("mem_defer256", "memory store, `Defer(job)`, `max_deferred=256` (the reference)",
        "defer_job", "memory", max_deferred=256),
    Row("redis_defer256", "RedisStore, `Defer(job)`, `max_deferred=256`", "defer_job", "redis",
        1, "mem_defer256", max_deferred=256),
    Row("pg_defer256", "PostgresStore, `Defer(job)`, `max_deferred=256`", "defer_job",
        "postgres", 1, "mem_defer256", max_deferred=256),
    Row("redis_quick_x3", "RedisStore, quick 200, 3 instances (vs 1)", "quick", "redis", 3,
        "redis_quick"),
    Row("pg_quick_x3", "PostgresStore, quick 200, 3 instances (vs 1)", "quick", "postgres", 3,
        "pg_quick"),
]  # fmt: skip


def store_spec(store: str, tag: str) -> str:
    """A store URL private to one contestant and one run (its own key prefix / schema)."""
    if store == "redis":
        return f"{REDIS_URL}?prefix=bench_{tag}"
    if store == "postgres":
        return f"{POSTGRES_DSN}?schema=bench_{tag}"
    return "memory"


def specs(rows: list[Row], fake_port: int, run: str) -> list[ServerSpec]:
    env = {"IRONMQ_EMULATOR_HOST": f"127.0.0.1:{fake_port}"}
    out = [ServerSpec("fake_ironmq", "benchmarks.receiver_apps:fake_ironmq", port=fake_port)]
    for row in rows:
        store = {"BENCH_STORE": store_spec(row.store, f"{run}_{row.name}")}
        if row.store == "postgres":
            store["BENCH_PG_CONNECTIONS"] = str(PG_CONNECTIONS)
        if row.max_deferred:
            store["BENCH_MAX_DEFERRED"] = str(row.max_deferred)
        out.append(
            ServerSpec(
                row.name,
                f"benchmarks.receiver_store_apps:{row.app}",
                {**env, **store},
                workers=row.workers,
            )
        )
    return out


# --------------------------------------------------------------------------- engine CPU


def engine_pids() -> dict[str, int]:
    """The Redis server's and the PostgreSQL postmaster's pids (their backends are children)."""
    pids: dict[str, int] = {}
    try:
        info = subprocess.run(
            ["redis-cli", "-u", REDIS_URL, "info", "server"], capture_output=True, text=True
        ).stdout
        if m := re.search(r"process_id:(\d+)", info):
            pids["redis"] = int(m.group(1))
    except OSError:
        pass
    for pidfile in Path("/var/run/postgresql").glob("*.pid"):
        pids["postgres"] = int(pidfile.read_text().split()[0])
    return pids


@dataclass(frozen=True, slots=True)
class EngineSlot:
    name: str
    cycle: int
    engine_cpu: float


def alternate_with_engines(
    contestants: list[Contestant],
    rows: dict[str, Row],
    *,
    cycles: int,
    slot: float,
    cpus: str | None,
) -> tuple[list[Slot], list[EngineSlot]]:
    pids = engine_pids()
    names = [c.name for c in contestants]
    by_name = {c.name: c for c in contestants}
    slots = [measure(by_name[n], cycle=-1, duration=1.0, cpus=cpus) for n in names]
    engine: list[EngineSlot] = []
    for cycle in range(cycles):
        for name in rotated(names, cycle):
            pid = pids.get(rows[name].store)
            before = cpu_seconds(pid) if pid else 0.0
            slots.append(measure(by_name[name], cycle=cycle, duration=slot, cpus=cpus))
            used = (cpu_seconds(pid) - before) if pid else 0.0
            if pid and engine_pids().get(rows[name].store) != pid:
                # Restarted during the slot (other jobs restart the shared servers): unknown.
                pids = engine_pids()
                used = float("nan")
            engine.append(EngineSlot(name, cycle, used))
        rates = {s.name: s.rate_2xx for s in slots if s.cycle == cycle}
        shown = " ".join(f"{n}={rates[n]:.0f}" for n in names)
        print(f"cycle {cycle + 1}/{cycles}: {shown}", file=sys.stderr, flush=True)
    return slots, engine


# --------------------------------------------------------------------------- results


def result_rows(
    rows: list[Row], slots: list[Slot], engine: list[EngineSlot]
) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        mine = [s for s in slots if s.name == row.name and s.cycle >= 0]
        requests = sum(s.requests for s in mine)
        known = {e.cycle: e.engine_cpu for e in engine if e.name == row.name}
        known = {c: v for c, v in known.items() if v == v}  # NaN: the server restarted
        engine_cpu = sum(known.values())
        engine_requests = sum(s.requests for s in mine if s.cycle in known)
        entry: dict[str, Any] = {
            "label": row.label,
            "rate_2xx": summarize([s.rate_2xx for s in mine]).median,
            "non_2xx_share": sum(s.non_2xx for s in mine) / requests if requests else 0.0,
            "cpu_us_per_request": summarize([s.cpu_us_per_request for s in mine]).median,
            "engine_cpu_us_per_request": (
                engine_cpu / engine_requests * 1e6
                if engine_requests and row.store != "memory"
                else None
            ),
            "engine_restarts": len(mine) - len(known) if row.store != "memory" else 0,
        }
        if row.reference:
            ratio = summarize(per_cycle_ratios(slots, row.name, row.reference))
            entry.update(reference=row.reference, vs_reference=ratio)
            if row.goal:
                entry["goal"] = row.goal
                entry["met"] = ratio.median >= row.goal and entry["non_2xx_share"] == 0
        out[row.name] = entry
    return out


def markdown(results: dict[str, dict[str, Any]], settings: dict[str, Any]) -> str:
    lines = [
        f"{settings['machine']}; {settings['cycles']} cycles x {settings['slot']:g} s slots, "
        f"`wrk -t1 -c{settings['connections']}`, {settings['body_bytes']} B JSON body, "
        f"CPUs: servers {settings['server_cpus']}, wrk {settings['load_cpu']} (Redis and "
        f"PostgreSQL unpinned); load average {settings['load_before']} before the run. "
        f"Command: `{settings['command']}`.",
        "",
        "| path | 2xx req/s | vs reference, same cycle (median, IQR) | goal | non-2xx "
        "| receiver CPU µs/req | Redis/PostgreSQL server CPU µs/req |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results.values():
        ratio = str(r["vs_reference"]) + f" of {r['reference']}" if "reference" in r else "—"
        goal = "—"
        if "goal" in r:
            goal = f"≥ {r['goal']:.2f}x: {'**met**' if r['met'] else '**not met**'}"
        engine = r["engine_cpu_us_per_request"]
        lines.append(
            f"| {r['label']} | {r['rate_2xx']:,.0f} | {ratio} | {goal} "
            f"| {r['non_2xx_share']:.1%} | {r['cpu_us_per_request']:.0f} "
            f"| {_engine_cell(engine)} |"
        )
    restarted = {n: r["engine_restarts"] for n, r in results.items() if r["engine_restarts"]}
    if restarted:
        shown = ", ".join(f"{n} {k}" for n, k in restarted.items())
        lines += [
            "",
            f"Slots during which another job restarted the shared Redis/PostgreSQL server (their "
            f"503s are in the non-2xx column, their server CPU left out): {shown}.",
        ]
    if "acks" in settings:
        sent, confirmed = settings["acks"]
        lines += [
            "",
            f"`Defer(job)`: the fake IronMQ received {confirmed:,} acks for the {sent:,} 202s "
            f"wrk counted ({'every 202 acked' if confirmed >= sent else '**acks missing**'}; "
            "wrk does not count the answers still in flight when a slot ends).",
        ]
    return "\n".join(lines)


def _engine_cell(engine: float | None) -> str:
    if engine is None:
        return "—"
    # Below 0: PostgreSQL backends of other jobs exited during the slots (their CPU left the
    # cluster's total), so the figure means nothing.
    return f"{engine:.0f}" if engine >= 0 else "n/a"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=16)
    parser.add_argument("--slot", type=float, default=2.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--only", nargs="*", help="contestants to run (with their references)")
    parser.add_argument("--write", action="store_true", help="record in benchmarks/README.md")
    args = parser.parse_args()
    if not wrk_available():
        sys.exit("bench_receiver_stores needs wrk: apt-get install -y wrk")
    rows = ROWS
    if args.only:
        wanted = set(args.only)
        wanted |= {r.reference for r in ROWS if r.name in wanted and r.reference}
        rows = [r for r in ROWS if r.name in wanted]
    server_cpus, load_cpu = cpu_plan()
    body = json_body()
    script = push_script(body=body)
    fake_port = free_port()
    run = uuid.uuid4().hex[:6]
    load_before = Path("/proc/loadavg").read_text().split()[0]
    with Servers(specs(rows, fake_port, run), cpus=server_cpus) as servers:
        contestants = [
            Contestant(r.name, servers[r.name], Load("/orders", script, args.connections))
            for r in rows
        ]
        slots, engine = alternate_with_engines(
            contestants,
            {r.name: r for r in rows},
            cycles=args.cycles,
            slot=args.slot,
            cpus=load_cpu,
        )
        settings: dict[str, Any] = {
            "machine": machine(),
            "cycles": args.cycles,
            "slot": args.slot,
            "connections": args.connections,
            "body_bytes": len(body),
            "server_cpus": server_cpus or "any",
            "load_cpu": load_cpu or "any",
            "load_before": load_before,
            "command": "python -m benchmarks.bench_receiver_stores --write",
        }
        defer = {r.name for r in rows if r.app == "defer_job"}
        if defer:
            expected = sum(s.requests - s.non_2xx for s in slots if s.name in defer)
            settings["acks"] = (expected, wait_for_acks(servers["fake_ironmq"].url, expected))
    results = result_rows(rows, slots, engine)
    table = markdown(results, settings)
    print(table)
    if args.write:
        write_json(
            RESULTS,
            {
                "settings": settings,
                "results": _jsonable(results),
                "slots": dump_slots(slots),
                "engine_slots": [e.__dict__ if hasattr(e, "__dict__") else
                                 {"name": e.name, "cycle": e.cycle, "cpu": e.engine_cpu}
                                 for e in engine],
            },
        )  # fmt: skip
        write_between_markers(README, MARKER, table)
        print(f"written: {RESULTS.relative_to(ROOT)}, {README.relative_to(ROOT)}")
    cleanup(rows, run)


def cleanup(rows: list[Row], run: str) -> None:
    """Drop the run's Redis keys and PostgreSQL schemas (best effort: other jobs restart the
    shared servers)."""
    import psycopg
    import redis

    try:
        client = redis.Redis.from_url(REDIS_URL)
        batch: list[bytes] = []
        for key in client.scan_iter(match=f"bench_{run}_*", count=5000):
            batch.append(key)
            if len(batch) >= 5000:
                client.unlink(*batch)
                batch.clear()
        if batch:
            client.unlink(*batch)
        client.close()
        with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
            for row in rows:
                if row.store == "postgres":
                    conn.execute(f'DROP SCHEMA IF EXISTS "bench_{run}_{row.name}" CASCADE')
    except (redis.RedisError, psycopg.Error) as exc:
        print(f"cleanup of run {run} incomplete: {exc}", file=sys.stderr)


def _jsonable(results: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    def plain(value: Any) -> Any:
        if hasattr(value, "median"):
            return {"median": value.median, "q1": value.q1, "q3": value.q3, "n": value.n}
        return value

    return {name: {k: plain(v) for k, v in r.items()} for name, r in results.items()}


if __name__ == "__main__":
    time.sleep(0)
    main()
