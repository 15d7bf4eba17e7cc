"""The dev server at 1k, 10k and 100k messages: is every operation as fast? (not a test)

::

    python -m benchmarks.bench_devserver_scaling [--sizes 1000 10000 100000] [--cycles 10]
        [--calls 200] [--burst 20000] [--write] [--server-path DIR]

Contestants: one dev server process per (state mode, size): memory and SQLite (``--db``), each
holding a pull queue of *size* messages (1.5 x size posted, then the first third deleted by id
without a reservation, the case that used to leave stale entries) and an empty push queue whose
subscriber is a counting HTTP server (a subprocess). All servers are up at once, pinned to the
first CPU with the subscriber (this driver on the last one), and measured in short alternating
slots, the order rotated each cycle (``benchmarks/README.md``, "How we measure").

Per slot and server, ``--calls`` sequential calls over one keep-alive connection (the lean
HTTP client, so the client's own cost stays small): ``post`` (one message), ``reserve``
(``n=1``), ``delete`` (the reserved ones, with their reservation), ``get`` (by id), ``size``
(``GET`` the queue), ``peek`` (``n=100``), ``state`` (``/_dev/state``), and ``push`` (a burst of
``--push-burst`` messages posted to the push queue while ``/_dev/idle`` waits: µs per message
from the first post to idle). A figure is µs per call; the ratio 100k/1k (and 10k/1k) is taken
per cycle, reported as the median with the interquartile range. Goal: every ratio <= 1.3. The
server's CPU per call (``/proc``, summed over all slots) is the second figure.

Then one ``--burst`` (default 20,000 messages, 4 posters, batches of 100) to each 100k
server's push queue: the subscriber counts the TCP connections it accepted (the goal: no more
than the pusher's concurrency, 256) and the post→push latency; the posts' answers show the
back-pressure (held posts, 503s). ``--server-path`` runs the servers from another checkout
(e.g. ``git archive HEAD ironpush | tar -x -C /tmp/old``) for a before/after comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.harness import (
    cpu_plan,
    cpu_seconds,
    free_port,
    machine,
    pinned,
    rotated,
    summarize,
    write_between_markers,
    write_json,
)
from benchmarks.scaling_subscriber import SubscriberProcess
from ironpush.client._lean import LeanHTTPClient
from ironpush.devserver import Retention
from ironpush.devserver._ledger import Ledger
from ironpush.devserver._state import BrokerState
from ironpush.devserver._validation import NewMessage

OPS = ("post", "reserve", "delete", "get", "size", "peek", "state", "push")
GOAL = 1.3
HEADERS = [("Authorization", "OAuth dev"), ("Content-Type", "application/json")]
README = Path(__file__).with_name("README.md")
RESULTS = Path(__file__).with_name("results") / "devserver_scaling.json"
SERVER_CPUS, DRIVER_CPUS = cpu_plan()


@dataclass
class Server:
    mode: str
    size: int
    port: int
    proc: subprocess.Popen[bytes]
    base: str = ""
    cpu: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    calls: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    posted: list[str] = field(default_factory=list)
    reserved: list[tuple[str, str]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.mode}/{self.size}"

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.proc.pid)


def start_server(mode: str, size: int, tmp: Path, server_path: str | None) -> Server:
    port = free_port()
    cmd = [sys.executable, "-m", "ironpush.devserver", "--port", str(port)]
    cmd += ["--log-level", "warning"]
    if mode == "sqlite":
        cmd += ["--db", str(tmp / f"scale-{size}.sqlite")]
    env = dict(os.environ)
    if server_path:  # ``-m`` puts the working directory first on sys.path: run from there
        env["PYTHONPATH"] = server_path
    proc = subprocess.Popen(
        pinned(cmd, SERVER_CPUS),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=server_path or None,
    )
    server = Server(mode, size, port, proc)
    server.base = f"http://127.0.0.1:{port}"
    return server


async def call(
    client: LeanHTTPClient, method: str, url: str, body: Any = None, timeout: float = 120
) -> Any:
    data = json.dumps(body).encode() if body is not None else b""
    response = await client.request(method, url, headers=HEADERS, body=data, timeout=timeout)
    if response.status >= 300:
        raise RuntimeError(f"{method} {url} -> {response.status} {response.body[:200]!r}")
    return json.loads(response.body) if response.body else None


async def wait_up(client: LeanHTTPClient, server: Server) -> None:
    deadline = time.monotonic() + 30
    while True:
        with contextlib.suppress(Exception):
            await call(client, "GET", f"{server.base}/_dev/health", timeout=2)
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{server.name} did not start")
        await asyncio.sleep(0.1)


async def prefill(client: LeanHTTPClient, server: Server, subscriber: str) -> None:
    api = f"{server.base}/3/projects/dev/queues"
    await call(client, "PUT", f"{api}/scale", {})
    push = {"subscribers": [{"name": "s", "url": subscriber}], "retries_delay": 60}
    await call(client, "PUT", f"{api}/push", {"queue": {"type": "multicast", "push": push}})
    total, doomed = server.size + server.size // 2, server.size // 2
    ids: list[str] = []

    async def post(batch: int) -> list[str]:
        body = {"messages": [{"body": f"m{i}"} for i in range(batch)]}
        answer: dict[str, list[str]] = await call(client, "POST", f"{api}/scale/messages", body)
        return answer["ids"]

    for start in range(0, total, 800):
        batches = [min(100, total - s) for s in range(start, min(total, start + 800), 100)]
        for got in await asyncio.gather(*(post(b) for b in batches)):
            ids.extend(got)
    for start in range(0, doomed, 100):
        body = {"ids": [{"id": mid} for mid in ids[start : min(doomed, start + 100)]]}
        await call(client, "DELETE", f"{api}/scale/messages", body)


async def slot(client: LeanHTTPClient, server: Server, op: str, calls: int, burst: int) -> float:
    """Seconds per call (per pushed message for ``push``) of one slot."""
    api = f"{server.base}/3/projects/dev/queues"
    before = server.cpu_seconds()
    started = time.perf_counter()
    if op == "post":
        server.posted = []
        for i in range(calls):
            body = {"messages": [{"body": f"p{i}"}]}
            server.posted += (await call(client, "POST", f"{api}/scale/messages", body))["ids"]
    elif op == "reserve":
        server.reserved = []
        for _ in range(calls):
            answer = await call(client, "POST", f"{api}/scale/reservations", {"timeout": 3600})
            server.reserved += [(m["id"], m["reservation_id"]) for m in answer["messages"]]
    elif op == "delete":
        for mid, rid in server.reserved:
            await call(client, "DELETE", f"{api}/scale/messages/{mid}", {"reservation_id": rid})
    elif op == "get":
        for mid in server.posted:
            await call(client, "GET", f"{api}/scale/messages/{mid}")
    elif op == "size":
        for _ in range(calls):
            await call(client, "GET", f"{api}/scale")
    elif op == "peek":
        for _ in range(calls):
            await call(client, "GET", f"{api}/scale/messages?n=100")
    elif op == "state":
        for _ in range(calls):
            await call(client, "GET", f"{server.base}/_dev/state")
    else:
        return await push_slot(client, server, burst, before, started)
    seconds = time.perf_counter() - started
    server.cpu[op] += server.cpu_seconds() - before
    server.calls[op] += calls
    return seconds / calls


async def push_slot(
    client: LeanHTTPClient, server: Server, burst: int, before: float, started: float
) -> float:
    api = f"{server.base}/3/projects/dev/queues/push/messages"
    for start in range(0, burst, 100):
        body = {"messages": [{"body": f"x{i}"} for i in range(min(100, burst - start))]}
        await call(client, "POST", api, body)
    idle = await call(client, "GET", f"{server.base}/_dev/idle?queue=push&timeout=60", timeout=90)
    if not idle["idle"]:
        raise RuntimeError(f"{server.name}: push burst not delivered in 60 s")
    seconds = time.perf_counter() - started
    server.cpu["push"] += server.cpu_seconds() - before
    server.calls["push"] += burst
    return seconds / burst


async def measure(
    servers: list[Server], client_for: dict[str, LeanHTTPClient], args: argparse.Namespace
) -> dict[str, dict[str, list[float]]]:
    seconds: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    by_name = {s.name: s for s in servers}
    for cycle in range(args.cycles):
        for op in OPS:
            for server in (by_name[n] for n in rotated(list(by_name), cycle)):
                took = await slot(client_for[server.name], server, op, args.calls, args.push_burst)
                seconds[op][server.name].append(took)
        print(f"cycle {cycle + 1}/{args.cycles} done", flush=True)
    return seconds


async def burst(client: LeanHTTPClient, server: Server, total: int) -> dict[str, Any]:
    """``total`` messages by 4 posters to a new push queue with a new subscriber process.

    The subscriber is new, so the pusher has no idle connection to it: every connection it
    counts was opened for this burst (at most the pusher's concurrency means no extra one).
    """
    with SubscriberProcess(pinned([], SERVER_CPUS)) as sub:
        api = f"{server.base}/3/projects/dev/queues/burst"
        push = {"subscribers": [{"name": "s", "url": sub.url + "/push"}], "retries_delay": 60}
        await call(client, "PUT", api, {"queue": {"type": "multicast", "push": push}})
        batches = [min(100, total - s) for s in range(0, total, 100)]
        post_seconds: list[float] = []

        async def poster(mine: list[int]) -> None:
            for n in mine:
                t0 = time.perf_counter()
                body = {"messages": [{"body": f"{time.time():.6f}"} for _ in range(n)]}
                await call(client, "POST", api + "/messages", body)
                post_seconds.append(time.perf_counter() - t0)

        started = time.perf_counter()
        await asyncio.gather(*(poster(batches[i::4]) for i in range(4)))
        idle = f"{server.base}/_dev/idle?queue=burst&timeout=120"
        await call(client, "GET", idle, timeout=150)
        elapsed = time.perf_counter() - started
        stats = await sub.stats()
    latencies = sorted(stats["latencies"])
    return {
        "messages": total,
        "delivered": stats["requests"],
        "connections": stats["connections"],
        "seconds": round(elapsed, 2),
        "rate": round(total / elapsed),
        "post_to_push_p50_ms": round(1000 * statistics.median(latencies), 1),
        "post_to_push_p99_ms": round(1000 * latencies[int(0.99 * (len(latencies) - 1))], 1),
        "slowest_post_ms": round(1000 * max(post_seconds), 1),
    }


def inprocess_peek(sizes: list[int]) -> dict[str, float]:
    """µs for ``peek(q, 100)`` plus the messages' JSON, in this process, per size.

    The state needs no event loop (the pusher owns time): it is driven directly.
    """

    def one(size: int) -> float:
        state = BrokerState(Ledger(Retention()))
        state.post("p", "q", [NewMessage(f"m{i}") for i in range(size + size // 2)])
        q = state.ledger.queue("p", "q")
        for mid in list(q.messages)[: size // 2]:  # deleted by id without a reservation
            state.pull.delete(q, mid, None)
        timings = []
        for _ in range(2000):
            t0 = time.perf_counter()
            [m.to_json() for m in state.pull.peek(q, 100)]
            timings.append(time.perf_counter() - t0)
        return round(1e6 * statistics.median(timings), 1)

    return {str(size): one(size) for size in sizes}


def summarise(
    servers: list[Server], seconds: dict[str, dict[str, list[float]]], sizes: list[int]
) -> dict[str, Any]:
    small, large = min(sizes), max(sizes)
    table: dict[str, Any] = {}
    for mode in sorted({s.mode for s in servers}):
        rows = {}
        for op in OPS:
            row: dict[str, Any] = {}
            for size in sizes:
                name = f"{mode}/{size}"
                server = next(s for s in servers if s.name == name)
                row[f"us_{size}"] = round(1e6 * statistics.median(seconds[op][name]), 1)
                calls = server.calls[op] or 1
                row[f"cpu_us_{size}"] = round(1e6 * server.cpu[op] / calls, 1)
            for size in sizes:
                if size == small:
                    continue
                per_cycle = [
                    b / a
                    for a, b in zip(
                        seconds[op][f"{mode}/{small}"], seconds[op][f"{mode}/{size}"], strict=True
                    )
                ]
                ratio = summarize(per_cycle)
                row[f"ratio_{size}"] = [
                    round(ratio.median, 2),
                    round(ratio.q1, 2),
                    round(ratio.q3, 2),
                ]
            row["goal_met"] = row[f"ratio_{large}"][0] <= GOAL
            rows[op] = row
        table[mode] = rows
    return table


def label(size: int) -> str:
    return f"{size // 1000}k" if size % 1000 == 0 else str(size)


def markdown(result: dict[str, Any]) -> str:
    sizes = result["sizes"]
    small = min(sizes)
    lines = [f"{result['machine']}, `{result['command']}`:", ""]
    for mode, rows in result["table"].items():
        head = ["op", *[f"µs/call {label(s)}" for s in sizes]]
        head += [f"{label(s)}/{label(small)} (IQR)" for s in sizes if s != small]
        head += [f"server CPU µs {label(s)}" for s in (sizes[0], sizes[-1])]
        lines += [f"**{mode}**", "", "| " + " | ".join(head) + " |"]
        lines.append("|" + " --- |" * len(head))
        for op, row in rows.items():
            cells = [op, *[f"{row[f'us_{s}']:,}" for s in sizes]]
            for s in sizes:
                if s != small:
                    med, q1, q3 = row[f"ratio_{s}"]
                    cells.append(f"{med} ({q1}-{q3})")
            cells += [f"{row[f'cpu_us_{s}']:,}" for s in (sizes[0], sizes[-1])]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    if "inprocess_peek_us" in result:
        figures = ", ".join(
            f"{label(int(k))}: {v} µs" for k, v in result["inprocess_peek_us"].items()
        )
        lines += [f"In process, `Store.peek(q, 100)` and the 100 messages' JSON: {figures}.", ""]
    if not result["bursts"]:
        return "\n".join(lines)
    lines += ["Burst into each largest server's push queue (4 posters, batches of 100):", ""]
    lines += [
        "| mode | messages | delivered | TCP connections opened | msg/s | post→push p50 / p99 "
        "| slowest post |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for mode, b in result["bursts"].items():
        lines.append(
            f"| {mode} | {b['messages']:,} | {b['delivered']:,} | {b['connections']} "
            f"| {b['rate']:,} | {b['post_to_push_p50_ms']} ms / {b['post_to_push_p99_ms']} ms "
            f"| {b['slowest_post_ms']} ms |"
        )
    return "\n".join(lines)


@contextlib.contextmanager
def processes(servers: list[Server]) -> Iterator[None]:
    try:
        yield
    finally:
        for server in servers:
            server.proc.terminate()
        for server in servers:
            try:
                server.proc.wait(15)
            except subprocess.TimeoutExpired:
                server.proc.kill()
                server.proc.wait()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    if DRIVER_CPUS:  # the driver on the last CPU, the servers on the others
        os.sched_setaffinity(0, {int(c) for c in DRIVER_CPUS.split(",")})
    tmp = Path(tempfile.mkdtemp(prefix="ironpush-scale-"))
    servers = [
        start_server(mode, size, tmp, args.server_path)
        for mode in args.modes
        for size in args.sizes
    ]
    with processes(servers), SubscriberProcess(pinned([], SERVER_CPUS)) as sub:
        clients = {s.name: LeanHTTPClient() for s in servers}
        setup = LeanHTTPClient(max_idle_per_origin=16)
        for server in servers:
            await wait_up(setup, server)
        for server in servers:
            t0 = time.perf_counter()
            await prefill(setup, server, sub.url + "/push")
            print(f"{server.name}: filled in {time.perf_counter() - t0:.1f} s", flush=True)
        seconds = await measure(servers, clients, args)
        bursts = {}
        for server in servers:
            if server.size == max(args.sizes) and args.burst:
                bursts[server.mode] = await burst(setup, server, args.burst)
                print(f"burst {server.mode}: {bursts[server.mode]}", flush=True)
        for client in (*clients.values(), setup):
            client.close()
    shutil.rmtree(tmp, ignore_errors=True)
    return {
        "machine": machine(),
        "command": "python -m benchmarks.bench_devserver_scaling " + " ".join(sys.argv[1:]),
        "sizes": args.sizes,
        "table": summarise(servers, seconds, args.sizes),
        "bursts": bursts,
        "raw_seconds": {op: dict(v) for op, v in seconds.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    parser.add_argument("--modes", nargs="+", default=["memory", "sqlite"])
    parser.add_argument("--cycles", type=int, default=10)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--push-burst", type=int, default=1000)
    parser.add_argument("--burst", type=int, default=20_000)
    parser.add_argument("--server-path", default=None)
    parser.add_argument("--write", action="store_true", help="record in benchmarks/README.md")
    args = parser.parse_args()
    args.sizes = sorted(args.sizes)
    result = asyncio.run(run(args))
    if not args.server_path:  # the in-process figure is of this checkout's code
        result["inprocess_peek_us"] = inprocess_peek(args.sizes)
    text = markdown(result)
    print(text)
    if args.write:
        write_json(RESULTS, result)
        write_between_markers(README, "bench_devserver_scaling", text)


if __name__ == "__main__":
    main()
