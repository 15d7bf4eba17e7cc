"""RedisStore's own RESP2 client (``stores/_resp.py``) against a real redis-server of its own:
pipelined answers reach their callers, AUTH and SELECT from the URL, a lost script cache,
the in-flight bound, and a server that dies with calls in flight."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator

import pytest
import redis
from support import free_port, wait_until

from ironpush._errors import StoreUnavailable
from ironpush.receiver.stores import RedisStore
from ironpush.receiver.stores._resp import Busy, RespClient, RespError

from .contender import delivery

pytestmark = pytest.mark.anyio

PASSWORD = "resp-test-pass"


@pytest.fixture
def own_redis() -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A redis-server of our own with a password: (process, url of database 3)."""
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--requirepass", PASSWORD],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    client = redis.Redis(port=port, password=PASSWORD)
    try:
        wait_until(lambda: _answers(client), 30, "the private redis-server to answer")
        yield proc, f"redis://:{PASSWORD}@127.0.0.1:{port}/3"
    finally:
        client.close()
        proc.kill()
        proc.wait(timeout=30)


def _answers(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


async def test_concurrent_pipelined_calls_each_get_their_own_answer(
    own_redis: tuple[subprocess.Popen[bytes], str],
) -> None:
    client = RespClient(own_redis[1], connections=2)
    try:
        answers = await asyncio.gather(*(client.call("ECHO", f"v{i}") for i in range(500)))
        assert answers == [f"v{i}" for i in range(500)]
        await client.call("SET", "k", "in-db-3")
        sync = redis.Redis.from_url(own_redis[1])
        assert sync.get("k") == b"in-db-3"  # SELECT 3 from the URL's path
        sync.close()
        with pytest.raises(RespError, match="WRONGTYPE"):
            await client.call("LPUSH", "k", "x")
        assert await client.call("PING") == "PONG"  # an error answer leaves the socket usable
    finally:
        await client.close()


async def test_a_wrong_password_is_an_error_answer_not_a_hang(
    own_redis: tuple[subprocess.Popen[bytes], str],
) -> None:
    client = RespClient(own_redis[1].replace(PASSWORD, "wrong"), timeout=5)
    try:
        with pytest.raises(RespError, match=r"WRONGPASS|invalid"):
            await client.call("PING")
    finally:
        await client.close()


async def test_the_store_survives_a_flushed_script_cache(
    own_redis: tuple[subprocess.Popen[bytes], str],
) -> None:
    store = RedisStore(own_redis[1])
    sync = redis.Redis.from_url(own_redis[1])
    try:
        key = ("m1", "billing")
        claim = await store.claim(key, delivery("m1"), lease=30, ttl=60)
        assert claim.status == "new"
        sync.script_flush()  # as after a restart: EVALSHA answers NOSCRIPT
        done = await store.complete(key, outcome="acked", ttl=60, delivery=delivery("m1"))
        assert done == delivery("m1")
        assert (await store.claim(key, delivery("m1"), lease=30, ttl=60)).status == "done"
    finally:
        sync.close()
        await store.close()


async def test_calls_beyond_max_in_flight_fail_at_once(
    own_redis: tuple[subprocess.Popen[bytes], str],
) -> None:
    client = RespClient(own_redis[1], connections=1, max_in_flight=1)
    try:
        await client.call("PING")  # connected
        slow = asyncio.ensure_future(client.call("BLPOP", "nothing", "0.5"))
        await asyncio.sleep(0)  # let it send
        with pytest.raises(Busy):
            await client.call("PING")
        assert await slow is None
    finally:
        await client.close()


async def test_a_server_killed_mid_call_fails_every_waiting_call(
    own_redis: tuple[subprocess.Popen[bytes], str],
) -> None:
    proc, url = own_redis
    store = RedisStore(url, timeout=5)
    client = RespClient(url, connections=1, timeout=5)
    try:
        await store.check()
        waiting = [asyncio.ensure_future(client.call("BLPOP", f"q{i}", "10")) for i in range(5)]
        await asyncio.sleep(0.2)  # sent (a BLPOP waits in the server)
        proc.kill()
        results = await asyncio.wait_for(asyncio.gather(*waiting, return_exceptions=True), 10)
        assert all(isinstance(r, ConnectionError) for r in results), results
        with pytest.raises(StoreUnavailable):
            await store.claim(("m1", "billing"), delivery("m1"), lease=30, ttl=60)
    finally:
        await client.close()
        await store.close()


async def test_a_connection_that_breaks_while_others_open_fails_the_call_not_the_next(
    own_redis: tuple[subprocess.Popen[bytes], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    client = RespClient(own_redis[1], connections=2)
    try:
        await client.call("PING")  # both connections open
        client._live[1].abort(ConnectionError("cut"))
        connect = client._connect

        async def connect_while_the_other_breaks() -> object:
            made = await connect()
            client._live[0].abort(ConnectionError("cut meanwhile"))
            return made

        monkeypatch.setattr(client, "_connect", connect_while_the_other_breaks)
        with pytest.raises(ConnectionError, match="while connecting"):
            await client.call("PING")
        monkeypatch.setattr(client, "_connect", connect)
        assert await client.call("PING") == "PONG"  # the next call opens what it needs
        assert len(client._live) == 2
    finally:
        await client.close()
