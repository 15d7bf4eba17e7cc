"""Benchmark: flushing 2,000 acks through the outbox vs 2,000 sequential acks.

The server is a minimal ack endpoint (raw ASGI, answers ``{"msg": "Deleted"}``) served by
uvicorn in a subprocess, so the numbers measure the client side. Baseline: 2,000 sequential
``DELETE`` requests over one keep-alive ``httpx.Client``. Contender: the router's
:class:`AckOutbox` (memory store, then SQLite store) flushing 2,000 queued
acks through :class:`~ironpush.AsyncIronMQ`, for several sender counts.

``--latency-ms`` makes the server wait that long before answering, like a real network round
trip to IronMQ (the localhost run is CPU-bound on the client, where concurrency cannot help).

Target: outbox >= 2x the sequential rate. Run: ``.venv/bin/python benchmarks/bench_outbox.py``
(and ``--latency-ms 5``). Not part of CI.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Literal

import httpx

from ironpush.client import AsyncIronMQ
from ironpush.protocol import Delivery
from ironpush.receiver.deferred import AckOutbox, OutboxSettings, delivery_json
from ironpush.receiver.metrics import Counters
from ironpush.receiver.stores import MemoryStore, OutboxItem, SQLiteStore

TARGET = 2.0
LATENCY = float(os.environ.get("BENCH_ACK_LATENCY_MS", "0")) / 1000


async def ack_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The minimal ack endpoint (also handles the lifespan protocol)."""
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
    if LATENCY:
        await asyncio.sleep(LATENCY)
    body = b'{"msg":"Deleted"}'
    headers = [(b"content-type", b"application/json"), (b"content-length", b"17")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(port: int, latency_ms: float) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bench_outbox:ack_app",
            "--app-dir",
            str(Path(__file__).parent),
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        env={**os.environ, "BENCH_ACK_LATENCY_MS": str(latency_ms)},
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            httpx.delete(f"http://127.0.0.1:{port}/ready")
            return proc
        except httpx.TransportError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("ack server did not start")


def sequential(url: str, n: int) -> float:
    body = {"reservation_id": "r", "subscriber_name": "s"}
    with httpx.Client() as client:
        started = time.perf_counter()
        for i in range(n):
            client.request("DELETE", f"{url}/3/projects/p/queues/q/messages/{i}", json=body)
        return n / (time.perf_counter() - started)


async def outbox_rate(
    url: str, n: int, store: Any, concurrency: int, backend: Literal["httpx", "lean"]
) -> float:
    mq = AsyncIronMQ(
        project_id="p", token="t", cloud=url, max_connections=concurrency, backend=backend
    )

    async def get_client() -> AsyncIronMQ:
        return mq

    settings = OutboxSettings(concurrency=concurrency, batch=512)
    box = AckOutbox(store, get_client, Counters(), settings)
    for i in range(n):
        text = delivery_json(Delivery(str(i), reservation_id="r", subscriber_name="s"))
        store.add(OutboxItem("ack", "q", text))
    started = time.perf_counter()
    await box.drain_due()
    elapsed = time.perf_counter() - started
    await mq.aclose()
    assert store.depth() == 0, "outbox not empty"
    return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, nargs="*", default=[1, 2, 4, 8])
    parser.add_argument("--latency-ms", type=float, default=0.0)
    args = parser.parse_args()
    port = free_port()
    server = start_server(port, args.latency_ms)
    print(f"{args.n} acks, server latency {args.latency_ms:g} ms")
    url = f"http://127.0.0.1:{port}"
    try:
        sequential(url, 200)  # warm up both sides
        base = max(sequential(url, args.n) for _ in range(2))
        print(f"sequential httpx.Client : {base:8.0f} acks/s")
        with tempfile.TemporaryDirectory() as tmp:
            for backend in ("httpx", "lean"):
                for concurrency in args.concurrency:
                    memory = asyncio.run(
                        outbox_rate(url, args.n, MemoryStore(), concurrency, backend)
                    )
                    db = SQLiteStore(os.path.join(tmp, f"outbox{backend}{concurrency}.db"))
                    sqlite = asyncio.run(outbox_rate(url, args.n, db, concurrency, backend))
                    db.close()
                    print(
                        f"outbox {backend:<5} x{concurrency:<2} memory: {memory:7.0f} acks/s "
                        f"({memory / base:.2f}x)  sqlite: {sqlite:7.0f} acks/s "
                        f"({sqlite / base:.2f}x)"
                    )
        print(f"target: outbox >= {TARGET:.1f}x sequential")
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()
