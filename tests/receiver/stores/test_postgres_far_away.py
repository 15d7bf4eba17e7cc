"""PostgresStore with its database far away: +100 ms each way (a managed database in another
zone), through the latency proxy of the health tests (``tests/cli/tcp_proxy.py``).

Opening the store (connect, schema check, migrations on a first start) takes more round trips
than one call's ``timeout`` (2 s, the default, kept here) allows; it used to be bounded by the
first call's deadline, cancelled every time, and the store never opened. Now every round trip
of the open has ``timeout`` to itself: a first start opens, claims and completes, and readiness
says 200 once it is open; a hung database still fails the open instead of holding it up.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from cli.tcp_proxy import DelayProxy
from support import wait_until_async

from ironpush import PushRouter
from ironpush._errors import StoreUnavailable
from ironpush.receiver.stores import PostgresStore, open_store

from .contender import delivery

pytestmark = [pytest.mark.anyio, pytest.mark.slow]  # ~30 round trips of 200 ms

LATENCY = 0.1  # each way
KEYS = ["far-away-key-0123456789abcdef0123456789"]


def _upstream(spec: str) -> tuple[str, int]:
    parts = urlsplit(spec)
    return parts.hostname or "127.0.0.1", parts.port or 5432


def _through(spec: str, port: int) -> PostgresStore:
    """The store of ``spec``, reached through the proxy listening on ``port``."""
    parts = urlsplit(spec)
    user = parts.netloc.rpartition("@")[0]
    netloc = f"{user}@127.0.0.1:{port}" if user else f"127.0.0.1:{port}"
    store = open_store(urlunsplit(parts._replace(netloc=netloc)))
    assert isinstance(store, PostgresStore)
    return store


async def test_a_first_start_100_ms_away_opens_claims_completes_and_is_ready(
    specs: Callable[[str], str],
) -> None:
    spec = specs("postgres")  # a schema of its own, not created yet: the first start migrates
    with DelayProxy(_upstream(spec), delay=LATENCY) as proxy:
        store = _through(spec, proxy.port)
        assert store.timeout == 2.0  # the default: not raised for the latency
        router = PushRouter(store=store, secret_keys=KEYS)
        try:
            await router.startup()  # the router's first read of the store opens it
            key = ("far-1", "billing")
            first = await store.claim(key, delivery("far-1", "r1"), lease=30, ttl=600)
            assert first.status == "new"
            acked = await store.complete(
                key, outcome="acked", ttl=600, delivery=delivery("far-1", "r1")
            )
            assert acked == delivery("far-1", "r1")
            again = await store.claim(key, delivery("far-1", "r2"), lease=30, ttl=600)
            assert (again.status, again.outcome) == ("done", "acked")

            transport = httpx.ASGITransport(app=router)
            async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
                answer = await client.get("/_health/ready")
            body = answer.json()
            assert answer.status_code == 200, body
            assert body["status"] in {"ok", "degraded"}, body  # slow is not down
            # The latency was really there: the probe took at least one round trip.
            assert body["checks"]["store"]["duration"] >= 2 * LATENCY * 0.9, body
        finally:
            await router.shutdown()
            await store.close()

        # A second start finds the schema up to date: it opens and sees the first's claims.
        second = _through(spec, proxy.port)
        try:
            await second.check()
            seen = await second.claim(key, delivery("far-1", "r3"), lease=30, ttl=600)
            assert (seen.status, seen.outcome) == ("done", "acked")
        finally:
            await second.close()
        assert proxy.accepted >= 2


async def test_the_open_is_budgeted_per_round_trip_not_by_one_call_deadline(
    specs: Callable[[str], str],
) -> None:
    spec = specs("postgres")
    with DelayProxy(_upstream(spec), delay=LATENCY) as proxy:
        default = _through(spec, proxy.port)  # opens nothing: only its DSN and schema are used
        # 0.5 s: two round trips and a half per statement, far less than the whole open.
        store = PostgresStore(default.dsn, schema=default.schema, timeout=0.5)
        try:
            loop = asyncio.get_running_loop()
            started = loop.time()
            await store.check()
            took = loop.time() - started
            assert took > store.timeout  # the open outlasted one call's deadline, and opened
            key = ("far-2", "billing")
            claim = await store.claim(key, delivery("far-2", "r1"), lease=30, ttl=600)
            assert claim.status == "new"
        finally:
            await store.close()


async def test_a_hung_database_fails_the_open_instead_of_holding_it_up(
    specs: Callable[[str], str],
) -> None:
    spec = specs("postgres")
    with DelayProxy(_upstream(spec), delay=LATENCY) as proxy:
        proxy.hang()  # accepts, answers nothing
        store = _through(spec, proxy.port)
        try:
            # Each round trip of the open is bounded: it fails (well inside this generous
            # bound, which only catches a hang) rather than waiting forever.
            with pytest.raises(StoreUnavailable, match="postgres store unavailable"):
                await asyncio.wait_for(store.check(), 60)
            proxy.relay()  # the database answers again: a later call opens the store

            async def opens() -> bool:
                try:
                    await store.check()
                except StoreUnavailable:  # the breaker's fail-fast delay (up to 1 s) first
                    return False
                return True

            await wait_until_async(opens, 30, "the store to open once the database answers")
        finally:
            await store.close()
