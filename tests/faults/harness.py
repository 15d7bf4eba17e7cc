"""The fault run: pushes through crashes and restarts, then an account of every message.

Processes (see RELIABILITY.md, "Fault run"):

- the dev server, ``python -m ironpush.devserver --db FILE`` (``kill -9``'d and restarted once);
- the fault proxy (:mod:`.proxy`) in front of the dev server's API, through which the receivers
  send their acks: bursts of 503s, connections dropped before the ack arrives, and connections
  dropped after it took effect (the answer is lost);
- the receivers (:mod:`.fault_app` under uvicorn), with the store ``store`` names:
  ``sqlite``: one instance on 127.0.0.1 with an SQLite file; ``redis`` / ``postgres``: three
  instances on three hosts (network namespaces, :mod:`multihost.cluster`) behind a round-robin
  load balancer, sharing a real Redis or PostgreSQL server that the run starts for itself
  (:mod:`.servers`: it restarts that one, never the shared servers of the machine);
- this harness: it posts the messages at a steady rate (traffic, not one burst), injects the
  faults at random moments while it does (``kill -9`` of instances, a restart of the store's
  server, the dev server restart), waits for the queues to drain — every wait with a deadline,
  and a report of what it saw when it gives up — and checks every message.

``run()`` is used by ``test_fault_run.py`` (200 messages in CI) and ``fault_run.py`` (the full
2,000-message run that prints the figures for RELIABILITY.md).
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from multihost.cluster import Cluster
from support import free_port, wait_until

from ironpush._signing import push_secret
from ironpush.client import IronMQ
from ironpush.client._models import ErrorReport, PushStatus, Subscriber
from ironpush.client._retry import RetryPolicy

from . import scenario as app
from . import services
from .processes import Process, python_path
from .proxy import BurstPlan, FaultProxy
from .servers import OwnPostgres, OwnRedis, OwnServer

KEY = "fault-run-key-0123456789abcdef-0123"
# The receiver's log lines that name a message whose push was answered 503 because the store
# failed (a quick handler that ran but could not be recorded: IronMQ pushes it again and it runs
# again). A deferred job whose completion could not be recorded is not one of them: that
# completion is retried until recorded, so its job never runs again.
STORE_FAILURE_MARKERS = ("store unavailable for message ",)
PROJECT = "dev"


@dataclass
class Figures:
    store: str = ""
    handlers: str = ""
    network: str = ""
    messages: int = 0
    instance_kills: int = 0
    store_restarts: int = 0
    store_down_seconds: float = 0.0
    store_restarts_seen: int = 0  # seen by the watcher on the run's own server
    devserver_restarts: int = 0
    ack_faults_injected: dict[str, int] = field(default_factory=dict)
    deliveries: int = 0
    redeliveries: int = 0
    pushes_by_host: dict[str, int] = field(default_factory=dict)
    redeliveries_to_another_host: int = 0
    answers: dict[str, int] = field(default_factory=dict)
    handler_runs: int = 0
    handler_runs_by_host: dict[str, int] = field(default_factory=dict)
    duplicates_suppressed: int = 0
    late_acks: int = 0
    deleted: int = 0
    in_error_queue: int = 0
    lost: int = 0
    left_reserved: int = 0
    side_effects: int = 0
    missing_side_effects: int = 0
    duplicate_side_effects: int = 0
    reexecuted_after_kill: int = 0
    reexecuted_after_store_failure: int = 0
    seconds: float = 0.0

    def lines(self) -> list[str]:
        return [f"{name:>28}: {value}" for name, value in asdict(self).items()]

    def ok(self) -> bool:
        return (
            self.lost == 0
            and self.in_error_queue == 0
            and self.missing_side_effects == 0
            and self.duplicate_side_effects == 0
            and self.left_reserved == 0
            and self.deleted == self.messages
        )


class GaveUp(AssertionError):
    """A wait ran out; the message says what the run saw."""


class FaultRun:
    def __init__(
        self, workdir: Path, *, store: str, seed: int, kind: str, log: Callable[[str], None]
    ) -> None:
        self.workdir = workdir
        self.store_kind = store
        self.kind = kind
        self.rng = random.Random(seed)
        self.seed = seed
        self.log = log
        self.multi = store != "sqlite"
        # The run's own store server: the one it restarts (never a shared one).
        self.server: OwnServer | None = None
        if self.multi:
            self.server = OwnRedis(workdir) if store == "redis" else OwnPostgres(workdir)
        self.service = self.server.service if self.server is not None else None
        self.dev_port = free_port()
        self.dev_url = f"http://127.0.0.1:{self.dev_port}"
        self.ledger_path = workdir / "ledger.db"
        self.figures = Figures(store=store)
        self.health_totals: Counter[str] = Counter()
        self.killed_pids: set[int] = set()
        self.store_restarted: tuple[float, float] | None = None
        self.ids: dict[str, str] = {}  # message id -> queue, as posted
        self.dev_lock = threading.Lock()
        self.devserver = Process(
            [
                sys.executable,
                "-m",
                "ironpush.devserver",
                "--port",
                str(self.dev_port),
                "--db",
                str(workdir / "dev.db"),
                "--log-level",
                "warning",
            ],
            {**os.environ, "HOME": str(workdir)},
            self.dev_url + "/_dev/health",
            name="devserver",
        )
        self.proxy = FaultProxy(self.dev_port, BurstPlan(period=8, burst=3, seed=seed))
        self.cluster: Cluster | None = None
        self.single: Process | None = None
        self.store_url: str | None = None
        self.watcher: services.RestartWatcher | None = None
        self.mq = IronMQ(
            cloud=self.dev_url,
            project_id=PROJECT,
            token="dev",
            retry=RetryPolicy(attempts=8, backoff=0.2, max_backoff=2.0),
        )

    # --- processes ------------------------------------------------------------------------

    def start(self) -> None:
        if self.server is not None:
            self.server.start()
        if self.service is not None:
            self.service.require()
            interval = 0.1 if self.service.kind == "redis" else 0.25
            self.watcher = services.RestartWatcher(self.service, interval).start()
        self.devserver.start()
        self.proxy.start()
        env = {
            "HOME": str(self.workdir),
            "FAULT_LEDGER": str(self.ledger_path),
            "IRONPUSH_SECRET_KEYS": KEY,
            "FAULT_KIND": self.kind,
        }
        if self.service is None:
            self._start_single(env)
        else:
            self._start_cluster(env, self.service)

    def _start_single(self, env: dict[str, str]) -> None:
        port = free_port()
        env = {
            **os.environ,
            **env,
            "PYTHONPATH": python_path(),
            "FAULT_STORE": str(self.workdir / "receiver.db"),
            "FAULT_MAX_DEFERRED": str(app.MAX_DEFERRED_TOTAL),
            "IRONMQ_EMULATOR_HOST": self.proxy.url,
        }
        argv = [sys.executable, "-m", "uvicorn", "faults.fault_app:app", "--port", str(port)]
        argv += ["--log-level", "warning"]
        url = f"http://127.0.0.1:{port}"
        self.single = Process(argv, env, url + "/ironmq/_health", name="receiver")
        self.single.start()
        self.subscriber_base = url
        self.figures.network = "one host (127.0.0.1)"

    def _start_cluster(self, env: dict[str, str], service: services.Service) -> None:
        relays = {"store": service.port, "acks": self.proxy.port}

        def instance_env(cluster: Cluster) -> dict[str, str]:
            # The instances reach the store and the dev server through the gateway's relays.
            self.store_url = store_url(service, cluster.service_url("store"), self.seed)
            return {
                **env,
                "FAULT_STORE": self.store_url,
                "IRONMQ_EMULATOR_HOST": f"http://{cluster.service_url('acks')}",
                "FAULT_MAX_DEFERRED": str(app.MAX_DEFERRED_TOTAL // 3),
            }

        cluster = Cluster(
            self.workdir, hosts=3, app="faults.fault_app:app", env=instance_env, relays=relays
        )
        self.cluster = cluster
        cluster.start()
        self.subscriber_base = cluster.balancer_url
        self.figures.network = cluster.describe()

    def instance_processes(self) -> list[Process]:
        if self.cluster is not None:
            return self.cluster.instances
        return [self.single] if self.single is not None else []

    def stop(self) -> None:
        self._read_health()
        if self.watcher is not None:
            self.watcher.stop()
        if self.cluster is not None:
            self.cluster.stop()
        if self.server is not None:
            self.server.close()  # its keys or schema go with it
        if self.single is not None:
            self.single.cleanup()
        self.proxy.stop()
        self.devserver.cleanup()
        self.mq.close()

    def health_urls(self) -> list[str]:
        if self.cluster is not None:
            return [f"{self.cluster.direct_url(i)}/ironmq/_health" for i in (1, 2, 3)]
        return [f"{self.subscriber_base}/ironmq/_health"]

    def _read_health(self, only: int | None = None) -> None:
        for n, url in enumerate(self.health_urls(), 1):
            if only is not None and n != only:
                continue
            try:
                counters = httpx.get(url, timeout=2).json()["counters"]
            except (httpx.HTTPError, ValueError, KeyError):
                continue
            for name in ("duplicates", "late_acks"):
                self.health_totals[name] += int(counters.get(name, 0))

    def kill_instance(self) -> None:
        processes = self.instance_processes()
        n = self.rng.randrange(len(processes)) + 1
        self._read_health(only=n)  # the counters of this incarnation, read just before it dies
        self.killed_pids.add(processes[n - 1].kill9())
        self.figures.instance_kills += 1
        self.log(
            f"  kill -9 instance {n} ({self.figures.instance_kills}) at {self.progress():.0%}"
            f" ({clock()})"
        )
        time.sleep(self.rng.uniform(0.1, 0.8))  # the chaos: down for a while
        processes[n - 1].start()

    def restart_store(self) -> None:
        assert self.service is not None
        self.log(f"  restart {self.service.kind} server at {self.progress():.0%}")
        started = time.time()
        down = self.service.restart(down_for=self.rng.uniform(0.5, 1.5))
        self.store_restarted = (started, time.time())
        self.figures.store_restarts += 1
        self.figures.store_down_seconds = round(down, 1)

    def restart_devserver(self) -> None:
        with self.dev_lock:
            self.devserver.kill9()
            self.figures.devserver_restarts += 1
            self.log(f"  kill -9 dev server, restart on the same --db at {self.progress():.0%}")
            self.devserver.start()

    # --- the run --------------------------------------------------------------------------

    def subscribe(self) -> None:
        for route, queue in app.ROUTES.items():
            secret = push_secret(queue, app.SUBSCRIBER, [KEY])
            subscriber = Subscriber(
                app.SUBSCRIBER,
                f"{self.subscriber_base}/ironmq{route}",
                {"X-Ironpush-Secret": secret},
            )
            self.mq.create_queue(
                queue,
                type="multicast",
                subscribers=[subscriber],
                retries=app.RETRIES,
                retries_delay=app.RETRIES_DELAY,
                error_queue=app.ERROR_QUEUE,
            )

    def post_steadily(self, messages: int, rate: float, stop: threading.Event) -> None:
        """Post ``messages`` at ``rate`` per second (a third to each queue), as traffic comes:
        not one burst, so that the faults below land on work in progress. Paused while the dev
        server restarts (a post whose answer is lost would leave a message we cannot name)."""
        batch = 15
        started = time.monotonic()
        for start in range(0, messages, batch):
            due = started + start / rate
            if stop.wait(max(0.0, due - time.monotonic())):
                return
            count = min(batch, messages - start)
            for k, queue in enumerate(app.QUEUES):
                share = count // len(app.QUEUES) + (1 if k < count % len(app.QUEUES) else 0)
                bodies = [json.dumps({"n": start + i, "q": queue}) for i in range(share)]
                if bodies:
                    with self.dev_lock:
                        posted = self.mq.queue(queue).post(*bodies)
                    self.ids.update(dict.fromkeys(posted, queue))

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        if not self.ledger_path.exists():
            return []
        with sqlite3.connect(self.ledger_path, timeout=60) as db:
            try:
                return db.execute(sql).fetchall()
            except sqlite3.OperationalError:  # the receivers have not created the tables yet
                return []

    def effects(self) -> dict[str, tuple[int, float]]:
        """Message id → (pid, time) of the side effect recorded (at most one per message)."""
        rows = self.query("SELECT message_id, pid, t FROM effects")
        return {str(m): (int(pid), float(t)) for m, pid, t in rows}

    def progress(self) -> float:
        [(done,)] = self.query("SELECT COUNT(*) FROM effects") or [(0,)]
        return int(done) / max(1, self.figures.messages)

    def chaos(self, events: list[str], span: float, stop: threading.Event) -> None:
        """Each fault at a random moment of the posting ``span`` (in order; one that is due
        while the previous one is still under way follows it at once)."""
        started = time.monotonic()
        moments = sorted(self.rng.uniform(0.1, 0.9) * span for _ in events)
        self.rng.shuffle(events)
        actions = {
            "kill": self.kill_instance,
            "store": self.restart_store,
            "dev": self.restart_devserver,
        }
        for moment, event in zip(moments, events, strict=True):
            if stop.wait(max(0.0, started + moment - time.monotonic())):
                return
            actions[event]()

    def sizes(self) -> dict[str, int] | None:
        try:
            return {q: self.mq.queue(q).size() for q in app.QUEUES}
        except Exception:  # the dev server may be restarting
            return None

    def drained(self) -> bool:
        sizes = self.sizes()
        return sizes is not None and not any(sizes.values())

    def dev_state(self) -> dict[str, Any]:
        try:
            state = httpx.get(self.dev_url + "/_dev/state", timeout=5).json()
        except (httpx.HTTPError, ValueError):
            return {}
        queues = state.get("projects", {}).get(PROJECT, {})
        return dict(queues) if isinstance(queues, dict) else {}

    def report(self) -> str:
        """What the run sees right now (quoted when a wait gives up)."""
        lines = [f"progress: {self.progress():.1%} of {self.figures.messages} side effects"]
        lines.append(f"queue sizes: {self.sizes()}")
        state = self.dev_state()
        lines.append(f"dev server state: {json.dumps(state)[:1500]}")
        for url in self.health_urls():
            try:
                lines.append(f"{url}: {httpx.get(url, timeout=2).text[:600]}")
            except httpx.HTTPError as exc:
                lines.append(f"{url}: {exc!r}")
        if self.cluster is not None:
            answers = Counter(e["status"] for e in self.cluster.balancer_entries())
            lines.append(f"balancer answers so far: {dict(answers)}")
        lines += [p.tail(12) for p in self.instance_processes()]
        lines.append(self.devserver.tail(8))
        return "\n".join(lines)

    def wait_until_drained(self, busy: Callable[[], bool], timeout: float, stall: float) -> None:
        """Wait for the queues to drain; give up at ``timeout`` or after ``stall`` seconds
        without a new side effect or a smaller backlog (a backlog that cannot move)."""
        deadline = time.monotonic() + timeout
        last = (-1.0, -1)
        moved = time.monotonic()

        def drained() -> bool:
            nonlocal last, moved
            if not busy() and self.drained():
                return True
            sizes = self.sizes()
            now_seen = (self.progress(), sum(sizes.values()) if sizes else -1)
            if now_seen != last:
                last, moved = now_seen, time.monotonic()
            now = time.monotonic()
            if now > deadline or (now - moved > stall and not busy()):
                why = "deadline" if now > deadline else f"no progress for {stall:g} s"
                raise GaveUp(f"fault run gave up ({why}); it saw:\n{self.report()}")
            return False

        # Both endings are GaveUp (fault_run.py reports them), raised by the check itself.
        wait_until(drained, float("inf"), "the queues to drain", interval=0.1)

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

    def tries(self, message_id: str) -> str:
        """Every push of a message as the dev server saw it (time, try, status or failure)."""
        try:
            params = {"project": PROJECT, "message_id": message_id}
            data = httpx.get(self.dev_url + "/_dev/deliveries", params=params, timeout=10).json()
        except (httpx.HTTPError, ValueError):
            return "(deliveries unavailable)"
        keep = ("at", "try", "status_code", "msg", "answer", "outcome", "duration_ms")
        return "; ".join(
            ", ".join(f"{k}={v}" for k, v in d.items() if k in keep) for d in data["deliveries"]
        )

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
            elif message_id in reports:
                f.in_error_queue += 1
                self.log(
                    f"  ERROR QUEUE {message_id} ({ids[message_id]}): {self.tries(message_id)}"
                )
            else:
                f.lost += 1
                self.log(f"  LOST {message_id}: {sts}")
        state = self.dev_state()
        f.left_reserved = sum(
            int(q.get("reserved", 0)) + int(q.get("pushing", 0))
            for name, q in state.items()
            if name in app.QUEUES
        )
        f.side_effects = len(effects)
        # A second execution is legitimate only across a crash (the first one ran in a process
        # that was then killed before the router could record the message as handled) or a
        # store failure: a restart of a store server that keeps nothing on disk (the run's Redis
        # runs without persistence: it forgets every claim, handled message and queued ack; a
        # PostgreSQL restart forgets nothing, so it excuses nothing), or a quick handler whose
        # completion the store could not record, which the router answers 503 so that IronMQ
        # retries. A deferred job whose completion met the failure is retried until recorded:
        # never an excuse. The idempotency key makes each a no-op; anything else is a
        # duplicate.
        killed = self.killed_pids | (self.cluster.killed_pids if self.cluster else set())
        refused = self._refusals()
        unrecorded_logged = self._store_failures_logged()
        rows = self.query("SELECT message_id, pid, t FROM reexecutions")
        for message_id, pid, when in rows:
            first_pid, first_t = effects.get(message_id, (None, 0.0))
            forgetful = self.store_kind == "redis"  # restarts without persistence
            windows = self.watcher.windows if self.watcher and forgetful else []
            in_restart = any(first_t <= end and when >= begin for begin, end in windows)
            unrecorded = message_id in unrecorded_logged or any(
                first_t <= t <= when for t in refused.get(message_id, [])
            )
            if first_pid in killed and first_pid != pid:
                f.reexecuted_after_kill += 1
            elif in_restart or unrecorded:
                f.reexecuted_after_store_failure += 1
            else:
                f.duplicate_side_effects += 1
                self.log(
                    f"  DUPLICATE {message_id}: first pid {first_pid} at {first_t:.3f}, again in "
                    f"pid {pid} at {when:.3f}; pushes: {self._pushes_of(message_id)}"
                )
        f.store_restarts_seen = len(self.watcher.windows) if self.watcher else 0
        f.redeliveries = f.deliveries - f.messages
        f.handler_runs = len(self.query("SELECT 1 FROM runs"))
        f.handler_runs_by_host = dict(self.query("SELECT host, COUNT(*) FROM runs GROUP BY host"))
        f.duplicates_suppressed = self.health_totals["duplicates"]
        f.late_acks = self.health_totals["late_acks"]
        f.ack_faults_injected = {k.value: v for k, v in self.proxy.counts.items()}
        if self.cluster is not None:
            self._account_balancer(self.cluster.balancer_entries())

    def _store_failures_logged(self) -> set[str]:
        """Messages the receivers logged a store failure for (the completion of a handler or a
        job could not be recorded, or the push was refused because the store failed)."""
        found: set[str] = set()
        for process in self.instance_processes():
            for line in process.log_text().splitlines():
                for marker in STORE_FAILURE_MARKERS:
                    if marker in line:
                        found.add(line.split(marker, 1)[1].split(":", 1)[0].split()[0])
        return found

    def _refusals(self) -> dict[str, list[float]]:
        """Message id → times the load balancer saw it answered 500 or 503 (multi-host runs)."""
        out: dict[str, list[float]] = {}
        for entry in self.cluster.balancer_entries() if self.cluster else []:
            if entry["status"] in (500, 503) and entry["message_id"]:
                out.setdefault(entry["message_id"], []).append(float(entry["t"]))
        return out

    def _pushes_of(self, message_id: str) -> list[tuple[float, Any, Any]]:
        entries = self.cluster.balancer_entries() if self.cluster else []
        return [(e["t"], e["host"], e["status"]) for e in entries if e["message_id"] == message_id]

    def _account_balancer(self, entries: list[dict[str, Any]]) -> None:
        f = self.figures
        pushes = [e for e in entries if e["method"] == "POST" and e["message_id"]]
        f.pushes_by_host = dict(Counter(f"host-{e['host']}" for e in pushes))
        f.answers = {str(k): v for k, v in sorted(Counter(e["status"] for e in pushes).items())}
        previous: dict[str, int] = {}
        for entry in pushes:
            before = previous.get(entry["message_id"])
            if before is not None and entry["host"] != before:
                f.redeliveries_to_another_host += 1
            previous[entry["message_id"]] = entry["host"]


def clock() -> str:
    """Wall-clock time as the dev server's deliveries show it (to line faults up with tries)."""
    now = time.time()
    return time.strftime("%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"


def store_url(service: services.Service, address: str, seed: int) -> str:
    """The store URL the instances use: the service through the gateway, in a namespace of its
    own (a Redis key prefix / a PostgreSQL schema) so runs never see each other's keys."""
    host, _, port = address.rpartition(":")
    url = service.url_via(host)
    url = url.replace(f":{service.port}", f":{port}", 1)
    namespace = f"ironpush_fault_{os.getpid()}_{seed}_{uuid.uuid4().hex[:6]}"
    separator = "&" if "?" in url else "?"
    key = "prefix" if service.kind == "redis" else "schema"
    return f"{url}{separator}{key}={namespace}"


def run(
    messages: int,
    workdir: Path,
    *,
    store: str = "redis",
    kills: int = 3,
    store_restarts: int = 1,
    devserver_restarts: int = 1,
    seed: int = 1,
    kind: str = "sync",
    rate: float = 25.0,
    timeout: float = 300.0,
    stall: float = 60.0,
    log: Callable[[str], None] = print,
) -> Figures:
    """Run the whole scenario and return its figures (see the module docstring)."""
    started = time.monotonic()
    fault = FaultRun(workdir, store=store, seed=seed, kind=kind, log=log)
    fault.figures.messages = messages
    fault.figures.handlers = kind
    if store == "sqlite":
        store_restarts = 0  # a file has no server to restart
    stop = threading.Event()
    events = ["kill"] * kills + ["store"] * store_restarts + ["dev"] * devserver_restarts
    span = messages / rate
    try:
        fault.start()
        fault.subscribe()
        log(f"posting {messages} messages over {span:g} s ({fault.figures.network}) at {clock()}")
        threads = [
            threading.Thread(target=fault.post_steadily, args=(messages, rate, stop)),
            threading.Thread(target=fault.chaos, args=(events, span, stop)),
        ]
        for thread in threads:
            thread.start()
        try:
            fault.wait_until_drained(lambda: any(t.is_alive() for t in threads), timeout, stall)
        finally:
            stop.set()
            for thread in threads:
                thread.join()
        wait_until(
            lambda: fault.dev_state() != {},
            30,
            "the dev server's state",
            report=fault.report,
        )
        fault.account(fault.ids)
    finally:
        stop.set()
        fault.stop()
    fault.figures.seconds = round(time.monotonic() - started, 1)
    return fault.figures
