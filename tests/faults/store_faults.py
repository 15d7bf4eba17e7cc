"""The store-fault runs of ``test_store_faults.py``: deferred jobs that finish while the store
is away, on a real dev server and a real receiver process (``ironpush serve``), with a store
server of the run's own (:mod:`.servers`), then every side effect counted.

The receiver (:mod:`.store_fault_app`) defers every push to a job that waits for its gate (a
file the run creates), then appends one line to the effects file: the side effect, with no
idempotency key. The run posts ``messages``, waits until every job is running, then injects
its fault *as the jobs finish* (their completions meet the fault), and waits until IronMQ
deleted every message. A job whose completion was forgotten runs again when IronMQ pushes the
message again: it shows up twice in the effects file.

``STORE_FAULTS_IRONPUSH`` (a directory holding an ``ironpush`` package) runs the receiver on
that code instead: how the figures "before" in RELIABILITY.md were measured.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from support import free_port, wait_until

from ironpush._signing import push_secret
from ironpush.client import IronMQ
from ironpush.client._models import Subscriber
from ironpush.devserver import DevServer

from .processes import Process, python_path
from .servers import OwnPostgres, OwnRedis, OwnServer

KEY = "store-faults-key-0123456789abcdef"
RETRIES = 30
RETRIES_DELAY = 6  # s: a forgotten completion's message is pushed again (and run) quickly
MARKER = "could not record the deferred job of message "
SUBSCRIBER = "faults"


@dataclass
class Result:
    scenario: str
    messages: int
    effects: int = 0
    duplicates: int = 0
    missing: int = 0
    completions_retried_logged: int = 0
    completions_retried_counted: int | None = None
    faults: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def line(self) -> str:
        return json.dumps(self.__dict__)


class StoreFaultRun:
    """One dev server, one receiver on ``server``, one queue; see the module docs."""

    def __init__(self, tmp: Path, server: OwnServer, dev: DevServer, mq: IronMQ) -> None:
        self.tmp, self.server, self.dev, self.mq = tmp, server, dev, mq
        self.queue = f"sf-{server.kind}-{os.getpid()}-{int(time.time() * 1000) % 10**8}"
        self.gates = tmp / "gates"
        self.gates.mkdir(exist_ok=True)
        self.started_path = tmp / "started.txt"
        self.effects_path = tmp / "effects.txt"
        self.port = free_port()
        under_test = os.environ.get("STORE_FAULTS_IRONPUSH")
        path = os.pathsep.join(p for p in (under_test, python_path()) if p)
        env = {
            **os.environ,
            "PYTHONPATH": path,
            "HOME": str(tmp),
            "IRONPUSH_SECRET_KEYS": KEY,
            "IRONMQ_EMULATOR_HOST": dev.url,
            "STORE_FAULT_QUEUE": self.queue,
            "STORE_FAULT_SUBSCRIBER": SUBSCRIBER,
            "STORE_FAULT_GATES": str(self.gates),
            "STORE_FAULT_STARTED": str(self.started_path),
            "STORE_FAULT_EFFECTS": str(self.effects_path),
        }
        argv = [sys.executable, "-m", "ironpush", "serve", "faults.store_fault_app:app"]
        argv += ["--port", str(self.port), "--store", server.url]
        # A repeat limiter that would keep one line of each kind an hour: the completion lines
        # must all get through anyway.
        argv += ["--log-level", "info", "--log-repeat-interval", "3600"]
        # Started in ``tmp``: ``python -m`` puts its working directory first on the path.
        self.receiver = Process(argv, env, f"{self.url}/_health", name="receiver", cwd=tmp)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.receiver.start()
        secret = push_secret(self.queue, SUBSCRIBER, [KEY])
        subscriber = Subscriber(SUBSCRIBER, f"{self.url}/jobs", {"X-Ironpush-Secret": secret})
        self.mq.create_queue(
            self.queue,
            type="multicast",
            subscribers=[subscriber],
            retries=RETRIES,
            retries_delay=RETRIES_DELAY,
        )

    def stop(self) -> None:
        self.receiver.cleanup()

    # --- what the processes did -------------------------------------------------------------

    def post(self, n: int) -> list[str]:
        return list(self.mq.queue(self.queue).post(*(f"job {i}" for i in range(n))))

    def started(self) -> set[str]:
        return set(_lines(self.started_path))

    def effects(self) -> Counter[str]:
        return Counter(line.split()[0] for line in _lines(self.effects_path))

    def open(self, ids: list[str]) -> None:
        for message_id in ids:
            (self.gates / message_id).touch()

    def wait_effects(self, ids: list[str], timeout: float = 60) -> None:
        wait_until(
            lambda: all(self.effects()[m] for m in ids),
            timeout,
            f"the side effects of {len(ids)} jobs",
            report=self.report,
        )

    def deleted(self, ids: list[str]) -> bool:
        try:
            for message_id in ids:
                [status] = self.mq.queue(self.queue).get_message_push_statuses(message_id)
                if status.status != "deleted":
                    return False
        except Exception:  # the receiver's acks race the read: try again
            return False
        return True

    def health(self) -> dict[str, Any]:
        try:
            answer = httpx.get(f"{self.url}/_health", timeout=5)
            data: dict[str, Any] = answer.json()
            return data
        except (httpx.HTTPError, ValueError):
            return {}

    def report(self) -> str:
        return (
            f"effects: {dict(self.effects())}\nstarted: {len(self.started())}\n"
            f"health: {self.health()}\n{self.receiver.tail(40)}"
        )

    # --- the run ----------------------------------------------------------------------------

    def run(
        self, scenario: str, messages: int, fault: Callable[[StoreFaultRun, list[str]], list[str]]
    ) -> Result:
        began = time.monotonic()
        ids = self.post(messages)
        wait_until(lambda: self.started() >= set(ids), 60, "every job to start", report=self.report)
        result = Result(scenario, messages)
        result.faults = fault(self, ids)
        wait_until(
            lambda: self.deleted(ids), 180, "IronMQ to delete every message", report=self.report
        )
        effects = self.effects()
        result.effects = sum(effects.values())
        result.duplicates = sum(n - 1 for n in effects.values() if n > 1)
        result.missing = sum(1 for m in ids if not effects[m])
        result.completions_retried_logged = self.receiver.log_text().count(MARKER)
        counters = self.health().get("counters", {})
        result.completions_retried_counted = counters.get("completions_retried")
        result.seconds = round(time.monotonic() - began, 1)
        return result


def _lines(path: Path) -> list[str]:
    try:
        return [line for line in path.read_text().splitlines() if line.strip()]
    except FileNotFoundError:
        return []


# --- the faults: each opens the gates so that the jobs finish while the store is away ---------


def pg_terminate_x3(run: StoreFaultRun, ids: list[str]) -> list[str]:
    """Three rounds, each once the previous one is over (its messages deleted):
    ``pg_terminate_backend`` of the receiver's sessions, then a third of the jobs finish at
    once (their completions meet the dead connections)."""
    server = run.server
    assert isinstance(server, OwnPostgres)
    done: list[str] = []
    for n, part in enumerate([ids[i::3] for i in range(3)], 1):
        wait_until(server.sessions, 30, "the receiver's sessions", report=run.report)
        terminated = server.terminate_backends()
        run.open(part)
        run.wait_effects(part)
        deleted = functools.partial(run.deleted, part)
        wait_until(deleted, 120, "the round's messages", report=run.report)
        done.append(f"round {n}: {terminated} sessions terminated, {len(part)} jobs finished")
    return done


def restart_during(run: StoreFaultRun, ids: list[str]) -> list[str]:
    """The store server stops, every job finishes while it is down, it starts again (the
    Redis keeps nothing on disk: it comes back empty)."""

    def finish_jobs() -> None:
        run.open(ids)
        run.wait_effects(ids)

    down = run.server.restart(down_for=1.0, on_down=finish_jobs)
    return [f"{run.server.kind} down for {down:.1f}s while {len(ids)} jobs finished"]


def redis_stop_5s(run: StoreFaultRun, ids: list[str]) -> list[str]:
    """``kill -STOP`` of redis-server for 5 s while the jobs finish one after another (each
    completion meets a hung server: a timeout, or the fail-fast delay that follows one), then
    ``kill -CONT``."""
    assert isinstance(run.server, OwnRedis)
    stopped = time.monotonic()
    with run.server.paused():
        for n, message_id in enumerate(ids):
            # Spread over 4.5 s: the timing of each finish against the store's timeouts varies.
            time.sleep(max(0.0, stopped + 4.5 * n / len(ids) - time.monotonic()))
            run.open([message_id])
        run.wait_effects(ids)
        time.sleep(max(0.0, 5.0 - (time.monotonic() - stopped)))  # the fault: 5 s in all
    return [f"redis-server stopped for {time.monotonic() - stopped:.1f}s while jobs finished"]


SCENARIOS: dict[str, tuple[type[OwnServer], Callable[[StoreFaultRun, list[str]], list[str]]]] = {
    "pg-terminate-x3": (OwnPostgres, pg_terminate_x3),
    "pg-restart": (OwnPostgres, restart_during),
    "redis-restart": (OwnRedis, restart_during),
    "redis-stop-5s": (OwnRedis, redis_stop_5s),
}


def run_scenario(name: str, tmp: Path, messages: int = 12) -> Result:
    """One scenario on its own server, dev server and receiver; its :class:`Result`."""
    kind, fault = SCENARIOS[name]
    with kind(tmp) as server, DevServer() as dev, dev.client() as mq:
        run = StoreFaultRun(tmp, server, dev, mq)
        try:
            run.start()
            return run.run(name, messages, fault)
        finally:
            run.stop()
