"""Where a push's time goes, in-process: the ``receiver_apps`` driven without a server.

Each app gets the same pushes as ``bench_receiver`` (headers from
``ironpush._protocol.build_push_headers``, a unique message id each, the push secret, a 1 KB
JSON body) through a fake ASGI ``receive``/``send``; rounds of ``--pushes`` alternate between
the apps (order rotated) and each round's thread CPU time per push is taken. Printed: the
median µs per push and the median per-round ratio bare/app. ``--profile APP`` prints a
cProfile of one app instead.

Run from the repository root::

    python -m benchmarks.inprocess_receiver [--rounds 21] [--pushes 2000]
    python -m benchmarks.inprocess_receiver --profile router

Not part of CI.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import itertools
import pstats
import statistics
import time
from typing import Any

from benchmarks import receiver_apps
from benchmarks.bench_receiver import json_body
from ironpush._protocol import Delivery, build_push_headers, message_url
from ironpush._signing import DEFAULT_SECRET_HEADER

APPS = ["bare", "raw", "bare_json", "router", "mounted", "mounted_fast", "mounted_middleware",
        "defer_external"]  # fmt: skip
BODY = json_body().encode()
_ids = itertools.count()


def push_headers() -> list[tuple[bytes, bytes]]:
    n = next(_ids)
    mid, res, sub = f"m{n}", f"r{n}", receiver_apps.SUBSCRIBER
    url = message_url("http://127.0.0.1:8080", "dev", receiver_apps.QUEUE, mid, sub, res)
    headers = build_push_headers(
        Delivery(mid, res, sub, url),
        subscriber_headers={DEFAULT_SECRET_HEADER: receiver_apps.SECRET},
    )
    raw = [(b"host", b"127.0.0.1:8000"), (b"content-length", str(len(BODY)).encode())]
    return raw + [(k.lower().encode(), v.encode()) for k, v in headers.items()]


async def drive(app: Any, path: str, pushes: int) -> float:
    """Thread CPU µs per push for ``pushes`` pushes to ``app``."""
    message = {"type": "http.request", "body": BODY, "more_body": False}

    async def receive() -> dict[str, Any]:
        return message

    async def send(event: dict[str, Any]) -> None:
        return None

    scopes = [
        {"type": "http", "method": "POST", "path": path, "root_path": "", "query_string": b"",
         "headers": push_headers()}
        for _ in range(pushes)
    ]  # fmt: skip
    started = time.thread_time()
    for scope in scopes:
        await app(scope, receive, send)
    return (time.thread_time() - started) / pushes * 1e6


def path_of(name: str) -> str:
    return "/ironmq/orders" if name.startswith("mounted") else "/orders"


async def alternate(rounds: int, pushes: int) -> None:
    apps = {name: getattr(receiver_apps, name)() for name in APPS}
    times: dict[str, list[float]] = {name: [] for name in APPS}
    for r in range(rounds):
        k = r % len(APPS)
        for name in APPS[k:] + APPS[:k]:
            times[name].append(await drive(apps[name], path_of(name), pushes))
    for name in APPS:
        ratio = statistics.median(b / t for b, t in zip(times["bare"], times[name], strict=True))
        print(f"{name:20s} {statistics.median(times[name]):6.1f} µs/push   bare/this {ratio:.2f}")


async def profile(name: str, pushes: int) -> None:
    app = getattr(receiver_apps, name)()
    await drive(app, path_of(name), 500)  # warm up (the router starts its runtime)
    profiler = cProfile.Profile()
    profiler.enable()
    await drive(app, path_of(name), pushes)
    profiler.disable()
    pstats.Stats(profiler).sort_stats("tottime").print_stats(25)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--pushes", type=int, default=2000)
    parser.add_argument("--profile", metavar="APP", help="cProfile one app instead")
    args = parser.parse_args()
    if args.profile:
        asyncio.run(profile(args.profile, max(args.pushes, 20_000)))
    else:
        asyncio.run(alternate(args.rounds, args.pushes))


if __name__ == "__main__":
    main()
