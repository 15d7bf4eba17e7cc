"""The fault run: pushes through crashes, restarts and failing acks, then an account of every one.

Processes, all on 127.0.0.1:

- the dev server, ``python -m ironpush.devserver --db FILE`` (restarted once with ``kill -9``);
- the fault proxy (:mod:`tests.faults.proxy`) in front of the dev server's API, through which
  the receiver sends its acks: bursts of 503s, connections dropped before the ack arrives, and
  connections dropped after it took effect (the answer is lost);
- the receiver, ``uvicorn tests.faults.fault_app:app`` with an SQLite dedupe store and outbox
  (``kill -9``'d at random points and restarted on the same port);
- this harness, which posts the messages, injects the faults when the run reaches random points
  of its progress, waits for the pushes to finish, and checks every message: its push status is
  ``deleted`` (or it is reported on the error queue), and its side effect happened exactly once.

``run()`` is used by ``test_fault_run.py`` (a short run in CI) and ``fault_run.py`` (the full
2,000-message run that prints the figures for RELIABILITY.md).
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from ironpush.client import IronMQ
from ironpush.client.models import ErrorReport, PushStatus, Subscriber
from ironpush.client.retry import RetryPolicy
from ironpush.signing import push_secret

from . import scenario as app
from .proxy import BurstPlan, FaultProxy

ROOT = Path(__file__).resolve().parents[2]
KEY = "fault-run-key-0123456789abcdef"


@dataclass
class Figures:
    messages: int = 0
    receiver_kills: int = 0
    devserver_restarts: int = 0
    ack_faults_injected: dict[str, int] = field(default_factory=dict)
    deliveries: int = 0
    redeliveries: int = 0
    handler_runs: int = 0
    duplicates_suppressed: int = 0
    late_acks: int = 0
    deleted: int = 0
    in_error_queue: int = 0
    lost: int = 0
    side_effects: int = 0
    missing_side_effects: int = 0
    duplicate_side_effects: int = 0
    reexecuted_after_kill: int = 0
    seconds: float = 0.0

    def lines(self) -> list[str]:
        return [f"{name:>24}: {value}" for name, value in asdict(self).items()]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_until(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.05)


def http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


class Process:
    """A server subprocess that can be killed with SIGKILL and started again on its port."""

    def __init__(self, argv: list[str], env: dict[str, str], health: str) -> None:
        self.argv, self.env, self.health = argv, env, health
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        # stdout is the servers' banner; stderr (warnings, errors) stays visible.
        self.proc = subprocess.Popen(self.argv, env=self.env, cwd=ROOT, stdout=subprocess.DEVNULL)
        wait_until(lambda: self._alive() and http_ok(self.health), 60, " ".join(self.argv[:3]))

    def _alive(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.argv[:3]} exited with {self.proc.returncode}")
        return True

    def kill9(self) -> int:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        return self.proc.pid

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)


class FaultRun:
    def __init__(self, workdir: Path, *, seed: int, log: Callable[[str], None]) -> None:
        self.workdir = workdir
        self.rng = random.Random(seed)
        self.log = log
        self.dev_port, self.recv_port = free_port(), free_port()
        self.dev_url = f"http://127.0.0.1:{self.dev_port}"
        self.recv_url = f"http://127.0.0.1:{self.recv_port}"
        self.ledger_path = workdir / "ledger.db"
        self.figures = Figures()
        self.health_totals: Counter[str] = Counter()
        self.killed_pids: set[int] = set()
        self.devserver = Process(
            [
                sys.executable,
                "-m",
                "ironpush.devserver",
                "--port",
                str(self.dev_port),
                "--db",
                str(workdir / "dev.db"),
                "--push-timeout",
                "2",
                "--log-level",
                "warning",
            ],
            {**os.environ, "HOME": str(workdir)},
            self.dev_url + "/_dev/health",
        )
        self.proxy = FaultProxy(self.dev_port, BurstPlan(period=8, burst=3, seed=seed))
        self.receiver: Process | None = None
        self.mq = IronMQ(
            cloud=self.dev_url,
            project_id="dev",
            token="dev",
            retry=RetryPolicy(attempts=8, backoff=0.2, max_backoff=2.0),
        )

    # --- processes ------------------------------------------------------------------------

    def start(self) -> None:
        self.devserver.start()
        self.proxy.start()
        env = {
            **os.environ,
            "HOME": str(self.workdir),
            "PYTHONPATH": str(ROOT),
            "FAULT_STORE": str(self.workdir / "receiver.db"),
            "FAULT_LEDGER": str(self.ledger_path),
            "IRONPUSH_SECRET_KEYS": KEY,
            "IRONMQ_EMULATOR_HOST": self.proxy.url,
        }
        self.receiver = Process(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "tests.faults.fault_app:app",
                "--port",
                str(self.recv_port),
                "--log-level",
                "warning",
            ],
            env,
            self.recv_url + "/ironmq/_health",
        )
        self.receiver.start()

    def stop(self) -> None:
        if self.receiver is not None:
            self._read_health()
            self.receiver.stop()
        self.proxy.stop()
        self.devserver.stop()
        self.mq.close()

    def _read_health(self) -> None:
        try:
            counters = httpx.get(self.recv_url + "/ironmq/_health", timeout=2).json()["counters"]
        except (httpx.TransportError, ValueError, KeyError):
            return
        for name in ("duplicates", "late_acks"):
            self.health_totals[name] += int(counters.get(name, 0))

    def kill_receiver(self) -> None:
        assert self.receiver is not None
        self._read_health()  # the counters of this incarnation, read just before it dies
        self.killed_pids.add(self.receiver.kill9())
        self.figures.receiver_kills += 1
        self.log(f"  kill -9 receiver ({self.figures.receiver_kills}) at {self.progress():.0%}")
        time.sleep(self.rng.uniform(0.1, 0.8))  # the chaos: down for a while, pushes fail
        self.receiver.start()

    def restart_devserver(self) -> None:
        self.devserver.kill9()
        self.figures.devserver_restarts += 1
        self.log(f"  kill -9 dev server, restart on the same --db at {self.progress():.0%}")
        self.devserver.start()

    # --- the run --------------------------------------------------------------------------

    def subscribe(self) -> None:
        for route, queue in (("/now", app.QUEUE_NOW), ("/later", app.QUEUE_LATER)):
            secret = push_secret(queue, app.SUBSCRIBER, [KEY])
            subscriber = Subscriber(
                app.SUBSCRIBER, f"{self.recv_url}/ironmq{route}", {"X-Ironpush-Secret": secret}
            )
            self.mq.create_queue(
                queue,
                type="multicast",
                subscribers=[subscriber],
                retries=app.RETRIES,
                retries_delay=app.RETRIES_DELAY,
                error_queue=app.ERROR_QUEUE,
            )

    def post(self, messages: int) -> dict[str, str]:
        ids: dict[str, str] = {}
        for start in range(0, messages, 100):
            count = min(100, messages - start)
            for queue in (app.QUEUE_NOW, app.QUEUE_LATER):
                half = count // 2 if queue == app.QUEUE_NOW else count - count // 2
                bodies = [json.dumps({"n": start + i}) for i in range(half)]
                if bodies:
                    ids.update(dict.fromkeys(self.mq.queue(queue).post(*bodies), queue))
        return ids

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        if not self.ledger_path.exists():
            return []
        with sqlite3.connect(self.ledger_path, timeout=30) as db:
            try:
                return db.execute(sql).fetchall()
            except sqlite3.OperationalError:  # the receiver has not created its tables yet
                return []

    def effects(self) -> dict[str, int]:
        """Message id → pid of the process whose side effect was recorded (at most one)."""
        return {str(m): int(pid) for m, pid in self.query("SELECT message_id, pid FROM effects")}

    def progress(self) -> float:
        [(done,)] = self.query("SELECT COUNT(*) FROM effects") or [(0,)]
        return int(done) / max(1, self.figures.messages)

    def chaos(self, kills: int, restarts: int, stop: threading.Event) -> None:
        events = ["kill"] * kills + ["restart"] * restarts
        points = sorted(self.rng.uniform(0.05, 0.85) for _ in events)
        self.rng.shuffle(events)
        for point, event in zip(points, events, strict=True):
            while self.progress() < point and not stop.is_set():
                time.sleep(0.02)
            if stop.is_set():
                return
            if event == "kill":
                self.kill_receiver()
            else:
                self.restart_devserver()

    def finished(self, ids: dict[str, str]) -> bool:
        try:
            return all(self.mq.queue(q).size() == 0 for q in (app.QUEUE_NOW, app.QUEUE_LATER))
        except Exception:  # the dev server may be restarting
            return False

    def error_reports(self) -> dict[str, ErrorReport]:
        reports: dict[str, ErrorReport] = {}
        errors = self.mq.queue(app.ERROR_QUEUE)
        try:
            while batch := errors.reserve(max=100, timeout=60):
                for message in batch:
                    report = ErrorReport.parse(message.body)
                    reports[report.source_msg_id] = report
                errors.delete_multiple(*batch)
        except Exception as exc:  # no error queue: IronMQ creates it with its first report
            if "not found" not in str(exc).lower():
                raise
        return reports

    def account(self, ids: dict[str, str]) -> None:
        f = self.figures
        effects = self.effects()
        reports = self.error_reports()
        statuses: dict[str, list[PushStatus]] = {
            m: self.mq.queue(q).get_message_push_statuses(m) for m, q in ids.items()
        }
        for message_id, sts in statuses.items():
            f.deliveries += sum(s.tries or 0 for s in sts)
            if sts and all(s.status == "deleted" for s in sts):
                f.deleted += 1
                f.missing_side_effects += message_id not in effects
            elif message_id in reports and all(
                s.msg or s.code for s in reports[message_id].subscribers
            ):
                f.in_error_queue += 1
            else:
                f.lost += 1
                self.log(f"  LOST {message_id}: {sts} report={reports.get(message_id)}")
        f.side_effects = len(effects)
        # A second execution is only legitimate across a crash: the first one ran in a process
        # that was then killed before the router could record the message as handled.
        for message_id, pid in self.query("SELECT message_id, pid FROM reexecutions"):
            first = effects.get(message_id)
            if first in self.killed_pids and first != pid:
                f.reexecuted_after_kill += 1
            else:
                f.duplicate_side_effects += 1
                self.log(f"  DUPLICATE {message_id}: first pid {first}, again in pid {pid}")
        f.redeliveries = f.deliveries - f.messages
        f.handler_runs = len(self.query("SELECT 1 FROM runs"))
        f.duplicates_suppressed = self.health_totals["duplicates"]
        f.late_acks = self.health_totals["late_acks"]
        f.ack_faults_injected = {k.value: v for k, v in self.proxy.counts.items()}


def run(
    messages: int,
    workdir: Path,
    *,
    kills: int = 3,
    devserver_restarts: int = 1,
    seed: int = 1,
    timeout: float = 300.0,
    log: Callable[[str], None] = print,
) -> Figures:
    """Run the whole scenario and return its figures (see the module docstring)."""
    started = time.monotonic()
    fault = FaultRun(workdir, seed=seed, log=log)
    fault.figures.messages = messages
    stop = threading.Event()
    try:
        fault.start()
        fault.subscribe()
        ids = fault.post(messages)
        log(f"posted {len(ids)} messages")
        chaos = threading.Thread(target=fault.chaos, args=(kills, devserver_restarts, stop))
        chaos.start()
        try:
            wait_until(
                lambda: not chaos.is_alive() and fault.finished(ids),
                timeout,
                "every push to finish",
            )
        finally:
            stop.set()
            chaos.join()
        fault.account(ids)
    finally:
        stop.set()
        fault.stop()
    fault.figures.seconds = round(time.monotonic() - started, 1)
    return fault.figures
