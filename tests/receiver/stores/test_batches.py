"""The networked stores fold concurrent calls into batches: each call keeps its own answer.

PostgresStore sends a batch as one statement, RedisStore as one script run. Real PostgreSQL
and Redis throughout (the shared servers, one schema or prefix per test; a private server where
the server's own counts are asserted). The batching rules under test, for both: every call
gets the answer that is its own, a key appears once per batch (a second call on it waits for
the next one), a call refused for its own data fails alone, a cancelled call is not sent (or,
once its batch left, is done by it), and a push never costs more server round trips than the
calls it makes.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from faults.servers import OwnPostgres, OwnRedis
from support import wait_until_async

from ironpush._errors import StoreUnavailable
from ironpush.receiver.stores import PostgresStore, RedisStore, open_store

from .contender import delivery

pytestmark = pytest.mark.anyio

Batched = PostgresStore | RedisStore
BATCHED = ["postgres", "redis"]
#: The method each store sends a batch with (what a test can hold up or count).
SENDS = {"postgres": "_execute", "redis": "_script"}


@pytest.fixture(params=BATCHED)
def batched(request: pytest.FixtureRequest, specs: Callable[[str], str]) -> Batched:
    store = open_store(specs(request.param))
    assert isinstance(store, PostgresStore | RedisStore)
    return store


def _postgres(spec: str) -> PostgresStore:
    store = open_store(spec)
    assert isinstance(store, PostgresStore)
    return store


def _key(message_id: str) -> tuple[str, str]:
    return (message_id, "billing")


async def _gather_in_one_turn(*calls: object) -> list[object]:
    # Every call is made before the event loop turns once: they can share one statement.
    return await asyncio.gather(*calls, return_exceptions=True)  # type: ignore[arg-type]


async def test_concurrent_claims_share_batches_and_each_gets_its_own_answer(
    batched: Batched,
) -> None:
    store = batched
    try:
        await store.check()
        ids = [f"m{i}" for i in range(40)]
        claims = await _gather_in_one_turn(
            *(store.claim(_key(m), delivery(m, "r1"), lease=30, ttl=600) for m in ids),
            # the same message three more times, in the same turn: one claim wins
            *(store.claim(_key("m0"), delivery("m0", f"r{n}"), lease=30, ttl=600)
              for n in (2, 3, 4)),
        )  # fmt: skip
        statuses = Counter(getattr(c, "status", c) for c in claims)
        assert statuses == {"new": 40, "busy": 3}
        assert [getattr(c, "status", None) for c in claims[:40]] == ["new"] * 40
        ids_given = [getattr(c, "claim_id", None) for c in claims[:40]]
        assert len(set(ids_given)) == 40
        batcher = store._batchers["claim"]
        assert batcher.calls == 43
        assert batcher.batches < 43  # folded: fewer batches than calls
        # The newest delivery of m0 is the last redelivery's, whichever batch recorded it.
        newest = await _gather_in_one_turn(
            *(store.complete(_key(m), outcome="acked", ttl=600, delivery=delivery(m, "r1"))
              for m in ids),
        )  # fmt: skip
        assert [getattr(d, "reservation_id", d) for d in newest[1:]] == ["r1"] * 39
        assert getattr(newest[0], "reservation_id", None) in {"r2", "r3", "r4"}
        done = await store.claim(_key("m7"), delivery("m7", "r9"), lease=30, ttl=600)
        assert done.status == "done"
    finally:
        await store.close()


async def test_complete_once_in_a_batch_completes_each_message_once(batched: Batched) -> None:
    store = batched
    try:
        for m in ("a", "b"):
            assert (await store.claim(_key(m), delivery(m, "r1"), lease=30, ttl=600)).claim_id
        answers = await _gather_in_one_turn(
            *(store.complete_once(_key(m), outcome="acked", ttl=600, delivery=delivery(m, "t"))
              for m in ("a", "a", "b", "c")),
        )  # fmt: skip
        a1, a2, b, c = (getattr(x, "reservation_id", x) for x in answers)
        # The second call on "a" waits for the next batch, which finds it handled.
        assert (a1, a2) == ("r1", None)
        assert b == "r1"  # the claim's own delivery, recorded at claim time
        assert c == "t"  # an unknown message: recorded now, acknowledged with the token's
        assert await store.complete_once(_key("b"), outcome="acked", ttl=600,
                                         delivery=delivery("b", "t")) is None  # fmt: skip
    finally:
        await store.close()


async def test_a_postgres_call_refused_for_its_own_data_fails_alone(
    specs: Callable[[str], str],
) -> None:
    store = _postgres(specs("postgres"))
    try:
        await store.check()
        bad = "bad\x00id"  # PostgreSQL text cannot hold NUL
        results = await _gather_in_one_turn(
            *(store.claim(_key(f"g{i}"), delivery(f"g{i}"), lease=30, ttl=600)
              for i in range(10)),
            store.claim(_key(bad), delivery("bad"), lease=30, ttl=600),
        )  # fmt: skip
        assert [getattr(r, "status", None) for r in results[:10]] == ["new"] * 10
        assert isinstance(results[10], StoreUnavailable)
        assert "refused" in str(results[10])
        # Bad data is not an engine failure: the breaker stays closed for the next calls.
        assert (await store.claim(_key("after"), delivery("after"), lease=30, ttl=600)).status == (
            "new"
        )
    finally:
        await store.close()


async def test_a_call_cancelled_before_its_batch_left_is_not_sent(batched: Batched) -> None:
    store = batched
    try:
        await store.check()
        tasks = [
            asyncio.create_task(store.claim(_key(f"c{i}"), delivery(f"c{i}"), lease=30, ttl=600))
            for i in range(6)
        ]
        await asyncio.sleep(0)  # each task queued its call; their batch has not left yet
        for task in tasks[::2]:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert [type(r).__name__ for r in results[::2]] == ["CancelledError"] * 3
        assert [getattr(r, "status", None) for r in results[1::2]] == ["new"] * 3
        for i in (0, 2, 4):  # never claimed: the next claim is the first
            again = await store.claim(_key(f"c{i}"), delivery(f"c{i}"), lease=30, ttl=600)
            assert (again.status, again.attempt) == ("new", 1)
    finally:
        await store.close()


async def test_a_call_cancelled_while_its_batch_runs_is_done_by_it(
    batched: Batched, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = batched
    try:
        await store.check()
        started = asyncio.get_running_loop().create_future()
        send = SENDS[store.kind]
        original = getattr(store, send)

        async def announced(*args: object) -> object:
            if not started.done():
                started.set_result(None)  # the batch is on its way: the caller gives up
            return await original(*args)

        monkeypatch.setattr(store, send, announced)
        task = asyncio.create_task(store.claim(_key("x"), delivery("x"), lease=30, ttl=600))
        await started
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        monkeypatch.setattr(store, send, original)
        # The batch ran: the message is claimed by this (live) process.
        assert (await store.claim(_key("x"), delivery("x"), lease=30, ttl=600)).status == "busy"
        await store.close()  # waits for the batch that was running
    finally:
        await store.close()


async def test_the_postgres_quick_path_never_costs_more_round_trips_than_its_calls(
    tmp_path: Path,
) -> None:
    with OwnPostgres(tmp_path) as server:
        spec = f"{server.url}?schema=rt"
        warm = _postgres(spec)
        await warm.check()  # the schema is created here, not in the counted runs
        await warm.close()

        def transactions() -> int:
            rows = server.sql(
                "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = 'test'",
                database="postgres",
            )
            return int(rows[0][0])  # type: ignore[call-overload]

        async def settled() -> int:
            # A backend reports its counts as it exits: wait until none of the test database's
            # is left and two readings half a second apart agree.
            last = [-1]

            def quiet() -> bool:
                left = server.sql(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = 'test'",
                    database="postgres",
                )
                now, previous = transactions(), last[0]
                last[0] = now
                return left[0][0] == 0 and now == previous

            await wait_until_async(quiet, 30, "the transaction counts to settle", interval=0.5)
            return last[0]

        async def quick_pushes(n: int, in_flight: int) -> int:
            """Transactions the server counted for opening a store, ``n`` quick pushes
            (``in_flight`` at a time) and closing it."""
            before = await settled()
            store = _postgres(spec)
            await store.check()

            async def one(m: str) -> None:
                claim = await store.claim(_key(m), delivery(m), lease=30, ttl=600)
                assert claim.status == "new"
                await store.complete(_key(m), outcome="acked", ttl=600, delivery=delivery(m))

            for start in range(0, n, in_flight):
                await asyncio.gather(*(one(f"{in_flight}-{i}")
                                       for i in range(start, start + in_flight)))  # fmt: skip
            await store.close()
            return await settled() - before

        opening = await quick_pushes(0, 1)
        one_by_one = await quick_pushes(20, 1) - opening
        together = await quick_pushes(64, 32) - opening
        # Each statement's first use on a connection also prepares it, a transaction of its
        # own (PostgreSQL commits the Parse at its Sync): 2 statements, once per connection.
        assert 2 * 20 <= one_by_one <= 2 * 20 + 2, one_by_one
        # 2 x 32 pushes at once: a claim and a complete statement for each 32, or a few more
        # when calls arrive while a statement runs; far below 2 per push.
        assert together <= 2 * 64 // 4, together


async def test_a_redis_call_failing_on_its_own_data_fails_alone(
    specs: Callable[[str], str],
) -> None:
    store = open_store(specs("redis"))
    assert isinstance(store, RedisStore)
    client = redis.Redis.from_url(store.url)
    try:
        await store.check()
        # A claim hash edited by hand: a running claim whose lease is not a number. The claim
        # script fails on it; the calls that share its script run go on.
        bad = _key("bad")
        client.hset(store._key(bad), mapping={"s": "running", "l": "soon", "a": "1"})
        results = await _gather_in_one_turn(
            *(store.claim(_key(f"g{i}"), delivery(f"g{i}"), lease=30, ttl=600)
              for i in range(10)),
            store.claim(bad, delivery("bad"), lease=30, ttl=600),
        )  # fmt: skip
        assert [getattr(r, "status", None) for r in results[:10]] == ["new"] * 10
        assert store._batchers["claim"].batches == 1  # the eleven shared one script run
        assert isinstance(results[10], StoreUnavailable)
        assert "refused the call" in str(results[10])
        # One call's data is not an engine failure: the breaker stays closed for the next.
        assert store.breaker.reason is None
        after = await store.claim(_key("after"), delivery("after"), lease=30, ttl=600)
        assert after.status == "new"
    finally:
        client.close()
        await store.close()


async def test_redis_quick_pushes_at_once_share_script_runs(tmp_path: Path) -> None:
    with OwnRedis(tmp_path) as server:
        store = RedisStore(server.url)
        client = redis.Redis.from_url(server.url)

        def script_runs() -> int:
            stats = client.info("commandstats")
            return sum(int(stats.get(f"cmdstat_{c}", {}).get("calls", 0))
                       for c in ("evalsha", "eval"))  # fmt: skip

        async def one(m: str) -> None:
            claim = await store.claim(_key(m), delivery(m), lease=30, ttl=600)
            assert claim.status == "new"
            await store.complete(_key(m), outcome="acked", ttl=600, delivery=delivery(m))

        try:
            await store.check()
            before = script_runs()
            for i in range(10):  # one by one: a claim and a complete each, as before batches
                await one(f"solo-{i}")
            assert script_runs() - before == 2 * 10
            before = script_runs()
            await asyncio.gather(*(one(f"together-{i}") for i in range(64)))
            # 64 pushes at once: their claims share script runs, then their completions.
            assert script_runs() - before <= 2 * 64 // 4, script_runs() - before
            for i in range(64):  # and each is recorded as its own
                done = await store.claim(_key(f"together-{i}"), delivery("x"), lease=30, ttl=600)
                assert done.status == "done"
        finally:
            client.close()
            await store.close()


async def test_redis_refusing_writes_fails_each_call_of_a_batch_and_opens_the_breaker(
    tmp_path: Path,
) -> None:
    with OwnRedis(tmp_path) as server:
        store = RedisStore(server.url)
        try:
            await store.check()
            # A primary that may not write without a replica refuses each call's first write:
            # every call of the batch fails as the engine's refusal, and nothing was written.
            server.cli("CONFIG", "SET", "min-replicas-to-write", "1")
            results = await _gather_in_one_turn(
                *(store.claim(_key(f"r{i}"), delivery(f"r{i}"), lease=30, ttl=600)
                  for i in range(5)),
            )  # fmt: skip
            assert store._batchers["claim"].batches == 1
            assert [type(r).__name__ for r in results] == ["StoreUnavailable"] * 5
            assert all("NOREPLICAS" in str(r) for r in results)
            assert store.breaker.reason is not None  # the engine refused: the breaker opened
            server.cli("CONFIG", "SET", "min-replicas-to-write", "0")
            assert server.cli("KEYS", "*:c:*") == ""  # no claim was recorded
        finally:
            await store.close()
