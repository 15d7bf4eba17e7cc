"""Benchmark: flushing acks through the outbox vs sequential acks over keep-alive httpx.

The ack server is a minimal raw-ASGI endpoint (answers ``{"msg": "Deleted"}``) on uvicorn in a
subprocess pinned apart from this process, so the figures measure the client side. Baseline:
``-n`` sequential ``DELETE`` requests over one keep-alive ``httpx.Client``. Contenders: the
router's :class:`~ironpush.receiver._outbox.AckOutbox` (memory store, then SQLite store)
flushing ``-n`` queued acks through :class:`~ironpush.AsyncIronMQ` with the httpx backend,
with the lean backend (the router's default: acks pipelined, up to 8 per connection) and with
the lean backend one ack per connection (``lean-unpipelined``), for several sender counts.
Each cycle measures every contestant once, in a rotated order; each figure is the median of
the per-cycle ratios to the baseline, with the IQR (``benchmarks/harness.py``).

``--latency-ms`` makes the server wait that long before answering, like a real network round
trip to IronMQ (on localhost the client's CPU is the limit, where concurrency cannot help).

Goal: the outbox (lean backend, default senders) >= 4x the sequential rate. Run from the
repository root: ``python -m benchmarks.bench_outbox [--latency-ms 5]``. Not part of CI.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections.abc import Callable
from typing import Any, Literal

import httpx

from benchmarks.harness import (
    ROOT,
    RunningServer,
    Servers,
    ServerSpec,
    cpu_plan,
    machine,
    rotated,
    summarize,
    write_between_markers,
)
from ironpush._protocol import Delivery
from ironpush.client import AsyncIronMQ
from ironpush.client._transports import LeanTransport
from ironpush.receiver._metrics import Counters
from ironpush.receiver._outbox import AckOutbox, OutboxSettings
from ironpush.receiver.stores import MemoryStore, OutboxItem, SQLiteStore, Store

GOAL = 4.0
README = ROOT / "benchmarks" / "README.md"
MARKER = "bench_outbox"
DEFAULT_SENDERS = OutboxSettings().concurrency
Backend = Literal["httpx", "lean", "lean-unpipelined"]


def ack_app() -> Any:
    """The minimal ack endpoint (uvicorn ``--factory``); ``BENCH_ACK_LATENCY_MS`` delays it."""
    latency = float(os.environ.get("BENCH_ACK_LATENCY_MS", "0")) / 1000

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        more = True
        while more:
            more = (await receive()).get("more_body", False)
        if latency:
            await asyncio.sleep(latency)
        headers = [(b"content-type", b"application/json"), (b"content-length", b"17")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b'{"msg":"Deleted"}'})

    return app


def sequential(url: str, n: int) -> float:
    body = {"reservation_id": "r", "subscriber_name": "s"}
    with httpx.Client() as client:
        started = time.perf_counter()
        for i in range(n):
            client.request("DELETE", f"{url}/3/projects/p/queues/q/messages/{i}", json=body)
        return n / (time.perf_counter() - started)


async def outbox_rate(url: str, n: int, store: Store, senders: int, backend: Backend) -> float:
    if backend == "lean-unpipelined":
        transport = LeanTransport(pipeline_depth=1)
        mq = AsyncIronMQ(project_id="p", token="t", cloud=url, transport=transport)
    else:
        mq = AsyncIronMQ(
            project_id="p", token="t", cloud=url, max_connections=senders, backend=backend
        )

    async def get_client() -> AsyncIronMQ:
        return mq

    box = AckOutbox(store, get_client, Counters(), OutboxSettings(concurrency=senders, batch=512))
    for i in range(n):
        delivery = Delivery(str(i), reservation_id="r", subscriber_name="s")
        await store.add(OutboxItem("ack", "q", delivery=delivery))
    started = time.perf_counter()
    await box.drain_due()
    elapsed = time.perf_counter() - started
    await mq.aclose()
    assert await store.depth() == 0, "outbox not empty"
    await store.close()
    return n / elapsed


def contestants(url: str, n: int, senders: list[int], tmp: str) -> dict[str, Callable[[], float]]:
    out: dict[str, Callable[[], float]] = {"sequential": lambda: sequential(url, n)}
    counter = iter(range(1_000_000))

    def sqlite() -> Store:
        return SQLiteStore(os.path.join(tmp, f"outbox{next(counter)}.db"))

    for backend in ("httpx", "lean", "lean-unpipelined"):
        for k in senders:
            for kind, make in (("memory", MemoryStore), ("sqlite", sqlite)):
                name = f"{backend} x{k} {kind}"
                out[name] = _runner(url, n, make, k, backend)
    return out


def _runner(
    url: str, n: int, make: Callable[[], Store], senders: int, backend: Backend
) -> Callable[[], float]:
    return lambda: asyncio.run(outbox_rate(url, n, make(), senders, backend))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=2000, help="acks per measurement")
    parser.add_argument("--senders", type=int, nargs="*", default=[1, 8, DEFAULT_SENDERS])
    parser.add_argument("--cycles", type=int, default=8)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--write", action="store_true", help="record in benchmarks/README.md")
    args = parser.parse_args()
    server_cpus, load_cpu = cpu_plan()
    if load_cpu:  # this process is the load: keep it off the server's CPU
        os.sched_setaffinity(0, {int(load_cpu)})
    spec = ServerSpec(
        "acks", "benchmarks.bench_outbox:ack_app", {"BENCH_ACK_LATENCY_MS": str(args.latency_ms)}
    )
    print(f"{args.n} acks per measurement, server latency {args.latency_ms:g} ms")
    with Servers([spec], cpus=server_cpus) as servers, tempfile.TemporaryDirectory() as tmp:
        server: RunningServer = servers["acks"]
        sequential(server.url, 200)  # warm up both sides
        runs = contestants(server.url, args.n, args.senders, tmp)
        rates: dict[str, list[float]] = {name: [] for name in runs}
        for cycle in range(args.cycles):
            for name in rotated(list(runs), cycle):
                rates[name].append(runs[name]())
            print(f"cycle {cycle + 1}/{args.cycles} done", flush=True)
    text = report(rates, args)
    print(text)
    if args.write:
        write_between_markers(README, MARKER, text)
        print(f"written: {README.relative_to(ROOT)}")


def report(rates: dict[str, list[float]], args: argparse.Namespace) -> str:
    base = summarize(rates["sequential"]).median
    lines = [
        f"{machine()}; {args.cycles} cycles of {args.n:,} acks, server latency "
        f"{args.latency_ms:g} ms. Command: `python -m benchmarks.bench_outbox"
        f"{f' --latency-ms {args.latency_ms:g}' if args.latency_ms else ''} --write`.",
        "",
        f"Baseline: sequential `httpx.Client`, {base:,.0f} acks/s (median).",
        "",
        "| backend | senders | store | acks/s (median) | vs sequential, same cycle (median, IQR) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, values in rates.items():
        if name == "sequential":
            continue
        backend, senders, store = name.split()
        ratios = [r / b for r, b in zip(values, rates["sequential"], strict=True)]
        lines.append(
            f"| {backend} | {senders[1:]} | {store} | {summarize(values).median:,.0f} "
            f"| {summarize(ratios)} |"
        )
    key = f"lean x{DEFAULT_SENDERS} memory"
    if key in rates:
        default = summarize([r / b for r, b in zip(rates[key], rates["sequential"], strict=True)])
        lines += [
            "",
            f"Goal: the outbox (lean backend, {DEFAULT_SENDERS} senders, the defaults) >= "
            f"{GOAL:.0f}x sequential: {default} "
            + ("**met**." if default.median >= GOAL else "**not met**."),
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
