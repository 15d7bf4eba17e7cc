"""Benchmark: memory per deferred job held in flight (issue 12: <= 3 KB, 10,000 <= 35 MB).

In-process, no server: pushes like ``bench_receiver``'s (1 KB JSON body, ``json=True``, the
route's push secret, unique message ids) are driven through a ``PushRouter`` with an ASGI
receive/send pair; each handler returns ``Defer(job)``, and every job waits on one event, so
``--jobs`` of them are held at once. Measured: Python heap (``tracemalloc``) and, in a second
process without tracemalloc (its own bookkeeping would count), RSS (``/proc/self/statm``)
above the idle router (warmed up by the same number of pushes answered
200, so the dedupe store's remembered messages are in both figures), then the jobs are
released and every ack confirmed by a recording client. Also: a bare ``asyncio`` task per job
waiting on the same event, as the floor.

Run from the repository root::

    python -m benchmarks.bench_deferred_memory [--jobs 10000]

Not part of CI.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path
from typing import Any

from benchmarks.bench_receiver import json_body
from benchmarks.receiver_apps import KEYS, QUEUE, SECRET, SUBSCRIBER
from ironpush import Defer, PushMessage, PushRouter
from ironpush._protocol import Delivery, build_push_headers, message_url
from ironpush._signing import DEFAULT_SECRET_HEADER

PAGE = os.sysconf("SC_PAGE_SIZE")


def rss() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * PAGE


class Acks:
    """Stands in for AsyncIronMQ: records every acknowledgement at once."""

    def __init__(self) -> None:
        self.count = 0

    async def acknowledge(self, queue: str, delivery: Delivery) -> None:
        self.count += 1

    async def acknowledge_all(self, acks: list[tuple[str, Delivery]]) -> list[Exception | None]:
        self.count += len(acks)
        return [None] * len(acks)

    async def aclose(self) -> None:
        return None


def scope_for(i: int, body: bytes) -> dict[str, Any]:
    mid, res = f"m-{i}", f"r-{i}"
    url = message_url("http://127.0.0.1:8080", "dev", QUEUE, mid, SUBSCRIBER, res)
    headers = build_push_headers(
        Delivery(mid, res, SUBSCRIBER, url), subscriber_headers={DEFAULT_SECRET_HEADER: SECRET}
    )
    raw = [(b"host", b"127.0.0.1:8000"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    return {"type": "http", "method": "POST", "path": "/orders", "root_path": "",
            "query_string": b"", "headers": raw}  # fmt: skip


async def push_all(router: PushRouter, start: int, n: int, body: bytes) -> list[int]:
    statuses: list[int] = []
    message = {"type": "http.request", "body": body, "more_body": False}

    async def receive() -> dict[str, Any]:
        return message

    async def send(event: dict[str, Any]) -> None:
        if event["type"] == "http.response.start":
            statuses.append(event["status"])

    for i in range(start, start + n):
        await router(scope_for(i, body), receive, send)
    return statuses


def measured() -> tuple[int, int]:
    gc.collect()
    heap = tracemalloc.get_traced_memory()[0] if tracemalloc.is_tracing() else 0
    return heap, rss()


async def run(jobs: int, *, trace: bool) -> tuple[float, float, float, int]:
    """(heap bytes per job, RSS bytes above idle, heap bytes per bare task, acks confirmed)."""
    body = json_body().encode()
    release = asyncio.Event()
    deferring = False

    async def job() -> None:
        await release.wait()

    router = PushRouter(secret_keys=KEYS, max_deferred=jobs + 1)
    acks = Acks()
    router._set_client(acks)  # type: ignore[arg-type]

    @router.route("/orders", queue=QUEUE, subscriber=SUBSCRIBER, json=True)
    async def orders(msg: PushMessage) -> Defer | None:
        return Defer(job) if deferring else None

    if trace:
        tracemalloc.start()
    assert set(await push_all(router, 0, jobs, body)) == {200}  # warm-up: idle, remembered
    heap0, rss0 = measured()
    deferring = True
    assert set(await push_all(router, jobs, jobs, body)) == {202}
    heap1, rss1 = measured()
    release.set()
    while acks.count < jobs:  # noqa: ASYNC110 - the outbox has no event to wait on
        await asyncio.sleep(0.05)
    await router.shutdown()
    # The floor: one bare task per job waiting on an event.
    floor_event = asyncio.Event()
    heap2, _ = measured()
    tasks = [asyncio.create_task(floor_event.wait()) for _ in range(jobs)]
    await asyncio.sleep(0)
    heap3, _ = measured()
    floor_event.set()
    await asyncio.gather(*tasks)
    tracemalloc.stop()
    return (heap1 - heap0) / jobs, rss1 - rss0, (heap3 - heap2) / jobs, acks.count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--rss-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    jobs = args.jobs
    if args.rss_only:  # the child: no tracemalloc
        print(asyncio.run(run(jobs, trace=False))[1])
        return
    command = [sys.executable, "-m", "benchmarks.bench_deferred_memory", "--rss-only"]
    child = subprocess.run([*command, f"--jobs={jobs}"], capture_output=True, text=True)
    rss_delta = float(child.stdout.split()[-1])
    per_job, _, floor, acked = asyncio.run(run(jobs, trace=True))
    print(f"{jobs:,} deferred jobs held (1 KB JSON body, json=True, memory store):")
    print(f"  Python heap: {per_job * jobs / 1e6:.1f} MB above idle = {per_job / 1024:.2f} KB/job")
    rss_kb = rss_delta / jobs / 1024
    print(f"  RSS:         {rss_delta / 1e6:.1f} MB above idle = {rss_kb:.2f} KB/job")
    print(f"  floor, a bare asyncio task per job: {floor / 1024:.2f} KB/task (heap)")
    print(f"  acks confirmed after release: {acked:,} of {jobs:,}")
    print(f"  goals: <= 3 KB/job {'met' if per_job <= 3 * 1024 else 'NOT met'}; "
          f"{jobs:,} held <= 35 MB RSS {'met' if rss_delta <= 35e6 else 'NOT met'}")  # fmt: skip


if __name__ == "__main__":
    main()
