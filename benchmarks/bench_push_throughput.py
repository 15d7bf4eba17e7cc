"""End-to-end push throughput and post→handler latency of the dev server (not a test).

Three processes, as in real use: the dev server (``python -m ironpush.devserver``), a minimal
ASGI subscriber on uvicorn, and this driver, which posts messages to a multicast queue and reads
the subscriber's counters. Figures:

1. throughput: messages posted → pushed → answered 200 → deleted, per second, for N messages
   posted as fast as the API takes them (batches of 100, a few posters in parallel);
2. latency post→handler (p50/p99): the time from the driver sending a POST to the subscriber's
   handler running, measured at a paced rate (unloaded) and during the throughput run (loaded);
3. the HTTP client's own cost: requests/s of ``httpx.AsyncClient`` vs the pusher's keep-alive
   client (:mod:`ironpush.client._lean`) against the same subscriber.

Run: ``.venv/bin/python benchmarks/bench_push_throughput.py [--messages 20000]``.
Target: >= 1,000 messages/s and p50 < 20 ms on a 2-core machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import time
from typing import Any

import httpx

TARGET_RATE = 1000.0
TARGET_P50_MS = 20.0

# ----------------------------------------------------------------------------- subscriber process

SUBSCRIBER = r"""
import json, sys, time
import uvicorn

latencies = []
count = 0

async def app(scope, receive, send):
    global count
    if scope["type"] == "lifespan":
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    body = b""
    more = True
    while more:
        msg = await receive()
        body += msg.get("body", b"")
        more = msg.get("more_body", False)
    if scope["path"] == "/push":
        now = time.time()
        count += 1
        try:
            latencies.append(now - float(body.split(b":", 1)[1]))
        except (IndexError, ValueError):
            pass
        payload = b""
    elif scope["path"] == "/reset":
        latencies.clear()
        count = 0
        payload = b"{}"
    else:
        payload = json.dumps({"count": count, "latencies": latencies}).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(payload)).encode())]})
    await send({"type": "http.response.body", "body": payload})

uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
"""


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_http(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def start_devserver(db: str | None) -> tuple[subprocess.Popen[str], str]:
    cmd = [sys.executable, "-m", "ironpush.devserver", "--port", "0", "--log-level", "warning"]
    cmd += ["--db", db] if db else []
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        found = re.search(r"listening on (http://\S+)", line)
        if found:
            return proc, found.group(1)
    raise RuntimeError("dev server did not start")


# ----------------------------------------------------------------------------- measurements


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


async def post_all(api: str, queue: str, total: int, *, batch: int, posters: int) -> float:
    """Post ``total`` messages in batches; each body carries its send time. Returns duration."""
    limits = httpx.Limits(max_connections=posters)
    async with httpx.AsyncClient(base_url=api, headers=HEADERS, limits=limits) as http:
        remaining = total
        lock = asyncio.Lock()

        async def poster() -> None:
            nonlocal remaining
            while True:
                async with lock:
                    n = min(batch, remaining)
                    remaining -= n
                if n <= 0:
                    return
                now = time.time()
                msgs = [{"body": f"t:{now}"} for _ in range(n)]
                r = await http.post(f"/queues/{queue}/messages", json={"messages": msgs})
                r.raise_for_status()

        start = time.perf_counter()
        await asyncio.gather(*(poster() for _ in range(posters)))
        return time.perf_counter() - start


def subscriber_stats(sub: str) -> dict[str, Any]:
    data: dict[str, Any] = httpx.get(sub + "/stats", timeout=30).json()
    return data


def wait_count(sub: str, total: int, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while True:
        count = subscriber_stats(sub)["count"]
        if count >= total:
            return time.perf_counter()
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {count}/{total} pushes arrived")
        time.sleep(0.02)


HEADERS = {"Authorization": "OAuth dev"}


def push_queue(api: str, sub: str, queue: str) -> str:
    """Create a multicast queue pushing to the subscriber, and reset the subscriber's records."""
    body = {
        "queue": {
            "type": "multicast",
            "push": {"subscribers": [{"name": "s", "url": sub + "/push"}]},
        }
    }
    httpx.put(f"{api}/queues/{queue}", json=body, headers=HEADERS).raise_for_status()
    httpx.post(sub + "/reset")
    return queue


def run_throughput(api: str, dev: str, sub: str, total: int) -> dict[str, float]:
    queue = push_queue(api, sub, f"bench-{os.getpid()}")
    start = time.perf_counter()
    post_seconds = asyncio.run(post_all(api, queue, total, batch=100, posters=4))
    end = wait_count(sub, total, timeout=300)
    idle = httpx.get(dev + "/_dev/idle", params={"timeout": 30}, headers=HEADERS, timeout=40)
    done = time.perf_counter()
    lat = subscriber_stats(sub)["latencies"]
    return {
        "messages": total,
        "post_rate": total / post_seconds,
        "push_rate": total / (end - start),
        "deleted_rate": total / (done - start),
        "idle": float(idle.json()["idle"]),
        "p50_ms": percentile(lat, 50) * 1000,
        "p99_ms": percentile(lat, 99) * 1000,
    }


def run_paced(api: str, sub: str, total: int, rate: float) -> dict[str, float]:
    """Single-message posts at a fixed rate: latency without queueing."""
    queue = push_queue(api, sub, f"paced-{os.getpid()}")
    with httpx.Client(base_url=api, headers=HEADERS) as http:
        start = time.perf_counter()
        for i in range(total):
            due = start + i / rate
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            r = http.post(
                f"/queues/{queue}/messages", json={"messages": [{"body": f"t:{time.time()}"}]}
            )
            r.raise_for_status()
    wait_count(sub, total, timeout=60)
    lat = subscriber_stats(sub)["latencies"]
    return {"p50_ms": percentile(lat, 50) * 1000, "p99_ms": percentile(lat, 99) * 1000}


async def client_cost(sub: str, total: int, concurrency: int) -> dict[str, float]:
    """Requests/s of httpx.AsyncClient vs the pusher's client, same subscriber, same load."""
    from ironpush.client._lean import LeanHTTPClient

    url = sub + "/push"
    body = b"t:0"
    headers = [("Content-Type", "text/plain")]

    async def drive(send: Any) -> float:
        queue = list(range(total))

        async def worker() -> None:
            while queue:
                queue.pop()
                await send()

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return total / (time.perf_counter() - start)

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=10) as http:

        async def via_httpx() -> None:
            r = await http.post(url, content=body, headers=dict(headers))
            assert r.status_code == 200

        await drive(via_httpx)  # warm up connections
        httpx_rate = await drive(via_httpx)

    raw = LeanHTTPClient()

    async def via_raw() -> None:
        r = await raw.request("POST", url, headers=headers, body=body, timeout=10)
        assert r.status == 200

    await drive(via_raw)
    raw_rate = await drive(via_raw)
    raw.close()
    return {"httpx_rps": httpx_rate, "raw_rps": raw_rate}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--paced", type=int, default=1_000, help="messages for the paced run")
    parser.add_argument("--rate", type=float, default=200.0, help="paced run: messages/s")
    parser.add_argument("--db", default=None, help="run the dev server with this SQLite file")
    args = parser.parse_args()
    if args.db and os.path.exists(args.db):
        os.remove(args.db)

    sub_port = free_port()
    sub_proc = subprocess.Popen([sys.executable, "-c", SUBSCRIBER, str(sub_port)])
    dev_proc, dev = start_devserver(args.db)
    sub = f"http://127.0.0.1:{sub_port}"
    api = dev + "/3/projects/dev"
    try:
        wait_http(sub + "/stats")
        wait_http(dev + "/_dev/health")
        state = f"SQLite {args.db}" if args.db else "memory"
        print(f"machine: {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, state: {state}")
        costs = {}
        for concurrency in (1, 32):
            cost = costs[concurrency] = asyncio.run(client_cost(sub, 3_000, concurrency))
            ratio = cost["raw_rps"] / cost["httpx_rps"]
            print(
                f"HTTP client, 3000 POSTs, {concurrency} concurrent: "
                f"httpx.AsyncClient {cost['httpx_rps']:,.0f} req/s, "
                f"pusher client {cost['raw_rps']:,.0f} req/s ({ratio:.1f}x)"
            )
        paced = run_paced(api, sub, args.paced, args.rate)
        print(
            f"latency at {args.rate:g} msg/s (single posts): "
            f"p50 {paced['p50_ms']:.1f} ms, p99 {paced['p99_ms']:.1f} ms"
        )
        t = run_throughput(api, dev, sub, args.messages)
        print(
            f"throughput, {t['messages']:.0f} messages: posted {t['post_rate']:,.0f}/s, "
            f"pushed+200 {t['push_rate']:,.0f}/s, deleted {t['deleted_rate']:,.0f}/s; "
            f"latency under load p50 {t['p50_ms']:.0f} ms, p99 {t['p99_ms']:.0f} ms"
        )
        ok_rate = t["deleted_rate"] >= TARGET_RATE
        ok_p50 = paced["p50_ms"] < TARGET_P50_MS
        print(
            f"target: >= {TARGET_RATE:,.0f} msg/s -> {'met' if ok_rate else 'MISSED'}; "
            f"p50 < {TARGET_P50_MS:g} ms -> {'met' if ok_p50 else 'MISSED'}"
        )
        print(json.dumps({"client": costs, "paced": paced, "throughput": t}))
    finally:
        for proc in (dev_proc, sub_proc):
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
