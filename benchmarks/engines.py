"""The engines a contestant of the alternating-slot harness needs: their CPU counts with it.

A receiver with ``RedisStore`` or ``PostgresStore`` makes its engine work too, and on this
machine the engine shares the same cores. So the harness (:func:`benchmarks.harness.measure`)
adds the CPU of the contestant's engine processes to its server's, per slot, and pins them to
the servers' CPUs: the server and its engine get one core, the load generator the other. An
engine object answers ``pids()``, pinning what it finds::

    engine = PostgresBackends(dsn, "bench_pg_quick", cpus="0")   # the backends of its DSN
    engine = EngineProcess(redis.pid, cpus="0")                  # a private redis-server
"""

from __future__ import annotations

import os
from collections.abc import Sequence


class EngineProcess:
    """An engine process of one contestant alone (a private ``redis-server``): its CPU counts
    with the contestant's server, and it is pinned to the servers' CPUs."""

    def __init__(self, pid: int, cpus: str | None) -> None:
        self.pid = pid
        self.cpus = cpus

    def pids(self) -> list[int]:
        _pin([self.pid], self.cpus)
        return [self.pid]


class PostgresBackends:
    """The PostgreSQL backends serving one contestant's connections, found by their
    ``application_name`` (the contestant's DSN sets it): their CPU counts with the
    contestant's server, and they are pinned to the servers' CPUs (the shared cluster's other
    processes are left alone)."""

    def __init__(self, dsn: str, application_name: str, cpus: str | None) -> None:
        self.dsn = dsn
        self.application_name = application_name
        self.cpus = cpus

    def pids(self) -> list[int]:
        import psycopg

        try:
            with psycopg.connect(self.dsn, autocommit=True, connect_timeout=5) as conn:
                rows = conn.execute(
                    "SELECT pid FROM pg_stat_activity WHERE application_name = %s",
                    [self.application_name],
                ).fetchall()
        except psycopg.Error:
            return []
        found = [int(r[0]) for r in rows]
        _pin(found, self.cpus)
        return found


def _pin(pids: Sequence[int], cpus: str | None) -> None:
    if not cpus:
        return
    wanted = {int(c) for c in cpus.split(",")}
    for pid in pids:
        try:
            if os.sched_getaffinity(pid) != wanted:
                os.sched_setaffinity(pid, wanted)
        except (ProcessLookupError, PermissionError):
            pass
