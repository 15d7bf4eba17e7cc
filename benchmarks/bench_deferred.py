"""The deferred path (``Defer(job)`` 202 + its ack) against the quick path, in-process.

Load-independent figures for issue 23's goals, before any saturated HTTP run:

1. **CPU per push, alternating rounds**: each variant is a worker process (the router built
   as ``receiver_apps`` builds it) driven by ``--concurrency`` concurrent in-process pushers
   through a fake ASGI ``receive``/``send`` (the pushes of ``bench_receiver``, built before the
   round is measured). A round is ``--pushes`` pushes *and* every ack they owe confirmed by a
   real fake IronMQ over TCP (``receiver_apps.fake_ironmq`` on uvicorn, another process): the
   process CPU time (every thread) from the first push to the last ack, per push. Rounds
   alternate between the workers, order rotated; the ratio is per round against
   ``--reference`` (median, IQR).
2. **Instructions per push**: each variant once more under
   ``valgrind --tool=callgrind --instr-atstart=no --collect-atstart=no``; a tiny C shim
   (``callgrind.h``'s client requests, built with ``cc`` at run time) switches collection on
   around one measured round only (pushes + acks), after a warm-up (the method of
   ``instructions.py``). Counts do not move with the machine's load.
3. Per push: the answers by status (a 503 is the ``max_deferred`` cap), the acks the fake
   IronMQ counted (its ``DELETE`` requests), the writes on the outbox's connections (what
   pipelining changes), and for the ``redis_*`` variants the scripts run by a private
   ``redis-server`` (round trips) and its CPU.

Variants: ``quick`` (memory store, 200), ``defer`` (memory store, ``Defer(job)`` with a no-op
job), ``defer_nowire`` (the same, its acks answered in-process by the client's
``MockTransport``: no HTTP), ``defer_noclient`` (its acks answered at once by a stand-in for
the client: the job and the outbox alone), ``redis_quick`` / ``redis_defer``
(``RedisStore`` on a private ``redis-server``, or ``--redis URL``; the Redis server's CPU is
not this process's).
``--pipeline-depth N`` gives the router's client another pipeline depth (1: one ack per
connection); ``--option NAME=JSON`` passes a ``PushRouter`` option to every variant
(``metrics=false``; a group as a JSON object: ``outbox={"concurrency": 32}``). The
``ironpush`` logger is at WARNING (``IRONPUSH_BENCH_LOG=info`` keeps the lines). Run from the
repository root::

    python -m benchmarks.bench_deferred [--rounds 12] [--pushes 2000] [--concurrency 32]
        [--variants quick defer defer_nowire] [--no-callgrind] [--pipeline-depth 1]

Not part of CI; needs ``valgrind`` and a C compiler for the instruction counts.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import gc
import json
import logging
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SHIM = r"""
#include <valgrind/callgrind.h>
void measure_start(void) { CALLGRIND_START_INSTRUMENTATION; CALLGRIND_TOGGLE_COLLECT; }
void measure_stop(void) { CALLGRIND_TOGGLE_COLLECT; CALLGRIND_STOP_INSTRUMENTATION; }
"""
VARIANTS = ("quick", "defer", "defer_nowire", "defer_noclient", "redis_quick", "redis_defer")
DEFERS = {"defer", "defer_nowire", "defer_noclient", "redis_defer"}


# --- one variant (a worker process) ------------------------------------------------------------


def build(variant: str, redis_url: str) -> Any:
    from benchmarks import receiver_apps
    from ironpush import Defer

    store: Any = None
    if variant.startswith("redis"):
        from ironpush.receiver.stores import RedisStore

        store = RedisStore(redis_url, prefix=f"bench-deferred-{os.getpid()}")
    options = _groups(json.loads(os.environ.get("BENCH_DEFERRED_OPTIONS", "{}")))
    if variant in DEFERS:
        return receiver_apps._router(Defer(receiver_apps._noop_job), store=store, **options)
    return receiver_apps._router(store=store, **options)


def _groups(options: dict[str, Any]) -> dict[str, Any]:
    """``--option`` values for the router's option groups (a JSON object) as their groups:
    ``outbox={"concurrency": 32}`` is ``outbox=OutboxSettings(concurrency=32)``."""
    import ironpush

    groups = {
        "leases": ironpush.Leases,
        "limits": ironpush.Limits,
        "outbox": ironpush.OutboxSettings,
    }
    return {
        name: groups[name](**value) if name in groups and isinstance(value, dict) else value
        for name, value in options.items()
    }


class Socket:
    """Counts the outbox's writes (``transport.write`` of the lean client's connections)."""

    writes = 0

    @classmethod
    def install(cls) -> None:
        from ironpush.client import _lean_connection as _lean

        original = _lean.Connection.connection_made

        def connection_made(self: Any, transport: Any) -> None:
            original(self, transport)
            write = transport.write

            def counted(data: Any) -> None:
                cls.writes += 1
                write(data)

            self.transport = _Counted(transport, counted)

        _lean.Connection.connection_made = connection_made  # type: ignore[method-assign]


class _Counted:
    def __init__(self, transport: Any, write: Any) -> None:
        self._transport = transport
        self.write = write

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class Confirming:
    """Stands in for the router's client: confirms every ack at once (``defer_noclient``)."""

    async def acknowledge(self, queue: str, delivery: Any) -> None:
        return None

    async def acknowledge_all(self, acks: list[Any]) -> list[Exception | None]:
        return [None] * len(acks)

    async def aclose(self) -> None:
        return None


class Driver:
    """Pushes to one router, ``concurrency`` at a time, until their acks are confirmed."""

    def __init__(self, variant: str, app: Any, concurrency: int) -> None:
        from benchmarks.inprocess_receiver import BODY

        self.variant, self.app, self.concurrency = variant, app, concurrency
        self.message = {"type": "http.request", "body": BODY, "more_body": False}
        self.statuses: Counter[int] = Counter()

    @staticmethod
    def scopes(pushes: int) -> list[dict[str, Any]]:
        """The pushes of a round, built before it is measured."""
        from benchmarks.inprocess_receiver import push_headers

        return [
            {"type": "http", "method": "POST", "path": "/orders", "root_path": "",
             "query_string": b"", "headers": push_headers()}
            for _ in range(pushes)
        ]  # fmt: skip

    async def push_round(self, scopes: list[dict[str, Any]]) -> None:
        acked_before = self.app.counters.totals["acked"]
        answered: Counter[int] = Counter()
        it = iter(scopes)

        async def receive() -> dict[str, Any]:
            return self.message

        async def send(event: dict[str, Any]) -> None:
            if event["type"] == "http.response.start":
                answered[event["status"]] += 1

        async def pusher() -> None:
            for scope in it:
                await self.app(scope, receive, send)
                # A server reads the next request in a later event-loop turn: let the jobs
                # and the outbox run in between, as they do under uvicorn.
                await asyncio.sleep(0)

        await asyncio.gather(*(pusher() for _ in range(self.concurrency)))
        self.statuses.update(answered)
        if self.variant in DEFERS:
            owed = acked_before + answered[202]
            deadline = time.monotonic() + 60
            while self.app.counters.totals["acked"] < owed:
                if time.monotonic() > deadline:
                    raise SystemExit(f"{self.variant}: acks missing after 60 s")
                await asyncio.sleep(0.005)  # a poll every 5 ms costs the round ~nothing


def _settle_heap() -> None:
    gc.collect()
    gc.freeze()


async def _start(variant: str, concurrency: int, redis_url: str) -> Driver:
    # One INFO line per push (and per ack) costs more than the push itself when a handler
    # formats it: measured here as a service that logs warnings only (the harness's apps log
    # what uvicorn's defaults show). IRONPUSH_BENCH_LOG=info keeps the lines.
    level = os.environ.get("IRONPUSH_BENCH_LOG", "warning").upper()
    logging.getLogger("ironpush").setLevel(level)
    Socket.install()
    app = build(variant, redis_url)
    depth = os.environ.get("BENCH_PIPELINE_DEPTH")
    if variant == "defer_nowire":  # the same acks, answered in-process: no HTTP, no socket
        from ironpush import AsyncIronMQ
        from ironpush.client._transports import MockTransport, Response

        deleted = Response.from_json(200, {"msg": "Deleted"})
        app._set_client(AsyncIronMQ(transport=MockTransport(lambda request: deleted)))
    elif variant == "defer_noclient":  # every ack confirmed at once, without the client
        app._set_client(Confirming())
    elif depth:  # the acks' client with another pipeline depth (1: one ack per connection)
        from ironpush import AsyncIronMQ
        from ironpush.client._transports import LeanTransport

        app._set_client(AsyncIronMQ(transport=LeanTransport(pipeline_depth=int(depth))))
    await app.startup()
    driver = Driver(variant, app, concurrency)
    await driver.push_round(driver.scopes(1000))  # warm up: caches, imports, connections
    _settle_heap()
    return driver


def worker(variant: str, concurrency: int, redis_url: str) -> None:
    """Serve rounds on stdin (``N`` pushes each); answer CPU µs/push and counts on stdout."""

    async def serve() -> None:
        driver = await _start(variant, concurrency, redis_url)
        print("ready", flush=True)
        for line in sys.stdin:
            pushes = int(line)
            scopes = driver.scopes(pushes)
            driver.statuses.clear()
            writes = Socket.writes
            started = time.process_time()
            await driver.push_round(scopes)
            cpu = (time.process_time() - started) / pushes * 1e6
            report = {
                "cpu": cpu,
                "statuses": dict(driver.statuses),
                "writes": (Socket.writes - writes) / pushes,
            }
            print(json.dumps(report), flush=True)
        await driver.app.shutdown()

    asyncio.run(serve())


def callgrind_worker(
    variant: str, pushes: int, concurrency: int, redis_url: str, shim: str
) -> None:
    measure = ctypes.CDLL(shim)

    async def run() -> None:
        driver = await _start(variant, concurrency, redis_url)
        scopes = driver.scopes(pushes)
        measure.measure_start()
        await driver.push_round(scopes)
        measure.measure_stop()
        await driver.app.shutdown()

    asyncio.run(run())


# --- the driver ----------------------------------------------------------------------------


class FakeIronMQ:
    """``receiver_apps.fake_ironmq`` on uvicorn (its own process): counts DELETEs."""

    def __init__(self, cpus: str | None) -> None:
        from benchmarks.harness import Servers, ServerSpec

        self.servers = Servers([ServerSpec("ironmq", "benchmarks.receiver_apps:fake_ironmq")],
                               cpus=cpus)  # fmt: skip

    def __enter__(self) -> str:
        self.servers.__enter__()
        return self.servers["ironmq"].url

    def __exit__(self, *exc: Any) -> None:
        self.servers.stop()

    def deletes(self) -> int:
        import httpx

        return int(httpx.get(self.servers["ironmq"].url + "/_count", timeout=5).text)


class Redis:
    """The Redis of the ``redis_*`` variants: a private ``redis-server`` of this run (its
    calls and CPU are the variants' alone), or ``--redis URL`` (then neither is counted)."""

    def __init__(self, url: str | None, cpus: str | None) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        if url is None:
            from benchmarks.harness import free_port

            port = free_port()
            url = f"redis://127.0.0.1:{port}/0"
            command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                       "--save", "", "--appendonly", "no"]  # fmt: skip
            self.proc = subprocess.Popen(_pinned(command, cpus), stdout=subprocess.DEVNULL)
        self.url = url

    def __enter__(self) -> Redis:
        if self.proc is not None:
            deadline = time.monotonic() + 30
            while True:
                try:
                    self.calls()
                    return self
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(30)

    def calls(self) -> int:
        """Top-level scripts run so far (``EVALSHA``/``EVAL``: one round trip each)."""
        if self.proc is None:
            return 0
        import redis

        client = redis.Redis.from_url(self.url)
        try:
            stats = client.info("commandstats")
        finally:
            client.close()
        return sum(int(v["calls"]) for k, v in stats.items() if k in _REDIS_CALLS)

    def cpu(self) -> float:
        if self.proc is None:
            return 0.0
        from benchmarks.harness import cpu_seconds

        return cpu_seconds(self.proc.pid)


_REDIS_CALLS = {"cmdstat_evalsha", "cmdstat_eval"}


def _worker_env(ironmq: str) -> dict[str, str]:
    host = ironmq.removeprefix("http://")
    return {**os.environ, "IRONMQ_EMULATOR_HOST": host, "PYTHONPATH": str(ROOT)}


def _pinned(command: list[str], cpus: str | None) -> list[str]:
    return ["taskset", "-c", cpus, *command] if cpus else command


def alternate(
    args: argparse.Namespace, ironmq: FakeIronMQ, url: str, redis: Redis
) -> dict[str, Any]:
    procs = {}
    for v in args.variants:
        command = [sys.executable, "-m", "benchmarks.bench_deferred", "--worker", v,
                   "--concurrency", str(args.concurrency), "--redis", redis.url]  # fmt: skip
        procs[v] = subprocess.Popen(
            _pinned(command, args.cpus),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=_worker_env(url),
        )
    for v, proc in procs.items():
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            raise SystemExit(f"worker {v} did not start")
    rounds: dict[str, list[dict[str, Any]]] = {v: [] for v in args.variants}
    deletes: Counter[str] = Counter()
    redis_calls: Counter[str] = Counter()
    redis_cpu: defaultdict[str, float] = defaultdict(float)
    try:
        for r in range(args.rounds):
            k = r % len(args.variants)
            for v in args.variants[k:] + args.variants[:k]:
                proc = procs[v]
                assert proc.stdin is not None
                assert proc.stdout is not None
                before, calls, cpu = ironmq.deletes(), redis.calls(), redis.cpu()
                proc.stdin.write(f"{args.pushes}\n")
                proc.stdin.flush()
                line = proc.stdout.readline()
                if not line:
                    raise SystemExit(f"worker {v} died")
                rounds[v].append(json.loads(line))
                deletes[v] += ironmq.deletes() - before
                redis_calls[v] += redis.calls() - calls
                redis_cpu[v] += redis.cpu() - cpu
    finally:
        for proc in procs.values():
            if proc.stdin is not None:
                proc.stdin.close()
            proc.wait(30)
    return {
        "rounds": rounds,
        "deletes": dict(deletes),
        "redis_calls": dict(redis_calls),
        "redis_cpu": dict(redis_cpu),
    }


def instructions(args: argparse.Namespace, url: str, redis: Redis) -> dict[str, float]:
    counts = {}
    with tempfile.TemporaryDirectory() as tmp:
        source, shim = Path(tmp, "shim.c"), Path(tmp, "shim.so")
        source.write_text(SHIM)
        subprocess.run(["cc", "-O2", "-shared", "-fPIC", "-o", shim, source], check=True)
        for v in args.variants:
            out = Path(tmp, f"callgrind.{v}")
            subprocess.run(
                [
                    *("valgrind", "--tool=callgrind", "--instr-atstart=no"),
                    *("--collect-atstart=no", f"--callgrind-out-file={out}"),
                    *(sys.executable, "-m", "benchmarks.bench_deferred", "--callgrind", v),
                    *("--pushes", str(args.callgrind_pushes), "--shim", str(shim)),
                    *("--concurrency", str(args.concurrency), "--redis", redis.url),
                ],
                cwd=ROOT,
                check=True,
                capture_output=True,
                env={**_worker_env(url), "PYTHONMALLOC": "malloc"},
            )
            found = re.search(r"^totals: (\d+)", out.read_text(), flags=re.M)
            assert found is not None, f"no totals in {out}"
            counts[v] = int(found.group(1)) / args.callgrind_pushes
            if args.keep_callgrind is not None:  # for callgrind_annotate --inclusive=yes
                args.keep_callgrind.mkdir(parents=True, exist_ok=True)
                shutil.copy(out, args.keep_callgrind / out.name)
    return counts


def _quartiles(values: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(values, n=4)
    return q[0], q[2]


def report(args: argparse.Namespace, result: dict[str, Any], counts: dict[str, float]) -> None:
    rounds = result["rounds"]
    ref = args.reference
    print(f"{args.rounds} rounds x {args.pushes} pushes, {args.concurrency} in flight; "
          f"load average {os.getloadavg()[0]:.2f} at the end")  # fmt: skip
    header = (
        "| variant | CPU µs/push (median) | vs {ref} per round (median, IQR) | instructions/push"
    )
    header += " | vs {ref} | answers | acks (DELETEs) per push | outbox writes per push"
    header += " | Redis round trips per push | Redis CPU µs/push |"
    print(header.format(ref=ref))
    print("| --- " * 10 + "|")
    for v in args.variants:
        cpus = [r["cpu"] for r in rounds[v]]
        ratios = [b["cpu"] / r["cpu"] for b, r in zip(rounds[ref], rounds[v], strict=True)]
        q1, q3 = _quartiles(ratios) if len(ratios) > 1 else (ratios[0], ratios[0])
        statuses: Counter[int] = Counter()
        for r in rounds[v]:
            statuses.update({int(k): n for k, n in r["statuses"].items()})
        total = sum(statuses.values())
        answers = ", ".join(f"{s}: {n / total:.1%}" for s, n in sorted(statuses.items()))
        inst = counts.get(v)
        inst_text = f"{inst:,.0f}" if inst else "—"
        inst_ratio = f"{counts[ref] / inst:.2f}x" if inst and counts.get(ref) else "—"
        writes = statistics.median(r["writes"] for r in rounds[v])
        acks = result["deletes"].get(v, 0) / total
        trips, rcpu = "—", "—"
        if v.startswith("redis") and result["redis_calls"].get(v):
            trips = f"{result['redis_calls'][v] / total:.2f}"
            rcpu = f"{result['redis_cpu'][v] / total * 1e6:.1f}"
        print(f"| {v} | {statistics.median(cpus):.1f} | {statistics.median(ratios):.2f}x "
              f"(IQR {q1:.2f}-{q3:.2f}) | {inst_text} | {inst_ratio} | {answers} | "
              f"{acks:.3f} | {writes:.3f} | {trips} | {rcpu} |")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--pushes", type=int, default=2000)
    parser.add_argument("--callgrind-pushes", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--variants", nargs="+", default=["quick", "defer"], choices=VARIANTS)
    parser.add_argument("--reference", default="quick", choices=VARIANTS)
    parser.add_argument("--redis", default=None, help="a Redis URL (default: a private one)")
    parser.add_argument("--redis-cpus", default=None, help="taskset CPUs for the private Redis")
    parser.add_argument("--cpus", default=None, help="taskset CPUs for the workers")
    parser.add_argument("--ironmq-cpus", default=None, help="taskset CPUs for the fake IronMQ")
    parser.add_argument("--no-callgrind", action="store_true")
    parser.add_argument(
        "--keep-callgrind", type=Path, default=None, help="copy callgrind.<variant> files here"
    )
    parser.add_argument(
        "--pipeline-depth",
        type=int,
        default=None,
        help="acks in flight per connection of the router's client (default: its own, 8)",
    )
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="NAME=JSON",
        help="a PushRouter option for every variant (e.g. metrics=false, max_deferred=256, "
        "outbox='{\"concurrency\": 32}')",
    )
    parser.add_argument("--worker", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--callgrind", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--shim", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker, args.concurrency, args.redis)
    if args.callgrind:
        return callgrind_worker(
            args.callgrind, args.callgrind_pushes, args.concurrency, args.redis, args.shim
        )
    options = {k: json.loads(v) for k, v in (o.split("=", 1) for o in args.option)}
    os.environ["BENCH_DEFERRED_OPTIONS"] = json.dumps(options)
    if args.pipeline_depth is not None:
        os.environ["BENCH_PIPELINE_DEPTH"] = str(args.pipeline_depth)
    if args.reference not in args.variants:
        args.variants.insert(0, args.reference)
    ironmq = FakeIronMQ(args.ironmq_cpus)
    needs_redis = any(v.startswith("redis") for v in args.variants)
    # Without a redis_* variant no Redis is used: the URL is only passed along.
    redis = Redis(args.redis if needs_redis else "redis://127.0.0.1:6379/0", args.redis_cpus)
    with ironmq as url, redis:
        result = alternate(args, ironmq, url, redis)
        counts = {} if args.no_callgrind else instructions(args, url, redis)
    report(args, result, counts)
    return None


if __name__ == "__main__":
    main()
