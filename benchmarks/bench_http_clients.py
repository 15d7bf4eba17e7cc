"""Benchmark: ironpush's lean HTTP/1.1 client vs aiohttp and httpx.AsyncClient, same run.

The lean client (``ironpush/client/lean.py``) exists for the two hot paths that send many small
requests: the dev server's pusher and a receiver's ack outbox. **It stays only while it beats
aiohttp**: this benchmark is the check.

One local server (a raw-ASGI endpoint on uvicorn, pinned to its own CPU) answers every request;
this process (pinned to the other CPU, one event loop, uvloop when installed) keeps the
clients warm and measures them in alternating slots: each cycle runs every (client,
concurrency) pair once for ``--slot`` seconds, the order rotated each cycle. Each client POSTs
a 1 KB JSON body, ``--concurrency`` requests in flight, over keep-alive connections: ``lean``
one request per connection (as many connections as requests in flight), ``lean_pipelined``
up to 8 per connection (HTTP/1.1 pipelining: the requests of one event-loop turn in one
write, what an outbox does with its acks; in real use only idempotent requests are
pipelined). Figures: requests/s, the per-cycle ratio to aiohttp at the same concurrency
(median, IQR), and the CPU per request of this process (the client) and of the server.

Run from the repository root: ``python -m benchmarks.bench_http_clients [--write]``.
Not part of CI.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
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
from ironpush.client._lean import LeanHTTPClient

README = ROOT / "benchmarks" / "README.md"
MARKER = "bench_http_clients"
BODY = b'{"pad": "' + b"x" * 1012 + b'"}'
HEADERS = {"Content-Type": "application/json"}
CLIENTS = ("lean", "lean_pipelined", "aiohttp", "httpx")
Send = Callable[[], Awaitable[None]]


@dataclass
class Measured:
    requests: int
    seconds: float
    client_cpu: float
    server_cpu: float


class Clients:
    """The clients, each with a pool of ``max(concurrency)`` keep-alive connections (the
    pipelined one: 8 requests in flight per connection)."""

    def __init__(self, url: str, pool: int) -> None:
        self.url = url
        self.lean = LeanHTTPClient()
        self.pipelined = LeanHTTPClient(pipeline_depth=8)
        self.aiohttp = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=pool))
        limits = httpx.Limits(max_connections=pool, max_keepalive_connections=pool)
        self.httpx = httpx.AsyncClient(limits=limits)

    def sender(self, name: str) -> Send:
        async def lean() -> None:
            response = await self.lean.request(
                "POST", self.url, headers=list(HEADERS.items()), body=BODY, timeout=10
            )
            assert response.status == 200, response.status

        async def lean_pipelined() -> None:
            response = await self.pipelined.request(
                "POST", self.url, headers=list(HEADERS.items()), body=BODY, timeout=10,
                pipeline=True,
            )  # fmt: skip
            assert response.status == 200, response.status

        async def with_aiohttp() -> None:
            async with self.aiohttp.post(self.url, data=BODY, headers=HEADERS) as response:
                await response.read()
                assert response.status == 200, response.status

        async def with_httpx() -> None:
            response = await self.httpx.post(self.url, content=BODY, headers=HEADERS)
            assert response.status_code == 200, response.status_code

        senders = {"lean": lean, "lean_pipelined": lean_pipelined}
        return {**senders, "aiohttp": with_aiohttp, "httpx": with_httpx}[name]

    async def aclose(self) -> None:
        self.lean.close()
        self.pipelined.close()
        await self.aiohttp.close()
        await self.httpx.aclose()


async def run_slot(send: Send, concurrency: int, seconds: float, server: RunningServer) -> Measured:
    stop = time.perf_counter() + seconds
    count = 0

    async def worker() -> None:
        nonlocal count
        while time.perf_counter() < stop:
            await send()
            count += 1

    server_before, cpu_before, started = server.cpu(), time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return Measured(count, elapsed, time.process_time() - cpu_before, server.cpu() - server_before)


async def alternate(
    server: RunningServer, concurrencies: list[int], cycles: int, slot: float
) -> dict[str, list[Measured]]:
    clients = Clients(server.url + "/push", max(concurrencies))
    pairs = [f"{name}@{c}" for c in concurrencies for name in CLIENTS]
    results: dict[str, list[Measured]] = {pair: [] for pair in pairs}
    try:
        for pair in pairs:  # warm up: connections open, code paths hot
            name, c = pair.split("@")
            await run_slot(clients.sender(name), int(c), 0.5, server)
        for cycle in range(cycles):
            for pair in rotated(pairs, cycle):
                name, c = pair.split("@")
                results[pair].append(await run_slot(clients.sender(name), int(c), slot, server))
            print(f"cycle {cycle + 1}/{cycles} done", file=sys.stderr, flush=True)
    finally:
        await clients.aclose()
    return results


def table(results: dict[str, list[Measured]], concurrencies: list[int]) -> str:
    lines = [
        "| in flight | client | req/s (median) | vs aiohttp, same cycle (median, IQR) "
        "| client CPU µs/req | server CPU µs/req |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    verdicts = []
    for c in concurrencies:
        reference = results[f"aiohttp@{c}"]
        for name in CLIENTS:
            runs = results[f"{name}@{c}"]
            rate = summarize([m.requests / m.seconds for m in runs]).median
            ratios = [
                (m.requests / m.seconds) / (r.requests / r.seconds)
                for m, r in zip(runs, reference, strict=True)
            ]
            client_us = summarize([m.client_cpu / m.requests * 1e6 for m in runs]).median
            server_us = summarize([m.server_cpu / m.requests * 1e6 for m in runs]).median
            lines.append(
                f"| {c} | {name} | {rate:,.0f} | {summarize(ratios)} | {client_us:.0f} "
                f"| {server_us:.0f} |"
            )
            if name == "lean":
                verdicts.append((c, summarize(ratios).median))
    beats = all(ratio > 1.0 for _, ratio in verdicts)
    shown = ", ".join(f"{ratio:.2f}x at {c} in flight" for c, ratio in verdicts)
    lines += [
        "",
        f"Goal: the lean client stays only while it beats aiohttp: lean/aiohttp = {shown}: "
        + ("**met**, keep it." if beats else "**not met**: replace it with aiohttp."),
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, nargs="*", default=[1, 32])
    parser.add_argument("--cycles", type=int, default=16)
    parser.add_argument("--slot", type=float, default=1.0)
    parser.add_argument("--write", action="store_true", help="record in benchmarks/README.md")
    args = parser.parse_args()
    server_cpus, load_cpu = cpu_plan()
    if load_cpu:
        os.sched_setaffinity(0, {int(load_cpu)})
    spec = ServerSpec("server", "benchmarks.receiver_apps:fake_ironmq")
    loop_factory: Any = None
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:
        pass
    with (
        Servers([spec], cpus=server_cpus) as servers,
        asyncio.Runner(loop_factory=loop_factory) as runner,
    ):
        results = runner.run(alternate(servers["server"], args.concurrency, args.cycles, args.slot))
    text = (
        f"{machine()}; {args.cycles} cycles x {args.slot:g} s slots, event loop: "
        f"{'uvloop' if loop_factory else 'asyncio'}, CPUs: server {server_cpus or 'any'}, "
        f"clients {load_cpu or 'any'}. Command: "
        "`python -m benchmarks.bench_http_clients --write`.\n\n" + table(results, args.concurrency)
    )
    print(text)
    if args.write:
        write_between_markers(README, MARKER, text)
        print(f"written: {README.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
