"""The load receiver: the app a subprocess serves under load.

``python -m benchmarks.loadkit.app --fd N`` (from the repository root) serves the already-bound
listening socket ``N`` with uvicorn, one worker: a :class:`PushRouter` mounted at ``/ironmq``
whose one route answers every push with ``Defer(job)``. Configured by environment:

- ``LOAD_MAX_DEFERRED`` (router ``max_deferred``, default 100);
- ``LOAD_JOB_MODE``: ``sleep`` (the job takes ``LOAD_JOB_SECONDS`` +/- 50 %) or ``hold`` (the
  job waits until ``POST /control/release``; at most ``LOAD_HOLD_MAX`` seconds);
- ``LOAD_JOB_KIND``: ``async`` (a task) or ``sync`` (a worker thread, like ``def`` jobs);
- ``LOAD_STORE``: ``memory`` (default) or an SQLite path; ``LOAD_MAX_ENTRIES`` caps the memory
  store (default: the library's 100,000);
- ``LOAD_OUTBOX_CONCURRENCY`` (``OutboxSettings.concurrency``), ``LOAD_ACK_BACKEND`` (``httpx``
  or ``lean``; default: the client the router builds for itself);
- ``IRONMQ_EMULATOR_HOST``: where acks go (an :class:`~benchmarks.loadkit.ack_sink.AckSink`).

``GET /control/stats`` reports the process's asyncio tasks, threads and dedupe entries.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import signal
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from ironpush.receiver._outbox import OutboxSettings
from ironpush.receiver._outcomes import Defer, PushMessage
from ironpush.receiver._router import PushRouter

QUEUE = "load"
SUBSCRIBER = "worker"
PATH = "/jobs"
MOUNT = "/ironmq"
KEYS = ["load-test-key"]


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

        lean = env["LOAD_ACK_BACKEND"] == "lean"
        options["client"] = AsyncIronMQ(backend="lean" if lean else "httpx")
    router = make_router(
        handle, max_deferred=int(env.get("LOAD_MAX_DEFERRED", "100")), store=store, **options
    )

    async def release(request: Request) -> JSONResponse:
        released, gate[0] = gate[0], _Gate()
        released.aio.set()
        released.thread.set()
        return JSONResponse({"released": True})

    async def stats(request: Request) -> JSONResponse:
        entries = getattr(router.store, "entries", None)  # MemoryStore only
        return JSONResponse(
            {
                "tasks": len(asyncio.all_tasks()),
                "threads": threading.active_count(),
                "store_entries": entries,
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


if __name__ == "__main__":
    main()
