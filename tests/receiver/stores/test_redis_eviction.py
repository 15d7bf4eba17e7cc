"""An evicting Redis is refused; an allowed one that evicts fails health and says so every time
(issue 19, N1). Each test runs its own ``redis-server`` (``faults.servers.OwnRedis``) with
``maxmemory`` and the policy under test: never the shared one.

Before: with ``maxmemory`` reached and ``allkeys-lru`` or ``volatile-lru``, 100 of 100
redeliveries of handled messages ran the handler again, ``/_health`` stayed "ok" and nothing
was logged. Now the policy is read with ``INFO`` at start and every ``watch_interval``: anything
but ``noeviction`` refuses (every call 503, the router refuses to start, ``ironpush serve``
exits with the line that names the fix) unless ``allow_eviction`` accepts it (health degraded
with the reason); evictions seen fail health and log a line each time.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from faults.processes import ROOT, python_path
from faults.servers import OwnRedis
from support import build_push, free_port, wait_until, wait_until_async

from ironpush._errors import ConfigError, StoreUnavailable
from ironpush.receiver._outcomes import PushMessage
from ironpush.receiver._router import PushRouter
from ironpush.receiver.stores import RedisStore, open_store
from ironpush.testing import PushSimulator

from .contender import delivery

pytestmark = pytest.mark.anyio
KEYS = ["eviction-key-0123456789abcdef"]
KEY = ("m1", "billing")
EVICTING = [
    "allkeys-lru",
    "allkeys-lfu",
    "allkeys-random",
    "volatile-lru",
    "volatile-lfu",
    "volatile-random",
    "volatile-ttl",
]
FIX = "set maxmemory-policy noeviction"


@pytest.fixture
def own_redis(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[OwnRedis]:
    """A redis-server of this test: ``maxmemory`` 8 MB and the policy the test names."""
    policy = getattr(request, "param", "noeviction")
    with OwnRedis(tmp_path, "--maxmemory", "8mb", "--maxmemory-policy", policy) as server:
        yield server


def counting_router(store: RedisStore) -> tuple[PushRouter, list[str]]:
    runs: list[str] = []
    router = PushRouter(secret_keys=KEYS, store=store)

    def handle(msg: PushMessage) -> None:
        runs.append(msg.id)

    router.add_route("/r", handle, queue="q", subscriber="billing")
    return router, runs


def fill(server: OwnRedis, *, until: Any, volatile: bool = True) -> int:
    """Write cache keys (10 KB, with a TTL when ``volatile``) until ``until()`` holds; how many
    keys Redis evicted meanwhile."""
    client = redis.Redis.from_url(server.url)
    before = int(server.info("stats")["evicted_keys"])
    try:

        def more() -> Any:
            pipe = client.pipeline(transaction=False)
            for _ in range(50):
                name = f"cache:{uuid.uuid4().hex}"
                pipe.set(name, os.urandom(5000).hex(), ex=3600 if volatile else None)
            pipe.execute()
            return until()

        wait_until(more, 60, "the cache fill to reach its goal", interval=0)
    finally:
        client.close()
    return int(server.info("stats")["evicted_keys"]) - before


def ironpush_keys(server: OwnRedis, prefix: str) -> int:
    client = redis.Redis.from_url(server.url)
    try:
        return sum(1 for _ in client.scan_iter(match=f"{prefix}:c:*", count=1000))
    finally:
        client.close()


# --------------------------------------------------------------------------- refused policies


@pytest.mark.parametrize("own_redis", EVICTING, indirect=True)
async def test_an_evicting_policy_is_refused_with_the_fix_and_nothing_is_written(
    own_redis: OwnRedis,
) -> None:
    policy = own_redis.info("memory")["maxmemory_policy"]
    store = RedisStore(own_redis.url)
    router, runs = counting_router(store)
    try:
        with pytest.raises(StoreUnavailable) as refused:
            await store.claim(KEY, delivery("m1"), lease=30, ttl=60)
        line = str(refused.value)
        assert f"maxmemory-policy is {policy}" in line
        assert FIX in line
        assert "of its own" in line
        assert "allow_eviction" in line
        assert "\n" not in line
        assert [p.level for p in store.problems()] == ["refused"]
        with pytest.raises(ConfigError, match=f"maxmemory-policy is {policy}"):
            await router.startup()  # the router refuses to start
        # Served anyway (no lifespan: the first push starts it): every push is refused, no
        # handler runs, and health fails with the line.
        transport = httpx.ASGITransport(app=router)
        async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as http:
            answers = []
            for n in range(5):
                headers, body, _ = build_push(router, "/r", b"x", message_id=f"m-{n}")
                answers.append((await http.post("/r", headers=headers, content=body)).status_code)
            health = await http.get("/_health")
        await router.shutdown()
        assert answers == [503] * 5
        assert runs == []
        assert health.status_code == 503
        assert FIX in health.json()["reason"]
        assert own_redis.cli("DBSIZE") == "0"  # a refused server gets nothing of ours
    finally:
        await store.close()


async def test_noeviction_is_accepted_without_a_problem(own_redis: OwnRedis) -> None:
    store = RedisStore(own_redis.url)
    try:
        assert (await store.claim(KEY, delivery("m1"), lease=30, ttl=60)).status == "new"
        await store.check()
        assert store.problems() == []
    finally:
        await store.close()


async def test_a_policy_changed_at_run_time_is_refused_then_accepted_again(
    own_redis: OwnRedis,
) -> None:
    store = RedisStore(own_redis.url, watch_interval=0.05)
    try:
        await store.claim(KEY, delivery("m1"), lease=30, ttl=60)
        own_redis.cli("CONFIG", "SET", "maxmemory-policy", "allkeys-lru")

        async def refused() -> bool:
            try:
                await store.claim(("m2", "billing"), delivery("m2"), lease=30, ttl=60)
            except StoreUnavailable as exc:
                return "maxmemory-policy is allkeys-lru" in str(exc)
            return False

        await wait_until_async(refused, 10, "the new policy to be refused")
        own_redis.cli("CONFIG", "SET", "maxmemory-policy", "noeviction")

        async def accepted() -> bool:
            try:
                await store.claim(("m3", "billing"), delivery("m3"), lease=30, ttl=60)
            except StoreUnavailable:
                return False
            return True

        await wait_until_async(accepted, 10, "noeviction to be accepted again")
        assert store.problems() == []
    finally:
        await store.close()


def test_ironpush_serve_refuses_to_start_on_an_evicting_redis_naming_the_fix(
    tmp_path: Path,
) -> None:
    with OwnRedis(tmp_path, "--maxmemory", "8mb", "--maxmemory-policy", "volatile-lru") as server:
        proc = subprocess.run(
            [
                *(sys.executable, "-m", "ironpush", "serve", "faults.store_fault_app:app"),
                *("--port", str(free_port()), "--store", server.url, "--lifespan", "on"),
            ],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": python_path(), "IRONPUSH_SECRET_KEYS": KEYS[0]},
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert proc.returncode != 0
    lines = [
        line for line in proc.stderr.splitlines() if "maxmemory-policy is volatile-lru" in line
    ]
    assert lines, proc.stderr
    assert FIX in lines[-1], proc.stderr
    assert "Traceback" not in proc.stderr


# --------------------------------------------------------------------------- allowed, evicting


@pytest.mark.parametrize("own_redis", ["volatile-lru", "allkeys-lru"], indirect=True)
async def test_allowed_eviction_warns_then_evictions_fail_health_and_every_one_is_logged(
    own_redis: OwnRedis, caplog: pytest.LogCaptureFixture
) -> None:
    """The N1 scenario with ``allow_eviction``: 100 handled messages, a cache filling the
    server until Redis evicted all of ironpush's keys, then 100 redeliveries (same ids, new
    reservations). They run the handlers again (the risk accepted), but never silently:
    health fails naming the evictions, and the log counts every evicted key."""
    caplog.set_level(logging.INFO, logger="ironpush")
    prefix = f"ev{uuid.uuid4().hex[:6]}"
    store = open_store(f"{own_redis.url}?prefix={prefix}&allow_eviction=1")
    assert isinstance(store, RedisStore)
    store.watch.interval = 0.05
    router, runs = counting_router(store)
    async with PushSimulator(router) as sim:
        assert any("allowed by allow_eviction" in r.message for r in caplog.records)  # at start
        ready = await sim.http.get("/_health")
        assert ready.status_code == 200
        assert ready.json()["status"] == "degraded"
        assert "allowed by allow_eviction" in ready.json()["reason"]
        for n in range(100):
            assert (await sim.push("/r", "x", message_id=f"m-{n}")).status_code == 200
        assert len(runs) == 100
        assert ironpush_keys(own_redis, prefix) == 100
        evicted = fill(own_redis, until=lambda: ironpush_keys(own_redis, prefix) == 0)
        answers = [(await sim.push("/r", "x", message_id=f"m-{n}")).status_code for n in range(100)]
        health = await sim.http.get("/_health")
    assert answers == [200] * 100
    reruns = len(runs) - 100
    assert reruns == 100  # every handled record was evicted: the accepted risk, now visible
    assert health.status_code == 503
    assert health.json()["status"] == "failing"
    assert "redis evicted" in health.json()["reason"]
    assert FIX in health.json()["reason"]
    lines = [r for r in caplog.records if r.getMessage().startswith("redis evicted ")]
    assert lines
    assert all(getattr(r, "ironpush_every_time", False) for r in lines)
    # Every eviction of the fill is counted by a line (none rate-limited or lost).
    assert sum(int(r.getMessage().split()[2]) for r in lines) >= evicted > 0
