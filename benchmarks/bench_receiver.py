"""Benchmark: a PushRouter route vs a bare Starlette endpoint, under the same wrk load.

Each app runs alone in one uvicorn worker (subprocess); ``wrk`` posts pushes with a unique
``Iron-Message-Id`` per request (so dedupe never short-circuits), the push-secret header and a
small body:

- ``bare``: a Starlette ``Route`` endpoint that reads the same headers and the body, answers 200;
- ``router``: ``PushRouter`` (verification + memory dedupe + an async no-op handler) run alone;
- ``mounted``: the same router under ``Starlette(routes=[Mount("/ironmq", router)])``.

Target: router >= 1.0x bare requests/s. Needs ``wrk`` (``apt-get install -y wrk``).
Run: ``.venv/bin/python benchmarks/bench_receiver.py [--duration 8]``. Not part of CI.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from ironpush.receiver.outcomes import PushMessage
from ironpush.receiver.router import PushRouter
from ironpush.signing import push_secret

KEYS = ["bench-old-key", "bench-new-key"]
SECRET = push_secret("orders", "billing", KEYS)
TARGET = 1.0

# --- the apps (imported by uvicorn from this file) ------------------------------------------

router = PushRouter(secret_keys=KEYS)


@router.route("/orders", queue="orders", subscriber="billing")
async def noop(msg: PushMessage) -> None:
    return None


async def bare_endpoint(request: Request) -> JSONResponse:
    headers = request.headers
    _ = (
        headers.get("iron-message-id"),
        headers.get("iron-reservation-id"),
        headers.get("iron-subscriber-name"),
        headers.get("x-ironpush-secret"),
    )
    await request.body()
    return JSONResponse({"status": "acked"})


bare = Starlette(routes=[Route("/orders", bare_endpoint, methods=["POST"])])
mounted = Starlette(routes=[Mount("/ironmq", app=router)], lifespan=router.lifespan)

# --- the load ----------------------------------------------------------------------------------

LUA = """
local counter = 0
local prefix = tostring(math.random(1, 1e9))
request = function()
  counter = counter + 1
  local headers = {}
  headers["Iron-Message-Id"] = prefix .. "-" .. counter
  headers["Iron-Reservation-Id"] = "r" .. counter
  headers["Iron-Subscriber-Name"] = "billing"
  headers["X-Ironpush-Secret"] = "%s"
  headers["Content-Type"] = "text/plain; encoding=utf-8"
  headers["User-Agent"] = "IronMQ Pusherd"
  return wrk.format("POST", "%s", headers, '{"order": 12345, "total": 99.5}')
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(app: str, path: str, duration: int, connections: int) -> float:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            f"bench_receiver:{app}",
            "--app-dir",
            str(Path(__file__).parent),
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/")
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
            script.write(LUA % (SECRET, path))
        url = f"http://127.0.0.1:{port}{path}"
        out = subprocess.run(
            ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "-s", script.name, url],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        if non2xx:
            raise RuntimeError(f"{app}: {non2xx.group(1)} error responses\n{out}")
        match = re.search(r"Requests/sec:\s+([\d.]+)", out)
        assert match, out
        return float(match.group(1))
    finally:
        proc.terminate()
        proc.wait(10)


async def app_time(app: Any, path: str, n: int = 20_000) -> float:
    """Microseconds one push spends in the app itself, driven in-process (no server, no wrk).

    A steadier figure than requests/s: it leaves out the HTTP server, which costs the same
    for every app and dominates the per-request time.
    """
    body = b'{"order": 12345, "total": 99.5}'

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Any) -> None:
        return None

    def scope(i: int) -> dict[str, Any]:
        headers = [
            (b"iron-message-id", f"in-process-{i}".encode()),
            (b"iron-reservation-id", b"r1"),
            (b"iron-subscriber-name", b"billing"),
            (b"x-ironpush-secret", SECRET.encode()),
            (b"content-type", b"text/plain; encoding=utf-8"),
            (b"user-agent", b"IronMQ Pusherd"),
            (b"content-length", str(len(body)).encode()),
        ]
        return {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "scheme": "http",
            "server": ("127.0.0.1", 80),
            "client": ("127.0.0.1", 9),
            "method": "POST",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": b"",
            "headers": headers,
        }

    best = float("inf")
    for attempt in range(3):
        started = time.perf_counter()
        for i in range(n):
            await app(scope(attempt * n + i), receive, send)
        best = min(best, (time.perf_counter() - started) / n * 1e6)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    paths = {"bare": "/orders", "router": "/orders", "mounted": "/ironmq/orders"}
    rates: dict[str, list[float]] = {name: [] for name in paths}
    # Interleaved rounds, and the median of each round's ratio: the machine's speed drifts by
    # more than the difference measured, so only neighbouring runs are compared.
    for _ in range(args.rounds):
        for name, path in paths.items():
            rates[name].append(run(name, path, args.duration, args.connections))
    for name, values in rates.items():
        ratios = sorted(r / b for r, b in zip(values, rates["bare"], strict=True))
        median = ratios[len(ratios) // 2]
        shown = ", ".join(f"{v:.0f}" for v in values)
        print(f"{name:8s}: median {median:.2f}x bare   req/s per round: {shown}")
    print(f"target: router >= {TARGET:.1f}x bare")
    apps = {"bare": bare, "router": router, "mounted": mounted}
    times = {name: asyncio.run(app_time(apps[name], paths[name])) for name in paths}
    print(
        "time in the app per push (in-process, no server): "
        + ", ".join(f"{name} {t:.1f} us" for name, t in times.items())
    )


if __name__ == "__main__":
    main()
