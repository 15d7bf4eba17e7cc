"""Redis and PostgreSQL specifics: versioned keys/schema, expiry by the engine, bounded
failures when the server is away or hangs, and the round trips a push costs."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager

import psycopg
import pytest
import redis
from faults.services import Service
from support import free_port, wait_until, wait_until_async

from ironpush._errors import StoreUnavailable
from ironpush.receiver.stores import OutboxItem, PostgresStore, RedisStore, open_store

from .contender import delivery

pytestmark = pytest.mark.anyio

KEY = ("m1", "billing")


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP port that accepts connections and never answers (a hung server)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join(timeout=5)
    for conn in accepted:
        conn.close()
    listener.close()


def _stores(port: int) -> list[RedisStore | PostgresStore]:
    return [
        RedisStore(f"redis://127.0.0.1:{port}/0", timeout=0.5),
        PostgresStore(f"postgresql://postgres@127.0.0.1:{port}/test", timeout=0.5),
    ]


@pytest.mark.parametrize("which", [0, 1], ids=["redis", "postgres"])
async def test_an_unreachable_server_is_store_unavailable_in_bounded_time(which: int) -> None:
    store = _stores(free_port())[which]
    try:
        for _ in range(3):  # the second and third fail fast (breaker) or after the timeout
            with pytest.raises(StoreUnavailable) as caught:
                await asyncio.wait_for(store.claim(KEY, delivery("m1"), lease=30, ttl=60), 10)
            assert caught.value.store == store.kind
        with pytest.raises(StoreUnavailable):
            await asyncio.wait_for(store.check(), 10)
    finally:
        await store.close()


@pytest.mark.parametrize("which", [0, 1], ids=["redis", "postgres"])
async def test_a_hung_server_is_store_unavailable_within_the_timeout(
    which: int, silent_server: int
) -> None:
    store = _stores(silent_server)[which]
    try:
        with pytest.raises(StoreUnavailable):
            await asyncio.wait_for(store.claim(KEY, delivery("m1"), lease=30, ttl=60), 10)
        with pytest.raises(StoreUnavailable):
            await asyncio.wait_for(store.check(), 10)
    finally:
        await asyncio.wait_for(store.close(), 10)


# --------------------------------------------------------------------------- Redis


@asynccontextmanager
async def redis_store(
    redis_server: Service, specs: Callable[[str], str]
) -> AsyncIterator[tuple[RedisStore, redis.Redis]]:
    """A RedisStore of its own prefix, and a plain client to look at its keys."""
    store = open_store(specs("redis"))
    assert isinstance(store, RedisStore)
    sync = redis.Redis.from_url(redis_server.url)
    try:
        yield store, sync
    finally:
        sync.close()
        await store.close()


async def test_redis_keys_are_versioned_prefixed_and_expire_by_redis(
    redis_server: Service, specs: Callable[[str], str]
) -> None:
    async with redis_store(redis_server, specs) as (store, sync):
        claim = await store.claim(KEY, delivery("m1"), lease=30, ttl=600)
        assert claim.claim_id
        assert sync.get(f"{store.prefix}:version") == b"1"
        keys = {k.decode() for k in sync.scan_iter(match=f"{store.prefix}:*")}
        claim_key = f"{store.prefix}:c:2:m1:billing"
        assert keys == {f"{store.prefix}:version", claim_key}
        assert 590_000 < sync.pttl(claim_key) <= 600_000
        await store.hold(KEY, claim.claim_id, state="external", lease=3600)
        assert sync.pttl(claim_key) > 3_500_000  # never expires while held
        await store.complete(KEY, outcome="acked", ttl=1, delivery=delivery("m1"))
        assert 0 < sync.pttl(claim_key) <= 1000
        wait_until(lambda: not sync.exists(claim_key), 30, "Redis to expire the handled key")


async def test_a_redis_outbox_item_that_lost_a_field_is_taken_with_it_empty(
    redis_server: Service, specs: Callable[[str], str]
) -> None:
    # take reads an item's fields as they come (text); a field gone from its hash (a key
    # edited by hand, a partial restore) reads as "" instead of failing the whole batch.
    async with redis_store(redis_server, specs) as (store, sync):
        for item_id in ("whole", "lost"):
            await store.add(OutboxItem("ack", "orders", delivery=delivery("m1"), id=item_id))
        sync.hdel(f"{store.prefix}:ob:lost", "q")
        taken = {item.id: item for item in await store.take(limit=10, lease=60)}
        assert (taken["whole"].queue, taken["lost"].queue) == ("orders", "")
        assert taken["lost"].delivery == taken["whole"].delivery == delivery("m1")


async def test_a_redis_prefix_of_another_key_version_is_refused(
    redis_server: Service, specs: Callable[[str], str]
) -> None:
    async with redis_store(redis_server, specs) as (store, sync):
        sync.set(f"{store.prefix}:version", "99")
        with pytest.raises(StoreUnavailable, match="key schema 99"):
            await store.claim(KEY, delivery("m1"), lease=30, ttl=60)


# --------------------------------------------------------------------------- PostgreSQL


async def test_postgres_schema_is_versioned_and_expired_rows_are_purged(
    postgres_server: Service, specs: Callable[[str], str]
) -> None:
    store = open_store(specs("postgres"))
    assert isinstance(store, PostgresStore)
    try:
        await store.claim(KEY, delivery("m1"), lease=30, ttl=600)
        await store.complete(KEY, outcome="acked", ttl=0.2, delivery=delivery("m1"))
        await store.claim(("m2", "billing"), delivery("m2"), lease=30, ttl=0.2)  # active
        with psycopg.connect(postgres_server.url, autocommit=True) as conn:
            schema = store.schema
            version = conn.execute(f'SELECT max(version) FROM "{schema}".schema_version')
            assert version.fetchone() == (1,)
            indexes = conn.execute(
                "SELECT indexname FROM pg_indexes WHERE schemaname = %s", [schema]
            ).fetchall()
            assert ("claims_expiry",) in indexes

            def rows() -> int:
                cur = conn.execute(f'SELECT count(*) FROM "{schema}".claims')
                return int(cur.fetchone()[0])

            async def purged() -> bool:
                await store.purge()
                return rows() == 1  # the handled one; the active claim stays

            await wait_until_async(purged, 30, "the expired row to be purged")
    finally:
        await store.close()


async def test_a_postgres_schema_of_a_newer_version_is_refused(
    postgres_server: Service, specs: Callable[[str], str]
) -> None:
    store = open_store(specs("postgres"))
    assert isinstance(store, PostgresStore)
    with psycopg.connect(postgres_server.url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{store.schema}"')
        conn.execute(f'CREATE TABLE "{store.schema}".schema_version (version integer)')
        conn.execute(f'INSERT INTO "{store.schema}".schema_version VALUES (7)')
    try:
        with pytest.raises(StoreUnavailable, match="version 7, newer"):
            await store.claim(KEY, delivery("m1"), lease=30, ttl=60)
    finally:
        await store.close()


async def test_several_stores_migrating_one_new_schema_at_once_agree(
    postgres_server: Service, specs: Callable[[str], str]
) -> None:
    spec = specs("postgres")
    stores = [open_store(spec) for _ in range(4)]
    try:
        claims = await asyncio.gather(
            *(s.claim(KEY, delivery("m1"), lease=30, ttl=60) for s in stores)
        )
        assert sorted(c.status for c in claims) == ["busy", "busy", "busy", "new"]
    finally:
        for s in stores:
            await s.close()


# --------------------------------------------------------------------------- round trips


@pytest.fixture
def private_redis() -> Iterator[str]:
    """A Redis server of our own, so that its command counts are ours alone."""
    port = free_port()
    proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    try:
        wait_until(lambda: _pings(client), 30, "the private redis-server to answer")
        yield url
    finally:
        client.close()
        proc.kill()
        proc.wait(timeout=30)


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


def redis_round_trips(client: redis.Redis) -> int:
    """Commands the server received from clients (a script's inner calls not counted)."""
    stats = client.info("commandstats")
    return sum(
        int(v["calls"])
        for k, v in stats.items()
        if k in ("cmdstat_evalsha", "cmdstat_eval", "cmdstat_ping", "cmdstat_script|load")
    )


async def test_redis_quick_path_is_two_round_trips_and_deferred_four(private_redis: str) -> None:
    store = RedisStore(private_redis)
    client = redis.Redis.from_url(private_redis)
    try:
        await store.check()  # first use: the version check
        before = redis_round_trips(client)
        claim = await store.claim(KEY, delivery("m1"), lease=30, ttl=600)
        await store.complete(KEY, outcome="acked", ttl=600, delivery=delivery("m1"))
        assert redis_round_trips(client) - before == 2
        key = ("m2", "billing")
        before = redis_round_trips(client)
        claim = await store.claim(key, delivery("m2"), lease=30, ttl=600)
        assert claim.claim_id
        await store.hold(key, claim.claim_id, state="deferred", lease=30)
        newest = await store.complete(key, outcome="acked", ttl=600, delivery=delivery("m2"))
        await store.add(OutboxItem("ack", "q", delivery=newest))
        assert redis_round_trips(client) - before == 4
    finally:
        client.close()
        await store.close()
