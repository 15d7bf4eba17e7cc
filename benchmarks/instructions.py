"""Instructions per push, in-process, counted by callgrind: a figure the machine's load cannot move.

Each target (an app factory of ``receiver_apps`` / ``receiver_store_apps``) runs in a process
of its own under ``valgrind --tool=callgrind --instr-atstart=no --collect-atstart=no``: the
interpreter starts, imports and builds the app uninstrumented (fast), runs the app's lifespan
and a warm-up of ``--warmup`` pushes, then a tiny C shim (``callgrind.h``'s client requests,
compiled with ``cc`` at run time) switches instrumentation and collection on around the
measured pushes only, and off again. The pushes are those of ``bench_receiver`` (headers from
``ironpush._protocol.build_push_headers``, a unique message id each, the route's push secret,
a 1 KB JSON body), sent through a fake ASGI ``receive``/``send`` by ``--concurrency``
concurrent pushers; a deferred target's measured region also covers every ack its 202s owe
(the router's ``acked`` counter; ``Target(acks=True)``), sent over TCP to the fake IronMQ named by
``IRONMQ_EMULATOR_HOST``. Only this process is counted: a store's server (Redis,
PostgreSQL) and the fake IronMQ are not (their CPU is in the HTTP benchmarks' tables).

The count is callgrind's ``Ir`` total over the measured region divided by the pushes; every
answer must be 2xx (else the run fails). Run from the repository root (needs ``valgrind`` and
a C compiler)::

    python -m benchmarks.instructions [--pushes 2000] [--concurrency 32] [--only bare router]
    BENCH_STORE=postgresql://…?schema=x python -m benchmarks.instructions \
        --app benchmarks.receiver_store_apps:quick     # any factory; the env reaches the app

Not part of CI. ``bench_receiver`` and ``bench_receiver_stores`` call :func:`count` for their
tables.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import gc
import importlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SHIM = r"""
#include <valgrind/callgrind.h>
void measure_start(void) { CALLGRIND_START_INSTRUMENTATION; CALLGRIND_TOGGLE_COLLECT; }
void measure_stop(void) { CALLGRIND_TOGGLE_COLLECT; CALLGRIND_STOP_INSTRUMENTATION; }
"""


@dataclass(frozen=True, slots=True)
class Target:
    """One app to count: ``app`` is its factory (``benchmarks.receiver_apps:router``)."""

    name: str
    app: str
    path: str = "/orders"
    env: Mapping[str, str] = field(default_factory=dict)
    acks: bool = False  # its 202s owe acks (Defer(job)): the measured region waits for them


def available() -> str | None:
    """None when callgrind can run here, else why not (one line)."""
    if shutil.which("valgrind") is None:
        return "valgrind is not installed (apt-get install -y valgrind)"
    if shutil.which("cc") is None:
        return "no C compiler (cc) for the callgrind shim"
    if not Path("/usr/include/valgrind/callgrind.h").exists():
        return "valgrind's headers are missing (valgrind/callgrind.h)"
    return None


def count(
    targets: Sequence[Target],
    *,
    pushes: int = 2000,
    concurrency: int = 32,
    warmup: int = 500,
    progress: bool = True,
) -> dict[str, float]:
    """Instructions per push of each target (its name -> Ir / push)."""
    counts: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="ironpush-callgrind-") as tmp:
        source, shim = Path(tmp, "shim.c"), Path(tmp, "shim.so")
        source.write_text(SHIM)
        subprocess.run(["cc", "-O2", "-shared", "-fPIC", "-o", str(shim), str(source)], check=True)
        for target in targets:
            started = time.monotonic()
            out = Path(tmp, f"callgrind.{target.name}")
            command = [
                *("valgrind", "--tool=callgrind", "--instr-atstart=no", "--collect-atstart=no"),
                f"--callgrind-out-file={out}",
                *(sys.executable, "-m", "benchmarks.instructions", "--worker", target.app),
                *("--path", target.path, "--shim", str(shim), "--pushes", str(pushes)),
                *("--concurrency", str(concurrency), "--warmup", str(warmup)),
                *(["--acks"] if target.acks else []),
            ]
            # A fixed hash seed: str hashing (dicts, sets) is then the same in every run.
            env = {"PYTHONHASHSEED": "0", **os.environ, **target.env, "PYTHONPATH": str(ROOT)}
            done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
            if done.returncode != 0:
                tail = "\n".join(done.stderr.strip().splitlines()[-15:])
                raise RuntimeError(f"callgrind run of {target.name} failed:\n{tail}")
            found = re.search(r"^totals: (\d+)", out.read_text(), flags=re.M)
            if found is None:
                raise RuntimeError(f"no totals in callgrind's output for {target.name}")
            counts[target.name] = int(found.group(1)) / pushes
            if progress:
                print(
                    f"instructions: {target.name} {counts[target.name]:,.0f} per push "
                    f"({time.monotonic() - started:.0f} s)",
                    file=sys.stderr,
                    flush=True,
                )
    return counts


# --------------------------------------------------------------------------- the worker


class Lifespan:
    """Runs an ASGI app's lifespan protocol (startup before the pushes, shutdown after)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def startup(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())
        await self._inbox.put({"type": "lifespan.startup"})
        answer = await self._outbox.get()
        if answer.get("type") == "lifespan.startup.failed":
            raise RuntimeError(f"the app failed to start: {answer.get('message')}")

    async def shutdown(self) -> None:
        if self._task is None:
            return
        await self._inbox.put({"type": "lifespan.shutdown"})
        if not self._task.done():
            await self._outbox.get()

    async def _run(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
        try:
            await self.app(scope, self._inbox.get, self._outbox.put)
        except Exception:  # an app without lifespan support: nothing to run
            await self._outbox.put({"type": "lifespan.startup.complete"})


class Driver:
    """Pushes to one app, ``concurrency`` at a time, through a fake ASGI receive/send."""

    def __init__(self, app: Any, path: str, concurrency: int, *, acks: bool = False) -> None:
        from benchmarks.inprocess_receiver import BODY

        self.app, self.concurrency, self.acks = app, concurrency, acks
        self.message = {"type": "http.request", "body": BODY, "more_body": False}
        self.statuses: Counter[int] = Counter()

    @staticmethod
    def scopes(path: str, pushes: int) -> list[dict[str, Any]]:
        """The pushes' ASGI scopes, built before a measured region (not counted)."""
        from benchmarks.inprocess_receiver import push_headers

        return [
            {"type": "http", "http_version": "1.1", "method": "POST", "path": path,
             "raw_path": path.encode(), "root_path": "", "scheme": "http", "query_string": b"",
             "headers": push_headers(), "client": ("127.0.0.1", 50000),
             "server": ("127.0.0.1", 8000)}
            for _ in range(pushes)
        ]  # fmt: skip

    async def push_round(self, scopes: list[dict[str, Any]]) -> None:
        """Send every scope, ``concurrency`` at a time; then wait for the acks owed."""
        counters = getattr(self.app, "counters", None) if self.acks else None
        acked = counters.totals["acked"] if counters is not None else 0
        answered: Counter[int] = Counter()
        todo = iter(scopes)

        async def receive() -> dict[str, Any]:
            return self.message

        async def send(event: dict[str, Any]) -> None:
            if event["type"] == "http.response.start":
                answered[event["status"]] += 1

        async def pusher() -> None:
            for scope in todo:
                await self.app(scope, receive, send)
                # A server reads the next request in a later event-loop turn: let jobs, batches
                # and the outbox run in between, as they do under uvicorn.
                await asyncio.sleep(0)

        await asyncio.gather(*(pusher() for _ in range(self.concurrency)))
        self.statuses.update(answered)
        if counters is not None and answered[202]:
            owed = acked + answered[202]
            deadline = time.monotonic() + 120
            while counters.totals["acked"] < owed:
                if time.monotonic() > deadline:
                    raise SystemExit("acks missing after 120 s")
                await asyncio.sleep(0.0005)


def worker(args: argparse.Namespace) -> None:
    module, _, name = args.worker.partition(":")
    app = getattr(importlib.import_module(module), name)()
    measure = ctypes.CDLL(args.shim)

    async def run() -> None:
        lifespan = Lifespan(app)
        await lifespan.startup()
        driver = Driver(app, args.path, args.concurrency, acks=args.acks)
        await driver.push_round(Driver.scopes(args.path, args.warmup))  # caches, connections
        scopes = Driver.scopes(args.path, args.pushes)
        gc.collect()
        gc.freeze()
        driver.statuses.clear()
        measure.measure_start()
        await driver.push_round(scopes)
        measure.measure_stop()
        await lifespan.shutdown()
        bad = {k: v for k, v in driver.statuses.items() if not 200 <= k < 300}
        if bad:
            raise SystemExit(f"non-2xx answers in the measured pushes: {bad}")
        print(json.dumps(dict(driver.statuses)), flush=True)

    asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pushes", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--only", nargs="*", help="receiver_apps factories to count")
    parser.add_argument(
        "--app", nargs="*", default=[], help="other factories (module:function) to count"
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--path", default="/orders", help=argparse.SUPPRESS)
    parser.add_argument("--shim", help=argparse.SUPPRESS)
    parser.add_argument("--acks", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    why = available()
    if why:
        sys.exit(f"instructions: {why}")
    names = args.only or ([] if args.app else ["bare", "raw", "fastapi", "router"])
    targets = [
        Target(n, f"benchmarks.receiver_apps:{n}", "/ironmq/orders" if "mount" in n else "/orders")
        for n in names
    ] + [Target(app, app) for app in args.app]
    for name, per_push in count(targets, pushes=args.pushes, concurrency=args.concurrency,
                                warmup=args.warmup).items():  # fmt: skip
        print(f"{name:24s} {per_push:12,.0f} instructions per push")


if __name__ == "__main__":
    main()
