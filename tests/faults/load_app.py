"""The receiver under load: the app a subprocess serves, and the scenarios that drive it.

**The app** (``python -m tests.faults.load_app --fd N`` from the repository root, serving the
already-bound listening socket ``N`` with uvicorn, one worker): a :class:`PushRouter` mounted at
``/ironmq`` whose one route answers every push with ``Defer(job)``. Configured by environment:

- ``LOAD_MAX_DEFERRED`` (router ``max_deferred``, default 100);
- ``LOAD_JOB_MODE``: ``sleep`` (the job takes ``LOAD_JOB_SECONDS`` +/- 50 %) or ``hold`` (the
  job waits until ``POST /control/release``; at most ``LOAD_HOLD_MAX`` seconds);
- ``LOAD_JOB_KIND``: ``async`` (a task) or ``sync`` (a worker thread, like ``def`` jobs);
- ``LOAD_STORE``: ``memory`` (default) or an SQLite path; ``LOAD_MAX_ENTRIES`` caps the memory
  store (default: the library's 100,000);
- ``LOAD_OUTBOX_CONCURRENCY`` (``OutboxSettings.concurrency``), ``LOAD_ACK_BACKEND`` (``httpx``
  or ``lean``; default: the client the router builds for itself);
- ``IRONMQ_EMULATOR_HOST``: where acks go (an :class:`~tests.faults.ack_sink.AckSink`).

``GET /control/stats`` reports the process's asyncio tasks, threads and dedupe entries.

**The scenarios** (run in the test's or the benchmark's event loop, against that subprocess):

- :func:`run_sustained`: ``connections`` connections push unique messages for ``duration``
  seconds (503'd pushes are pushed again after ``retry_delay`` with a new reservation, like
  IronMQ; a share of 202'd ones are redelivered while their job may still run), then the
  pushes left are finished and every ack awaited. Samples the receiver's RSS and ``/_health``.
- :func:`run_inflight`: fills the deferred capacity with held jobs (``jobs`` pushes, all 202),
  checks that the next pushes get 503, measures RSS at 0 and at ``jobs`` in flight and while
  they are held, releases them and checks every ack; ``cycles`` times.

Both return a result whose ``problems()`` lists every property that failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx

from ironpush.receiver.deferred import OutboxSettings
from ironpush.receiver.outcomes import Defer, PushMessage
from ironpush.receiver.router import PushRouter

QUEUE = "load"
SUBSCRIBER = "worker"
PATH = "/jobs"
MOUNT = "/ironmq"
KEYS = ["load-test-key"]
ROOT = Path(__file__).resolve().parents[2]
BUSY_BODY = b'{"status":"busy"}'
_CLEAN_EXITS = (0, -signal.SIGTERM, None)


# ============================================================================ the app


def make_router(handler: Callable[[PushMessage], Any] | None = None, **options: Any) -> PushRouter:
    """The load app's router (the driver builds one without a handler to make valid pushes)."""
    router = PushRouter(secret_keys=KEYS, **options)
    router.add_route(PATH, handler or _no_handler, queue=QUEUE, subscriber=SUBSCRIBER)
    return router


async def _no_handler(msg: PushMessage) -> None:
    raise AssertionError("the driver's router never handles pushes")


class _Gate:
    def __init__(self) -> None:
        self.aio = asyncio.Event()
        self.thread = threading.Event()


def build_app() -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Mount, Route

    from ironpush.receiver.stores import MemoryStore

    env = os.environ
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    mode = env.get("LOAD_JOB_MODE", "sleep")
    kind = env.get("LOAD_JOB_KIND", "async")
    seconds = float(env.get("LOAD_JOB_SECONDS", "0.2"))
    hold_max = float(env.get("LOAD_HOLD_MAX", "300"))
    store_spec = env.get("LOAD_STORE", "memory")
    store: Any
    if store_spec == "memory":
        store = MemoryStore(max_entries=int(env.get("LOAD_MAX_ENTRIES", "100000")))
    else:
        store = store_spec
    jobs = Counter[str]()
    # The gate is picked when the push is handled, so a release frees exactly the jobs of the
    # pushes answered before it (a job thread that starts late still waits on its own gate).
    gate = [_Gate()]

    async def async_job(message_id: str, gate: _Gate) -> None:
        jobs["started"] += 1
        if mode == "hold":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(gate.aio.wait(), hold_max)
        else:
            await asyncio.sleep(seconds * random.uniform(0.5, 1.5))
        jobs["done"] += 1

    def sync_job(message_id: str, gate: _Gate) -> None:
        jobs["started"] += 1  # Counter updates are atomic enough under the GIL for a report
        if mode == "hold":
            gate.thread.wait(hold_max)
        else:
            time.sleep(seconds * random.uniform(0.5, 1.5))
        jobs["done"] += 1

    job = sync_job if kind == "sync" else async_job

    async def handle(msg: PushMessage) -> Defer:
        return Defer(job, msg.id, gate[0])

    options: dict[str, Any] = {}
    if env.get("LOAD_OUTBOX_CONCURRENCY"):
        options["outbox"] = OutboxSettings(concurrency=int(env["LOAD_OUTBOX_CONCURRENCY"]))
    if env.get("LOAD_ACK_BACKEND"):  # default: the client the router builds for itself
        from ironpush.client import AsyncIronMQ

        options["client"] = AsyncIronMQ(backend=env["LOAD_ACK_BACKEND"])
    router = make_router(
        handle, max_deferred=int(env.get("LOAD_MAX_DEFERRED", "100")), store=store, **options
    )

    async def release(request: Request) -> JSONResponse:
        released, gate[0] = gate[0], _Gate()
        released.aio.set()
        released.thread.set()
        return JSONResponse({"released": True})

    async def stats(request: Request) -> JSONResponse:
        rows = getattr(router.store, "_rows", None)  # MemoryStore internals: a test-only peek
        return JSONResponse(
            {
                "tasks": len(asyncio.all_tasks()),
                "threads": threading.active_count(),
                "store_entries": len(rows) if rows is not None else None,
                "jobs": dict(jobs),
            }
        )

    return Starlette(
        routes=[
            Mount(MOUNT, app=router),
            Route("/control/release", release, methods=["POST"]),
            Route("/control/stats", stats),
        ],
        lifespan=router.lifespan,
    )


def __getattr__(name: str) -> Any:
    # ``app`` is built on first access, so the driver can import this module for its helpers
    # without building a second app (uvicorn's "module:app" works the same way).
    if name == "app":
        app = globals()["app"] = build_app()
        return app
    raise AttributeError(name)


def main() -> None:
    import uvicorn

    fd = int(sys.argv[sys.argv.index("--fd") + 1])
    sock = socket.socket(fileno=fd)
    config = uvicorn.Config(
        build_app(),
        log_level="info",  # startup/shutdown lines: the test checks the shutdown was graceful
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=5,
        backlog=2048,
    )
    threading.Thread(target=_stop_when_orphaned, args=(os.getppid(),), daemon=True).start()
    uvicorn.Server(config).run(sockets=[sock])


def _stop_when_orphaned(parent: int) -> None:
    # A driver killed by a timeout cannot stop us: shut down (gracefully) once it is gone.
    while os.getppid() == parent:
        time.sleep(1.0)
    os.kill(os.getpid(), signal.SIGTERM)


# ============================================================================ the process


class ReceiverProcess:
    """The load app in a subprocess on a socket bound here (no free-port race)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.proc: asyncio.subprocess.Process | None = None
        self.port = 0
        self.url = ""
        self._log = tempfile.NamedTemporaryFile(prefix="load-app-", suffix=".log", delete=False)  # noqa: SIM115
        self.http = httpx.AsyncClient(timeout=30.0)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def start(self, timeout: float = 30.0) -> ReceiverProcess:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        sock.listen(2048)
        self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, **self.env}
        env.pop("IRONPUSH_SECRET_KEYS", None)
        try:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "tests.faults.load_app",
                "--fd",
                str(sock.fileno()),
                cwd=ROOT,
                env=env,
                pass_fds=(sock.fileno(),),
                stdout=self._log,
                stderr=subprocess.STDOUT,
            )
        finally:
            sock.close()  # the child has its own copy
        await wait_until(self._healthy, timeout, "the receiver to start")
        return self

    async def _healthy(self) -> bool:
        assert self.proc is not None
        if self.proc.returncode is not None:
            raise RuntimeError(f"receiver exited with {self.proc.returncode}:\n{self.log_text()}")
        try:
            return (await self.http.get(self.url + MOUNT + "/_health")).status_code == 200
        except httpx.TransportError:
            return False

    def rss_kb(self) -> int:
        return _proc_status(self.pid, "VmRSS")

    def hwm_kb(self) -> int:
        return _proc_status(self.pid, "VmHWM")

    def rss_parts_mb(self) -> dict[str, float]:
        """RSS split into anonymous memory (the heap), mapped files and shared memory."""
        return {
            name: mb(_proc_status(self.pid, name)) for name in ("RssAnon", "RssFile", "RssShmem")
        }

    async def health(self) -> dict[str, Any]:
        response = await self.http.get(self.url + MOUNT + "/_health")
        response.raise_for_status()
        return dict(response.json())

    async def stats(self) -> dict[str, Any]:
        response = await self.http.get(self.url + "/control/stats")
        response.raise_for_status()
        return dict(response.json())

    async def release(self) -> None:
        (await self.http.post(self.url + "/control/release")).raise_for_status()

    async def stop(self, timeout: float = 20.0) -> int:
        await self.http.aclose()
        if self.proc is None:
            return 0
        if self.proc.returncode is None:
            # SIGTERM: uvicorn shuts down gracefully (the router drains), then re-raises the
            # signal, so a clean stop exits with -SIGTERM.
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), timeout)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
                return -signal.SIGKILL
        return await self.proc.wait()

    def log_text(self) -> str:
        self._log.flush()
        return Path(self._log.name).read_text(errors="replace")

    def log_problems(self) -> list[str]:
        text = self.log_text()
        problems = [
            line
            for line in text.splitlines()
            if line.startswith(("ERROR", "CRITICAL", "Traceback")) or "Exception" in line
        ]
        stopped = self.proc is not None and self.proc.returncode is not None
        if stopped and "Application shutdown complete" not in text:
            problems.append("no graceful shutdown (lifespan shutdown did not complete)")
        return problems

    def cleanup(self) -> None:
        self._log.close()
        with contextlib.suppress(OSError):
            os.unlink(self._log.name)


def _proc_status(pid: int, field_name: str) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field_name} for pid {pid}")


async def wait_until(
    predicate: Callable[[], bool | Awaitable[bool]],
    timeout: float,
    what: str = "a condition",
    interval: float = 0.02,
) -> None:
    """Poll ``predicate`` (sync or async) until it is true; TimeoutError after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(interval)


# ============================================================================ measuring


@dataclass
class Sample:
    t: float
    rss_kb: int
    inflight: int
    outbox: int


class Sampler:
    """Reads the receiver's RSS and ``/_health`` every ``interval`` seconds in the background."""

    def __init__(self, receiver: ReceiverProcess, interval: float = 0.5) -> None:
        self.receiver = receiver
        self.interval = interval
        self.samples: list[Sample] = []
        self.started = time.monotonic()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> Sampler:
        self.started = time.monotonic()
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    async def sample(self) -> Sample:
        rss = self.receiver.rss_kb()
        health = await self.receiver.health()
        sample = Sample(
            time.monotonic() - self.started, rss, health["inflight_jobs"], health["outbox_depth"]
        )
        self.samples.append(sample)
        return sample

    async def _run(self) -> None:
        while True:
            await self.sample()
            await asyncio.sleep(self.interval)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def mb(kb: float) -> float:
    return round(kb / 1024, 1)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def slope_mb_per_min(samples: list[Sample]) -> float:
    if len(samples) < 3:
        return 0.0
    xs = [s.t for s in samples]
    ys = [s.rss_kb / 1024 for s in samples]
    return round(statistics.linear_regression(xs, ys).slope * 60, 2)


_instances = itertools.count(1)


def push_template(port: int, *, body_size: int) -> Any:
    """A push template for the load app's route: build_push's headers, ids left as holes."""
    from ironpush.testing import build_push

    from .ack_sink import PushTemplate

    headers, _, _ = build_push(make_router(), PATH, message_id="\x01", reservation_id="\x02")
    headers["Iron-Subscriber-Message-Url"] = (
        f"http://127.0.0.1/3/projects/p/queues/{QUEUE}/messages/\x01"
    )
    body = (b'{"payload":"' + b"x" * max(0, body_size - 14) + b'"}')[: max(body_size, 2)]
    return PushTemplate.build(MOUNT + PATH, port, headers, body)


# ============================================================================ acks


@dataclass
class AckCheck:
    """Acks compared with the answers: every 202'd message acked once, with its newest 202."""

    expected: int = 0
    received: int = 0
    acked_messages: int = 0
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    wrong_reservation: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    acked_while_awaiting_retry: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        out = []
        for name in (
            "lost",
            "duplicated",
            "wrong_reservation",
            "unexpected",
            "acked_while_awaiting_retry",
        ):
            ids = getattr(self, name)
            if ids:
                out.append(f"acks {name}: {len(ids)} (e.g. {ids[:3]})")
        return out

    def summary(self) -> dict[str, int]:
        return {
            "expected": self.expected,
            "received": self.received,
            "duplicates": len(self.duplicated),
            "lost": len(self.lost),
            "wrong_reservation": len(self.wrong_reservation),
            "unexpected": len(self.unexpected),
        }


def check_acks(answers: dict[str, list[tuple[str, int]]], sink: Any) -> AckCheck:
    check = AckCheck(received=len(sink.acks), acked_messages=len(sink.by_message))
    for message_id, pushes in answers.items():
        accepted = [rid for rid, status in pushes if status == 202]
        acks = sink.by_message.get(message_id, [])
        if not accepted:
            if acks:
                check.unexpected.append(message_id)
            continue
        check.expected += 1
        if not acks:
            check.lost.append(message_id)
            continue
        if len(acks) > 1:
            check.duplicated.append(message_id)
        # The job acks the newest reservation that got 202 (a redelivery answered 202 while the
        # job ran replaced the one before; one answered 200 came after the ack).
        if acks[0].reservation_id != accepted[-1] or acks[0].subscriber_name != SUBSCRIBER:
            check.wrong_reservation.append(message_id)
        if pushes[-1][1] in (0, 503):
            check.acked_while_awaiting_retry.append(message_id)
    check.unexpected += [m for m in sink.by_message if m not in answers]
    return check


# ============================================================================ sustained load


@dataclass
class SustainedResult:
    config: dict[str, Any]
    load_seconds: float = 0.0
    drain_seconds: float = 0.0
    requests: int = 0
    load_requests: int = 0  # answered before the load stopped (the rest: finishing retries)
    load_accepted: int = 0
    by_status: dict[int, int] = field(default_factory=dict)
    connection_errors: int = 0
    bad_bodies: dict[str, int] = field(default_factory=dict)
    new_messages: int = 0
    retries: int = 0
    redeliveries: int = 0
    first_503_at: float | None = None
    accepted_before_first_503: int = 0
    latency_ms: dict[str, float] = field(default_factory=dict)
    acks: AckCheck = field(default_factory=AckCheck)
    counters: dict[str, int] = field(default_factory=dict)
    max_inflight: int = 0
    max_outbox: int = 0
    final_health: dict[str, Any] = field(default_factory=dict)
    stats_start: dict[str, Any] = field(default_factory=dict)
    stats_end: dict[str, Any] = field(default_factory=dict)
    rss: dict[str, float] = field(default_factory=dict)
    rss_parts_start: dict[str, float] = field(default_factory=dict)
    rss_parts_end: dict[str, float] = field(default_factory=dict)
    samples: list[Sample] = field(default_factory=list)
    exit_code: int | None = None
    log_problems: list[str] = field(default_factory=list)

    @property
    def outbox_bound(self) -> int:
        """Unsent acks stay under this: ``max_deferred`` of them refuse new jobs, the running
        jobs add at most ``max_deferred`` more, and the health gauge counts a batch's sent
        items until the whole batch is done."""
        return 2 * int(self.config["max_deferred"]) + OutboxSettings().batch

    @property
    def rate(self) -> float:
        return self.load_requests / self.load_seconds if self.load_seconds else 0.0

    @property
    def accepted_rate(self) -> float:
        return self.load_accepted / self.load_seconds if self.load_seconds else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "config": self.config,
            "load_seconds": round(self.load_seconds, 1),
            "drain_seconds": round(self.drain_seconds, 2),
            "requests": self.requests,
            "requests_per_s": round(self.rate),
            "accepted_202_per_s": round(self.accepted_rate),
            "by_status": {str(k): v for k, v in sorted(self.by_status.items())},
            "connection_errors": self.connection_errors,
            "new_messages": self.new_messages,
            "retries_after_503": self.retries,
            "redeliveries": self.redeliveries,
            "first_503_at_s": (None if self.first_503_at is None else round(self.first_503_at, 3)),
            "202_before_first_503": self.accepted_before_first_503,
            "latency_ms": self.latency_ms,
            "acks": self.acks.summary(),
            "max_inflight_sampled": self.max_inflight,
            "max_outbox_sampled": self.max_outbox,
            "receiver_counters": self.counters,
            "receiver_stats": {"start": self.stats_start, "end": self.stats_end},
            "rss_mb": self.rss,
            "rss_parts_mb": {"idle": self.rss_parts_start, "end": self.rss_parts_end},
            "exit_code": self.exit_code,
            "log_problems": self.log_problems[:5],
        }

    def problems(
        self, *, expect_503: bool = True, flat_mb: float = 10.0, growth_mb: float = 100.0
    ) -> list[str]:
        out: list[str] = []
        cap = int(self.config["max_deferred"])
        if self.connection_errors:
            out.append(f"{self.connection_errors} pushes got no answer")
        other = {s: n for s, n in self.by_status.items() if s not in (200, 202, 503)}
        if other:
            out.append(f"answers other than 200/202/503: {other}")
        if self.bad_bodies:
            out.append(f"503 answers that are not back-pressure: {self.bad_bodies}")
        if expect_503 and not self.by_status.get(503):
            out.append("no 503: the deferred cap was never reached")
        if self.max_inflight > cap:
            out.append(f"{self.max_inflight} jobs in flight > max_deferred {cap}")
        if self.max_outbox > self.outbox_bound:
            out.append(f"{self.max_outbox} unsent acks > {self.outbox_bound}: the outbox grows")
        out += self.acks.problems()
        c = self.counters
        if c.get("busy") != self.by_status.get(503, 0):
            out.append(f"router busy counter {c.get('busy')} != 503 answers")
        if c.get("received") != self.requests:
            out.append(f"router received {c.get('received')} != {self.requests} pushes")
        if c.get("acked") != self.acks.received:
            out.append(f"router acked {c.get('acked')} != {self.acks.received} acks received")
        for name in ("late_acks", "ack_failures", "jobs_failed", "retried", "rejected"):
            if c.get(name):
                out.append(f"router counter {name} = {c[name]}")
        health = self.final_health
        if health.get("inflight_jobs") or health.get("outbox_depth"):
            out.append(f"not drained: {health}")
        if self.rss.get("last_minus_middle_third", 0.0) > flat_mb:
            out.append(f"RSS not flat: +{self.rss['last_minus_middle_third']} MB last third")
        if self.rss.get("peak_minus_idle", 0.0) > growth_mb:
            out.append(f"RSS grew {self.rss['peak_minus_idle']} MB over the run")
        if self.exit_code not in _CLEAN_EXITS:
            out.append(f"receiver exit code {self.exit_code}")
        if self.log_problems:
            out.append(f"receiver logged errors: {self.log_problems[:3]}")
        return out


def _receiver_env(sink_url: str, **options: Any) -> dict[str, str]:
    env = {"IRONMQ_EMULATOR_HOST": sink_url}
    for name, value in options.items():
        if value is not None:
            env[f"LOAD_{name.upper()}"] = str(value)
    return env


async def run_sustained(
    *,
    duration: float = 30.0,
    connections: int = 200,
    max_deferred: int = 100,
    job_seconds: float = 0.2,
    job_kind: str = "async",
    store: str = "memory",
    max_entries: int | None = None,
    outbox_concurrency: int | None = None,
    ack_backend: str | None = None,
    retry_delay: float = 0.1,
    redeliver_ratio: float = 0.05,
    body_size: int = 512,
    sample_interval: float = 0.5,
    drain_timeout: float = 60.0,
    progress: Callable[[str], None] | None = None,
) -> SustainedResult:
    """Push for ``duration`` s, finish what is pending, wait for every ack; measure on the way."""
    from .ack_sink import AckSink, LoadPusher

    config = {
        "duration": duration,
        "connections": connections,
        "max_deferred": max_deferred,
        "job_seconds": job_seconds,
        "job_kind": job_kind,
        "store": store,
        "max_entries": max_entries,
        "outbox_concurrency": outbox_concurrency,
        "ack_backend": ack_backend,
        "retry_delay": retry_delay,
        "redeliver_ratio": redeliver_ratio,
        "body_size": body_size,
    }
    result = SustainedResult(config)
    say = progress or (lambda _: None)
    sink = await AckSink().start()
    receiver = ReceiverProcess(
        _receiver_env(
            sink.url,
            max_deferred=max_deferred,
            job_seconds=job_seconds,
            job_mode="sleep",
            job_kind=job_kind,
            store=store,
            max_entries=max_entries,
            outbox_concurrency=outbox_concurrency,
            ack_backend=ack_backend,
        )
    )
    try:
        await receiver.start()
        result.stats_start = await receiver.stats()
        idle_rss = receiver.rss_kb()
        idle_parts = receiver.rss_parts_mb()
        pusher = LoadPusher(
            receiver.port,
            push_template(receiver.port, body_size=body_size),
            connections=connections,
            retry_delay=retry_delay,
            redeliver_ratio=redeliver_ratio,
            redeliver_within=2 * job_seconds,
            seed=next(_instances),
        )
        sampler = Sampler(receiver, sample_interval).start()
        say(f"pushing for {duration:g} s over {connections} connections (pid {receiver.pid})")
        run = asyncio.get_running_loop().create_task(pusher.run())
        load_end = time.monotonic() + duration
        while time.monotonic() < load_end and not run.done():
            await asyncio.sleep(min(1.0, max(0.0, load_end - time.monotonic())))
            s = sampler.samples[-1] if sampler.samples else None
            if s is not None:
                say(
                    f"  t={s.t:5.1f}s requests={pusher.stats.requests} "
                    f"by_status={dict(pusher.stats.by_status)} inflight={s.inflight} "
                    f"outbox={s.outbox} rss={mb(s.rss_kb)} MB acks={len(sink.acks)}"
                )
        pusher.stop_new()
        stopped = time.monotonic()
        load_samples = [s for s in sampler.samples if s.t <= duration]
        await asyncio.wait_for(run, drain_timeout)  # retries and redeliveries left
        stats = pusher.stats
        expected = sum(1 for p in stats.answers.values() if any(st == 202 for _, st in p))

        async def drained() -> bool:
            health = await receiver.health()
            done = health["inflight_jobs"] == 0 and health["outbox_depth"] == 0
            return done and len(sink.by_message) >= expected

        with contextlib.suppress(TimeoutError):  # what is missing is reported as lost
            await wait_until(drained, drain_timeout, "every ack", interval=0.05)
        result.drain_seconds = time.monotonic() - stopped
        await sampler.sample()
        await sampler.stop()
        result.final_health = await receiver.health()
        result.stats_end = await receiver.stats()
        result.rss = _rss_figures(idle_rss, load_samples, sampler.samples, receiver.hwm_kb())
        result.rss_parts_start = idle_parts
        result.rss_parts_end = receiver.rss_parts_mb()
        result.samples = sampler.samples
    finally:
        result.exit_code = await receiver.stop()
        result.log_problems = receiver.log_problems()
        receiver.cleanup()
        sink.close()
    stats = pusher.stats
    result.load_seconds = (stats.stopped_new_at or stopped) - stats.started
    result.requests = stats.requests
    result.load_requests = stats.requests_at_stop
    result.load_accepted = stats.accepted_at_stop
    result.by_status = dict(stats.by_status)
    result.connection_errors = stats.connection_errors
    result.bad_bodies = {
        f"{status} {body!r}": n
        for (status, body), n in stats.bodies.items()
        if status == 503 and body != BUSY_BODY
    }
    result.new_messages = stats.new_messages
    result.retries = stats.retries
    result.redeliveries = stats.redeliveries
    result.first_503_at = stats.first_503_at
    result.accepted_before_first_503 = stats.accepted_before_first_503
    result.latency_ms = {
        f"{status}_{name}": round(percentile(stats.latencies.get(status, []), q) * 1000, 2)
        for status in (202, 503)
        for name, q in (("p50", 0.5), ("p99", 0.99))
    }
    result.acks = check_acks(stats.answers, sink)
    result.counters = dict(result.final_health.get("counters", {}))
    result.max_inflight = max((s.inflight for s in result.samples), default=0)
    result.max_outbox = max((s.outbox for s in result.samples), default=0)
    return result


def _rss_figures(
    idle_kb: int, load: list[Sample], everything: list[Sample], hwm_kb: int
) -> dict[str, float]:
    third = len(load) // 3
    middle, last = load[third : 2 * third], load[2 * third :]
    figures = {
        "idle": mb(idle_kb),
        "peak_sampled": mb(max((s.rss_kb for s in everything), default=idle_kb)),
        "peak_hwm": mb(hwm_kb),
        "end": mb(everything[-1].rss_kb if everything else idle_kb),
        "slope_mb_per_min_last_two_thirds": slope_mb_per_min(load[third:]),
    }
    if middle and last:
        figures["middle_third_mean"] = mb(statistics.fmean(s.rss_kb for s in middle))
        figures["last_third_mean"] = mb(statistics.fmean(s.rss_kb for s in last))
        figures["last_minus_middle_third"] = round(
            figures["last_third_mean"] - figures["middle_third_mean"], 1
        )
    figures["peak_minus_idle"] = round(figures["peak_hwm"] - figures["idle"], 1)
    return figures


# ============================================================================ jobs in flight


@dataclass
class InflightCycle:
    pushed: int = 0
    by_status: dict[int, int] = field(default_factory=dict)
    overflow_by_status: dict[int, int] = field(default_factory=dict)
    inflight_seen: int = 0
    rss_full_kb: list[int] = field(default_factory=list)  # sampled while held
    rss_after_kb: int = 0
    tasks_held: int = 0
    threads_held: int = 0
    fill_seconds: float = 0.0
    ack_seconds: float = 0.0
    acks: AckCheck = field(default_factory=AckCheck)

    def summary(self) -> dict[str, Any]:
        held = self.rss_full_kb
        return {
            "pushed": self.pushed,
            "by_status": {str(k): v for k, v in sorted(self.by_status.items())},
            "overflow_by_status": {str(k): v for k, v in sorted(self.overflow_by_status.items())},
            "inflight_seen": self.inflight_seen,
            "fill_seconds": round(self.fill_seconds, 2),
            "ack_seconds": round(self.ack_seconds, 2),
            "rss_held_mb": {
                "first": mb(held[0]) if held else None,
                "last": mb(held[-1]) if held else None,
                "min": mb(min(held)) if held else None,
                "max": mb(max(held)) if held else None,
            },
            "rss_after_release_mb": mb(self.rss_after_kb),
            "tasks_held": self.tasks_held,
            "threads_held": self.threads_held,
            "acks": self.acks.summary(),
        }


@dataclass
class InflightResult:
    config: dict[str, Any]
    rss_zero_kb: int = 0
    rss_start_kb: int = 0
    stats_zero: dict[str, Any] = field(default_factory=dict)
    stats_end: dict[str, Any] = field(default_factory=dict)
    cycles: list[InflightCycle] = field(default_factory=list)
    hwm_kb: int = 0
    counters: dict[str, int] = field(default_factory=dict)
    exit_code: int | None = None
    log_problems: list[str] = field(default_factory=list)

    @property
    def per_job_kb(self) -> float:
        first = self.cycles[0] if self.cycles else None
        if first is None or not first.rss_full_kb:
            return 0.0
        return (statistics.fmean(first.rss_full_kb) - self.rss_zero_kb) / first.pushed

    def summary(self) -> dict[str, Any]:
        full = [statistics.fmean(c.rss_full_kb) for c in self.cycles if c.rss_full_kb]
        return {
            "config": self.config,
            "rss_mb": {
                "started": mb(self.rss_start_kb),
                "zero_in_flight": mb(self.rss_zero_kb),
                "full_per_cycle": [mb(x) for x in full],
                "after_release_per_cycle": [mb(c.rss_after_kb) for c in self.cycles],
                "peak_hwm": mb(self.hwm_kb),
                "held_spread_max": max(
                    (
                        mb(max(c.rss_full_kb) - min(c.rss_full_kb))
                        for c in self.cycles
                        if c.rss_full_kb
                    ),
                    default=0.0,
                ),
            },
            "per_job_kb": round(self.per_job_kb, 2),
            "cycles": [c.summary() for c in self.cycles],
            "receiver_counters": self.counters,
            "receiver_stats": {"zero": self.stats_zero, "end": self.stats_end},
            "exit_code": self.exit_code,
            "log_problems": self.log_problems[:5],
        }

    def problems(self, *, held_flat_mb: float = 5.0, cycle_growth_mb: float = 10.0) -> list[str]:
        out: list[str] = []
        jobs = int(self.config["jobs"])
        for n, cycle in enumerate(self.cycles, 1):
            if cycle.by_status != {202: jobs}:
                out.append(f"cycle {n}: {jobs} pushes under the cap got {cycle.by_status}")
            overflow = int(self.config["overflow"])
            if overflow and cycle.overflow_by_status != {503: overflow}:
                out.append(f"cycle {n}: pushes past the cap got {cycle.overflow_by_status}")
            if cycle.inflight_seen != jobs:
                out.append(f"cycle {n}: /_health showed {cycle.inflight_seen} jobs in flight")
            out += [f"cycle {n}: {p}" for p in cycle.acks.problems()]
            if cycle.rss_full_kb:
                spread = (max(cycle.rss_full_kb) - min(cycle.rss_full_kb)) / 1024
                if spread > held_flat_mb:
                    out.append(f"cycle {n}: RSS moved {spread:.1f} MB while the jobs were held")
        full = [statistics.fmean(c.rss_full_kb) for c in self.cycles if c.rss_full_kb]
        if len(full) > 1 and (max(full[1:]) - full[0]) / 1024 > cycle_growth_mb:
            out.append(f"RSS at full capacity grew across cycles: {[mb(x) for x in full]} MB")
        for name in ("late_acks", "ack_failures", "jobs_failed", "retried", "rejected"):
            if self.counters.get(name):
                out.append(f"router counter {name} = {self.counters[name]}")
        if self.exit_code not in _CLEAN_EXITS:
            out.append(f"receiver exit code {self.exit_code}")
        if self.log_problems:
            out.append(f"receiver logged errors: {self.log_problems[:3]}")
        return out


async def _push_batch(
    port: int, template: Any, count: int, connections: int, *, retry: bool = False
) -> Any:
    from .ack_sink import LoadPusher

    pusher = LoadPusher(
        port,
        template,
        connections=min(connections, count),
        retry_delay=0.05 if retry else None,
        seed=next(_instances),
    )
    pusher.limit_new(count)
    return await pusher.run()


async def run_inflight(
    *,
    jobs: int = 1000,
    overflow: int = 200,
    connections: int = 200,
    job_kind: str = "async",
    max_entries: int | None = None,
    hold_seconds: float = 10.0,
    cycles: int = 2,
    warmup: int = 100,
    body_size: int = 512,
    sample_interval: float = 0.25,
    timeout: float = 60.0,
    progress: Callable[[str], None] | None = None,
) -> InflightResult:
    """Hold ``jobs`` deferred jobs (= max_deferred) in flight, ``cycles`` times; measure."""
    from .ack_sink import AckSink

    say = progress or (lambda _: None)
    config = {
        "jobs": jobs,
        "overflow": overflow,
        "connections": connections,
        "job_kind": job_kind,
        "max_entries": max_entries,
        "hold_seconds": hold_seconds,
        "cycles": cycles,
        "warmup": warmup,
        "body_size": body_size,
    }
    result = InflightResult(config)
    sink = await AckSink().start()
    receiver = ReceiverProcess(
        _receiver_env(
            sink.url,
            max_deferred=jobs,
            job_mode="hold",
            job_kind=job_kind,
            max_entries=max_entries,
        )
    )
    try:
        await receiver.start()
        result.rss_start_kb = receiver.rss_kb()
        template = push_template(receiver.port, body_size=body_size)

        async def acked(count: int) -> bool:
            health = await receiver.health()
            return (
                len(sink.by_message) >= count
                and health["inflight_jobs"] == 0
                and health["outbox_depth"] == 0
            )

        # Warm-up: exercise every code path once, so "0 in flight" is a warm process.
        stats = await _push_batch(receiver.port, template, warmup, connections)
        await receiver.release()
        await wait_until(partial(acked, warmup), timeout, "the warm-up acks")
        expected_acks = warmup
        result.rss_zero_kb = receiver.rss_kb()
        result.stats_zero = await receiver.stats()
        for n in range(1, cycles + 1):
            cycle = InflightCycle()
            started = time.monotonic()
            stats = await _push_batch(receiver.port, template, jobs, connections)
            cycle.fill_seconds = time.monotonic() - started
            cycle.pushed = stats.new_messages
            cycle.by_status = dict(stats.by_status)
            health = await receiver.health()
            cycle.inflight_seen = health["inflight_jobs"]
            answers = dict(stats.answers)
            if overflow:
                extra = await _push_batch(receiver.port, template, overflow, connections)
                cycle.overflow_by_status = dict(extra.by_status)
                answers.update(extra.answers)
            app_stats = await receiver.stats()
            cycle.tasks_held, cycle.threads_held = app_stats["tasks"], app_stats["threads"]
            say(
                f"cycle {n}: {cycle.inflight_seen} in flight after {cycle.fill_seconds:.2f} s, "
                f"rss={mb(receiver.rss_kb())} MB; holding {hold_seconds:g} s"
            )
            hold_end = time.monotonic() + hold_seconds
            while True:  # a measurement window, not a wait for an outcome
                cycle.rss_full_kb.append(receiver.rss_kb())
                if time.monotonic() >= hold_end:
                    break
                await asyncio.sleep(sample_interval)
            started = time.monotonic()
            await receiver.release()
            expected_acks += jobs
            with contextlib.suppress(TimeoutError):  # what is missing is reported as lost
                await wait_until(partial(acked, expected_acks), timeout, "the cycle's acks")
            cycle.ack_seconds = time.monotonic() - started
            cycle.rss_after_kb = receiver.rss_kb()
            cycle.acks = check_acks(answers, _SinkView(sink, answers))
            result.cycles.append(cycle)
            say(f"cycle {n}: acked in {cycle.ack_seconds:.2f} s: {cycle.acks.summary()}")
        result.hwm_kb = receiver.hwm_kb()
        result.stats_end = await receiver.stats()
        result.counters = dict((await receiver.health())["counters"])
    finally:
        result.exit_code = await receiver.stop()
        result.log_problems = receiver.log_problems()
        receiver.cleanup()
        sink.close()
    return result


class _SinkView:
    """The sink's acks restricted to some messages (one cycle's)."""

    def __init__(self, sink: Any, answers: dict[str, Any]) -> None:
        self.by_message = {m: a for m, a in sink.by_message.items() if m in answers}
        self.acks = [a for acks in self.by_message.values() for a in acks]


if __name__ == "__main__":
    main()
