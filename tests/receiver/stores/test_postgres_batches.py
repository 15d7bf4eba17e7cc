"""PostgresStore folds concurrent calls into batch statements: each call keeps its own answer.

Real PostgreSQL throughout (the shared server, one schema per test; a private cluster where
the server's own transaction counts are asserted). The batching rules under test: every call
gets the row that answers it, a key appears once per statement (a second call on it waits for
the next one), a call refused for its own data fails alone, a cancelled call is not sent (or,
once its statement left, is done by it), and a push never costs more server round trips than
the calls it makes.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from faults.servers import OwnPostgres
from support import wait_until_async

from ironpush._errors import StoreUnavailable
from ironpush.receiver.stores import PostgresStore, open_store

from .contender import delivery

pytestmark = pytest.mark.anyio


def _postgres(spec: str) -> PostgresStore:
    store = open_store(spec)
    assert isinstance(store, PostgresStore)
    return store


def _key(message_id: str) -> tuple[str, str]:
    return (message_id, "billing")


async def _gather_in_one_turn(*calls: object) -> list[object]:
    # Every call is made before the event loop turns once: they can share one statement.
    return await asyncio.gather(*calls, return_exceptions=True)  # type: ignore[arg-type]


async def test_concurrent_claims_share_statements_and_each_gets_its_own_answer(
    specs: Callable[[str], str],
) -> None:
    store = _postgres(specs("postgres"))
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
        assert batcher.batches < 43  # folded: fewer statements than calls
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


async def test_complete_once_in_a_batch_completes_each_message_once(
    specs: Callable[[str], str],
) -> None:
    store = _postgres(specs("postgres"))
    try:
        for m in ("a", "b"):
            assert (await store.claim(_key(m), delivery(m, "r1"), lease=30, ttl=600)).claim_id
        answers = await _gather_in_one_turn(
            *(store.complete_once(_key(m), outcome="acked", ttl=600, delivery=delivery(m, "t"))
              for m in ("a", "a", "b", "c")),
        )  # fmt: skip
        a1, a2, b, c = (getattr(x, "reservation_id", x) for x in answers)
        # The second call on "a" waits for the next statement, which finds it handled.
        assert (a1, a2) == ("r1", None)
        assert b == "r1"  # the claim's own delivery, recorded at claim time
        assert c == "t"  # an unknown message: recorded now, acknowledged with the token's
        assert await store.complete_once(_key("b"), outcome="acked", ttl=600,
                                         delivery=delivery("b", "t")) is None  # fmt: skip
    finally:
        await store.close()


async def test_a_call_refused_for_its_own_data_fails_alone(
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


async def test_a_call_cancelled_before_its_statement_left_is_not_sent(
    specs: Callable[[str], str],
) -> None:
    store = _postgres(specs("postgres"))
    try:
        await store.check()
        tasks = [
            asyncio.create_task(store.claim(_key(f"c{i}"), delivery(f"c{i}"), lease=30, ttl=600))
            for i in range(6)
        ]
        await asyncio.sleep(0)  # each task queued its call; their statement has not left yet
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


async def test_a_call_cancelled_while_its_statement_runs_is_done_by_it(
    specs: Callable[[str], str],
) -> None:
    store = _postgres(specs("postgres"))
    try:
        await store.check()
        started = asyncio.get_running_loop().create_future()
        original = store._execute

        async def announced(name: str, params: dict[str, object]) -> list[tuple[object, ...]]:
            if not started.done():
                started.set_result(None)  # the statement is on its way: the caller gives up
            return await original(name, params)

        store._execute = announced  # type: ignore[method-assign]
        task = asyncio.create_task(store.claim(_key("x"), delivery("x"), lease=30, ttl=600))
        await started
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        store._execute = original  # type: ignore[method-assign]
        # The statement ran: the message is claimed by this (live) process.
        assert (await store.claim(_key("x"), delivery("x"), lease=30, ttl=600)).status == "busy"
        await store.close()  # waits for the batch that was running
    finally:
        await store.close()


async def test_the_quick_path_never_costs_more_server_round_trips_than_its_calls(
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
