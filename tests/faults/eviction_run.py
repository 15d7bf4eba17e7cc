"""The N1 scenario of issue 19, measured: an evicting Redis and 100 redeliveries of handled
messages. Prints one JSON line per policy.

    python tests/faults/eviction_run.py [--policy allkeys-lru] [--allow-eviction]

A redis-server of the run's own (``maxmemory 8mb`` and the policy), a router on it
(``PushSimulator``: in-process pushes, the real Redis), 100 messages handled, then a cache fills
the server until Redis evicted every one of ironpush's claim keys, then the same 100 messages
are pushed again (same ids, new reservations). Counted: pushes answered 503 at first (a refused
store), handler reruns, ``/_health`` after the redeliveries, and the ERROR lines that name
evictions. Run it with ``PYTHONPATH=<another checkout>`` to measure that checkout's code (the
"before" column of RELIABILITY.md; ``--allow-eviction`` needs the current one).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # after PYTHONPATH's checkout

import redis

from faults.servers import OwnRedis
from ironpush.receiver._outcomes import PushMessage
from ironpush.receiver._router import PushRouter
from ironpush.receiver.stores import open_store
from ironpush.testing import PushSimulator

KEYS = ["eviction-run-key-0123456789abcdef"]


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.texts.append(record.getMessage())


def ironpush_keys(client: redis.Redis, prefix: str) -> int:
    return sum(1 for _ in client.scan_iter(match=f"{prefix}:c:*", count=1000))


def fill_until_evicted(client: redis.Redis, prefix: str) -> None:
    for _ in range(10_000):
        if ironpush_keys(client, prefix) == 0:
            return
        pipe = client.pipeline(transaction=False)
        for _ in range(50):
            pipe.set(f"cache:{uuid.uuid4().hex}", os.urandom(5000).hex(), ex=3600)
        pipe.execute()
    raise RuntimeError("Redis never evicted ironpush's keys")


async def measure(server: OwnRedis, *, allow: bool) -> dict[str, Any]:
    prefix = f"ev{uuid.uuid4().hex[:6]}"
    spec = f"{server.url}?prefix={prefix}" + ("&allow_eviction=1" if allow else "")
    store = open_store(spec)
    runs: list[str] = []
    router = PushRouter(secret_keys=KEYS, store=store)

    def handle(msg: PushMessage) -> None:
        runs.append(msg.id)

    router.add_route("/r", handle, queue="q", subscriber="s")
    lines = Lines()
    logging.getLogger("ironpush").addHandler(lines)
    out: dict[str, Any] = {"policy": server.info("memory")["maxmemory_policy"], "allow": allow}
    client = redis.Redis.from_url(server.url)
    try:
        async with PushSimulator(router) as sim:
            first = [
                (await sim.push("/r", "x", message_id=f"m-{n}")).status_code for n in range(100)
            ]
            out["first_pushes_503"] = first.count(503)
            out["handled"] = len(runs)
            if len(runs) == 100:
                fill_until_evicted(client, prefix)
                again = [
                    (await sim.push("/r", "x", message_id=f"m-{n}")).status_code for n in range(100)
                ]
                out["redeliveries_answered"] = {str(c): again.count(c) for c in sorted(set(again))}
                out["handler_reruns"] = len(runs) - 100
            health = await sim.http.get("/_health")
            out["health"] = [health.status_code, health.json().get("status")]
            out["evicted_keys"] = int(server.info("stats")["evicted_keys"])
    except Exception as exc:  # the old code's refusal is none; the new one may stop the start
        out["error"] = f"{type(exc).__name__}: {str(exc)[:120]}"
    finally:
        client.close()
        logging.getLogger("ironpush").removeHandler(lines)
    out["eviction_error_lines"] = sum("evict" in t for t in lines.texts)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--policy", action="append", help="default: allkeys-lru, volatile-lru")
    parser.add_argument("--allow-eviction", action="store_true")
    args = parser.parse_args()
    for policy in args.policy or ["allkeys-lru", "volatile-lru"]:
        with (
            tempfile.TemporaryDirectory() as tmp,
            OwnRedis(Path(tmp), "--maxmemory", "8mb", "--maxmemory-policy", policy) as server,
        ):
            assert isinstance(server, OwnRedis)
            print(json.dumps(asyncio.run(measure(server, allow=args.allow_eviction))), flush=True)


if __name__ == "__main__":
    main()
