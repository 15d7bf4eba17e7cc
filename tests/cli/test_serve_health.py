"""Health that tells slow from down (issue 19, N4), against a real ``ironpush serve`` whose
Redis or PostgreSQL store sits behind a TCP proxy (:mod:`tcp_proxy`): +100 ms each way keeps
every readiness answer 200 (ok or degraded) and every push answered; a refused store makes
readiness 503 "failing" within the store's timeout while liveness stays 200; a hung store too.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from serve_app import router
from serve_process import Served, run_serve
from support import build_push, wait_until
from tcp_proxy import DelayProxy

from ironpush.receiver.stores import open_store

REDIS_URL = os.environ.get("IRONPUSH_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES_DSN = os.environ.get(
    "IRONPUSH_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test"
)
STORE_TIMEOUT = 2.0  # the stores' default, which the probe's deadline follows
DEADLINE = STORE_TIMEOUT + 0.5  # the probe's own bound (the store's error comes first)
SLACK = 3.0  # an HTTP round trip on a loaded 2-core machine
LATENCY = 0.1  # each way


def _via(url: str, port: int, option: str, value: str) -> str:
    """``url`` pointed at the proxy on ``port``, with ``option=value`` (prefix or schema)."""
    parts = urlsplit(url)
    user = parts.netloc.rpartition("@")[0]
    netloc = f"{user}@127.0.0.1:{port}" if user else f"127.0.0.1:{port}"
    return _with(urlunsplit(parts._replace(netloc=netloc)), option, value)


def _with(url: str, option: str, value: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{option}={value}"


@pytest.fixture(params=["redis", "postgres"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store_behind_proxy(kind: str) -> Iterator[tuple[DelayProxy, str]]:
    """(the proxy, the store spec through it), the store's keys/schema made before and
    removed after (directly, not through the proxy)."""
    url = REDIS_URL if kind == "redis" else POSTGRES_DSN
    option = "prefix" if kind == "redis" else "schema"
    name = f"h{uuid.uuid4().hex[:10]}"
    parts = urlsplit(url)
    _prepare(_with(url, option, name))
    with DelayProxy((parts.hostname or "127.0.0.1", parts.port or 0)) as proxy:
        yield proxy, _via(url, proxy.port, option, name)
    _forget(kind, url, name)


def _prepare(spec: str) -> None:
    async def migrate() -> None:
        store = open_store(spec)
        try:
            await store.check()  # creates the tables or keys' version marker, without latency
        finally:
            await store.close()

    asyncio.run(migrate())


def _forget(kind: str, url: str, name: str) -> None:
    if kind == "redis":
        import redis

        client = redis.Redis.from_url(url)
        keys = list(client.scan_iter(f"{name}*"))
        if keys:
            client.delete(*keys)
        client.close()
    else:
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


class Pusher(threading.Thread):
    """Signed pushes, one after another, until stopped: the status of each."""

    def __init__(self, served: Served) -> None:
        super().__init__(daemon=True)
        self.url = served.url("/ironmq/ok")
        self.statuses: list[int] = []
        self.stop = threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=30) as client:
            while not self.stop.is_set():
                headers, body, _ = build_push(router, "/ok", b"x")
                self.statuses.append(
                    client.post(self.url, headers=headers, content=body).status_code
                )


Sample = tuple[int, dict[str, Any], float]  # status, JSON body, seconds taken


def sample(served: Served, path: str) -> Sample:
    started = time.monotonic()
    answer = httpx.get(served.url(path), timeout=30)
    return answer.status_code, answer.json(), time.monotonic() - started


@pytest.mark.slow
def test_health_tells_slow_from_down(
    tmp_path: Path, kind: str, store_behind_proxy: tuple[DelayProxy, str]
) -> None:
    proxy, spec = store_behind_proxy
    served = run_serve(tmp_path, "--store", spec, "--log-level", "warning")
    try:
        # The latency comes once the receiver runs, as in the report: its first use of the
        # store (PostgreSQL's connect + migration check) is not what is measured here.
        proxy.delay = LATENCY
        # Slow: +100 ms each way. Every readiness sample is 200, every push answered 200.
        pusher = Pusher(served)
        pusher.start()
        ready: list[Sample] = []
        live: list[Sample] = []
        try:
            while len(ready) < 30:
                ready.append(sample(served, "/ironmq/_health/ready"))
                live.append(sample(served, "/ironmq/_health/live"))
            wait_until(lambda: len(pusher.statuses) >= 20, 60, "20 pushes through the latency")
        finally:
            pusher.stop.set()
            pusher.join(timeout=60)
        shown = next((body for _, body, _ in ready if body["status"] != "ok"), ready[-1][1])
        print(f"{kind} +{LATENCY:g} s each way: {json.dumps(shown)}")  # with pytest -s
        assert [code for code, _, _ in ready] == [200] * 30, ready
        assert {body["status"] for _, body, _ in ready} <= {"ok", "degraded"}
        assert [code for code, _, _ in live] == [200] * 30
        assert set(pusher.statuses) == {200}, pusher.statuses
        durations = [body["checks"]["store"]["duration"] for _, body, _ in ready]
        assert min(durations) >= 2 * LATENCY * 0.9, durations  # the latency was really there
        assert proxy.accepted > 0

        # Down: the proxy refuses. Readiness says "failing" (503) at once, within the store's
        # timeout; liveness stays 200; pushes get 503 (IronMQ retries them).
        proxy.refuse()
        code, body, took = sample(served, "/ironmq/_health/ready")
        assert (code, body["status"]) == (503, "failing"), body
        assert kind in str(body["reason"])
        assert took < DEADLINE + SLACK
        assert sample(served, "/ironmq/_health/live")[:2] == (200, {"status": "ok"})
        assert sample(served, "/ironmq/_health")[0] == 503  # the old name is readiness
        headers, content, _ = build_push(router, "/ok", b"x")
        assert (
            httpx.post(served.url("/ironmq/ok"), headers=headers, content=content).status_code
            == 503
        )

        # Hung: the proxy accepts and forwards nothing. Readiness fails within the deadline.
        proxy.hang()
        wait_until(
            lambda: sample(served, "/ironmq/_health/ready")[0] == 503, 30, "readiness failing"
        )
        for _ in range(3):
            code, body, took = sample(served, "/ironmq/_health/ready")
            assert (code, body["status"]) == (503, "failing"), body
            assert took < DEADLINE + SLACK, took
        assert sample(served, "/ironmq/_health/live")[0] == 200

        # Back: readiness heals by itself.
        proxy.relay()
        wait_until(
            lambda: sample(served, "/ironmq/_health/ready")[0] == 200,
            60,
            "readiness back once the store answers",
            report=served.logs,
        )
    finally:
        served.stop()
