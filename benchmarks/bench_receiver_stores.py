"""Benchmark: the receiver with RedisStore and PostgresStore vs MemoryStore, same run.

Every server is up at once (``benchmarks/receiver_store_apps.py``, uvicorn, pinned apart from
``wrk``), measured in alternating slots (``benchmarks/harness.py``) with the same pushes as
``bench_receiver.py`` (unique message ids, the route's secret, a 1 KB JSON body). Contestants:
the quick 200 path and the ``Defer(job)`` 202 + ack path with each store; the hand-rolled
anchors a user would write instead (FastAPI + redis-py ``SET NX PX``, quick and with a
``BackgroundTask`` acking with httpx); and the Redis / PostgreSQL quick path served by 3
uvicorn worker processes (3 instances sharing the store) vs 1, on the same CPU budget.

Each contestant's engine runs on the servers' CPU and counts with it: a private
``redis-server`` of this run (pinned there), and the PostgreSQL backends of the contestant's
own connections (found by their ``application_name``, pinned there; the shared cluster's
other processes are left alone). So a contestant's utilisation, saturation and CPU per request
are its receiver's and its engine's together, as if each had one core; ``wrk`` has the
other. Figures side by side (``benchmarks/verdicts.py``): the ratio to the memory store over
the saturated cycles, the CPU per request (receiver, engine, ratio), the instructions per push
in-process (the receiver only: callgrind does not see the engine). Each PostgreSQL
contestant's process keeps at most 8 connections (``max_connections=8``).

Run from the repository root (needs ``wrk``, ``redis-server`` and the local PostgreSQL;
``valgrind`` and a C compiler for the instruction counts, or ``--no-instructions``)::

    python -m benchmarks.bench_receiver_stores            # print the table
    python -m benchmarks.bench_receiver_stores --write    # and record it in benchmarks/README.md

Not part of CI.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from typing import Any

from benchmarks.bench_receiver import json_body, push_script, wait_for_acks
from benchmarks.engines import EngineProcess, PostgresBackends
from benchmarks.harness import (
    ROOT,
    Contestant,
    Load,
    RunPlan,
    Servers,
    ServerSpec,
    Slot,
    alternate,
    bench_parser,
    chosen,
    dump_slots,
    fake_ironmq,
    free_port,
    pinned,
    preflight,
    report,
)
from benchmarks.instructions import Target
from benchmarks.instructions import count as count_instructions
from benchmarks.verdicts import figures_table, goals_table

README = ROOT / "benchmarks" / "README.md"
RESULTS = ROOT / "benchmarks" / "results" / "receiver_stores.json"
MARKER = "bench_receiver_stores"
PG_CONNECTIONS = 8  # per process: every PostgreSQL contestant's process stays under 100
CONNECTIONS = 64  # wrk's, as in bench_receiver
POSTGRES_DSN = os.environ.get(
    "IRONPUSH_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test"
)


@dataclass(frozen=True, slots=True)
class Row:
    name: str
    label: str
    app: str  # quick | defer_job (receiver_store_apps), or receiver_apps:<factory>
    store: str  # memory | redis | postgres
    workers: int = 1
    reference: str | None = None
    goal: float | None = None
    max_deferred: int | None = None  # None: the router's default

    @property
    def factory(self) -> str:
        if ":" in self.app:
            return f"benchmarks.{self.app}"
        return f"benchmarks.receiver_store_apps:{self.app}"

    @property
    def deferred(self) -> bool:
        return "defer" in self.app


ROWS = [
    Row("mem_quick", "memory store, quick 200 (the reference)", "quick", "memory"),
    Row("redis_quick", "RedisStore, quick 200", "quick", "redis", 1, "mem_quick", 0.75),
    Row("pg_quick", "PostgresStore, quick 200", "quick", "postgres", 1, "mem_quick", 0.5),
    Row("handrolled_redis_quick", "hand-rolled: FastAPI + redis-py `SET NX PX`, 200",
        "receiver_apps:handrolled_redis_quick", "redis"),
    Row("mem_defer", "memory store, `Defer(job)` 202 + ack (the reference)", "defer_job",
        "memory"),
    Row("redis_defer", "RedisStore, `Defer(job)` 202 + ack", "defer_job", "redis", 1,
        "mem_defer", 0.75),
    Row("pg_defer", "PostgresStore, `Defer(job)` 202 + ack", "defer_job", "postgres", 1,
        "mem_defer", 0.6),
    Row("handrolled_redis_defer", "hand-rolled: FastAPI + redis-py `SET NX PX`, "
        "`BackgroundTask` acking with httpx, 202", "receiver_apps:handrolled_redis_defer",
        "redis"),
    Row("redis_quick_x3", "RedisStore, quick 200, 3 instances (vs 1)", "quick", "redis", 3,
        "redis_quick"),
    Row("pg_quick_x3", "PostgresStore, quick 200, 3 instances (vs 1)", "quick", "postgres", 3,
        "pg_quick"),
]  # fmt: skip

#: Goals beyond each row's own: issue 23's stretch for PostgreSQL's quick path.
STRETCH = [("pg_quick", "mem_quick", 0.6)]
#: Pairs (ironpush, what a user would write instead) whose ratio must stay well above 1.
AHEAD = [("redis_quick", "handrolled_redis_quick"), ("redis_defer", "handrolled_redis_defer")]


def store_spec(store: str, tag: str, redis_url: str) -> str:
    """A store URL private to one contestant and one run (its own key prefix / schema); the
    PostgreSQL connections carry ``application_name=bench_<tag>``, so that their backends can
    be found."""
    if store == "redis":
        return f"{redis_url}?prefix=bench_{tag}"
    if store == "postgres":
        return f"{POSTGRES_DSN}?schema=bench_{tag}&application_name=bench_{tag}"
    return "memory"


def row_env(row: Row, tag: str, redis_url: str, fake_port: int) -> dict[str, str]:
    env = {
        "IRONMQ_EMULATOR_HOST": f"127.0.0.1:{fake_port}",
        "BENCH_STORE": store_spec(row.store, tag, redis_url),
        "BENCH_REDIS_URL": redis_url,
    }
    if row.store == "postgres":
        env["BENCH_PG_CONNECTIONS"] = str(PG_CONNECTIONS)
    if row.max_deferred:
        env["BENCH_MAX_DEFERRED"] = str(row.max_deferred)
    return env


def specs(
    rows: list[Row], fake_port: int, run: str, redis_url: str, load_cpu: str | None
) -> list[ServerSpec]:
    out = [fake_ironmq(fake_port, load_cpu)]
    for row in rows:
        env = row_env(row, f"{run}_{row.name}", redis_url, fake_port)
        out.append(ServerSpec(row.name, row.factory, env, workers=row.workers))
    return out


# --------------------------------------------------------------------------- engines


class PrivateRedis:
    """A ``redis-server`` of this run alone, pinned with the servers: its CPU is the Redis
    contestant's being measured (the others are idle meanwhile)."""

    def __init__(self, cpus: str | None) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                   "--save", "", "--appendonly", "no"]  # fmt: skip
        self.proc = subprocess.Popen(pinned(command, cpus), stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True,
                             text=True).stdout.strip() != "PONG":  # fmt: skip
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("the private redis-server did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(30)


def engine_of(row: Row, run: str, redis: PrivateRedis, cpus: str | None) -> Any:
    if row.store == "redis":
        return EngineProcess(redis.proc.pid, cpus)
    if row.store == "postgres":
        return PostgresBackends(POSTGRES_DSN, f"bench_{run}_{row.name}", cpus)
    return None


# --------------------------------------------------------------------------- results


def markdown(
    rows: list[Row], slots: list[Slot], counts: dict[str, float], settings: dict[str, Any]
) -> str:
    lines = [
        f"{settings['machine']}; {settings['cycles']} cycles x {settings['slot']:g} s slots, "
        f"`wrk -t1 -c{settings['connections']}`, {settings['body_bytes']} B JSON body, "
        f"CPUs: servers and their engines (a private `redis-server`, each contestant's "
        f"PostgreSQL backends) {settings['server_cpus']}, wrk {settings['load_cpu']}; load "
        f"average {settings['load_before']} before the run, {settings['load_after']} after. "
        f"Utilisation and CPU/req count the server and its engine; instructions: callgrind, "
        f"in-process, the receiver only, {settings['instructions']}. "
        f"Command: `{settings['command']}`.",
        "",
        *figures_table([(r.name, r.label) for r in rows], slots, "mem_quick", counts,
                       engine=True),
        "",
        "Goals (issue 10, issue 23) and the hand-rolled anchors, each ratio against the goal's "
        "reference:",
        "",
        *goals_table(
            [(r.name, r.reference, r.goal) for r in rows if r.reference]
            + [g for g in STRETCH if {g[0], g[1]} <= {r.name for r in rows}],
            slots,
            counts,
            ahead=[(a, b) for a, b in AHEAD if {a, b} <= {r.name for r in rows}],
        ),
    ]  # fmt: skip
    if "acks" in settings:
        sent, confirmed = settings["acks"]
        lines += [
            "",
            f"Deferred rows: the fake IronMQ received {confirmed:,} acks for the {sent:,} 202s "
            f"wrk counted ({'every 202 acked' if confirmed >= sent else '**acks missing**'}; "
            "wrk does not count the answers still in flight when a slot ends).",
        ]
    return "\n".join(lines)


def main() -> None:
    args = bench_parser(__doc__.split("\n\n")[0], connections=CONNECTIONS).parse_args()
    preflight("bench_receiver_stores", args)
    rows = chosen(ROWS, args.only, anchor="mem_quick", ahead=AHEAD)
    plan = RunPlan.now()
    body = json_body()
    script = push_script(body=body)
    fake_port = free_port()
    run = uuid.uuid4().hex[:6]
    redis = PrivateRedis(plan.server_cpus)
    counts: dict[str, float] = {}
    try:
        with Servers(
            specs(rows, fake_port, run, redis.url, plan.load_cpu), cpus=plan.server_cpus
        ) as servers:
            contestants = [
                Contestant(r.name, servers[r.name], Load("/orders", script, args.connections),
                           engine_of(r, run, redis, plan.server_cpus))
                for r in rows
            ]  # fmt: skip
            slots = alternate(contestants, cycles=args.cycles, slot=args.slot, cpus=plan.load_cpu)
            command = shlex.join(
                ["python", "-m", "benchmarks.bench_receiver_stores", *sys.argv[1:]]
            )
            settings = plan.settings(args, body_bytes=len(body), command=command)
            defer = {r.name for r in rows if r.deferred}
            if defer:
                expected = sum(s.requests - s.non_2xx for s in slots if s.name in defer)
                settings["acks"] = (expected, wait_for_acks(servers["fake_ironmq"].url, expected))
            settings["load_after"] = f"{os.getloadavg()[0]:.2f}"
            if not args.no_instructions:
                targets = [
                    Target(r.name, r.factory, "/orders",
                           row_env(r, f"{run}_{r.name}_ic", redis.url, fake_port), r.deferred)
                    for r in rows if r.workers == 1
                ]  # fmt: skip
                counts = count_instructions(targets, pushes=args.pushes)
                settings["instructions"] = f"{args.pushes:,} pushes, 32 in flight"
    finally:
        redis.stop()
        cleanup(rows, run)
    record = {"settings": settings, "instructions": counts, "slots": dump_slots(slots)}
    table = markdown(rows, slots, counts, settings)
    report(table, write=args.write, results=RESULTS, readme=README, marker=MARKER, record=record)


def cleanup(rows: list[Row], run: str) -> None:
    """Drop the run's PostgreSQL schemas (the private Redis is gone with its process)."""
    import psycopg

    try:
        with psycopg.connect(POSTGRES_DSN, autocommit=True) as conn:
            for row in rows:
                if row.store == "postgres":
                    for tag in (row.name, f"{row.name}_ic"):
                        conn.execute(f'DROP SCHEMA IF EXISTS "bench_{run}_{tag}" CASCADE')
    except psycopg.Error as exc:
        print(f"cleanup of run {run} incomplete: {exc}", file=sys.stderr)


if __name__ == "__main__":
    main()
