"""The memory store's bound: which messages it forgets first when it is full.

Found by the load test (``tests/faults/test_load.py``): with ``max_entries=2000`` and a pusher
retrying thousands of 503'd pushes a second, each retry moved its failed attempt to the newest
end of one table, so a handled message became the oldest row within a fraction of a second and
was forgotten; IronMQ's redelivery of it then ran the job a second time and acked twice.
"""

from __future__ import annotations

import pytest

from ironpush.receiver.stores import MemoryStore

from .contender import delivery

pytestmark = pytest.mark.anyio


async def fail_once(store: MemoryStore, message_id: str) -> None:
    """A push whose attempt failed (e.g. answered 503): its claim is given up, idle."""
    claim = await store.claim((message_id, "billing"), delivery(message_id), lease=30, ttl=600)
    assert await store.release((message_id, "billing"), claim.claim_id)


async def test_failed_attempts_are_forgotten_before_handled_messages() -> None:
    store = MemoryStore(max_entries=5)
    handled = ("handled", "billing")
    await store.claim(handled, delivery("handled"), lease=30, ttl=600)
    await store.complete(handled, outcome="acked", ttl=600, delivery=delivery("handled"))
    for round_ in range(50):  # retried failures churn through the store
        for i in range(8):
            await fail_once(store, f"failing-{round_}-{i}")
    assert store.entries <= 5
    again = await store.claim(handled, delivery("handled", "r2"), lease=30, ttl=600)
    assert (again.status, again.outcome) == ("done", "acked")


async def test_past_the_bound_the_oldest_handled_message_goes_first() -> None:
    store = MemoryStore(max_entries=3)
    for i in range(3):
        key = (f"m{i}", "billing")
        await store.claim(key, delivery(f"m{i}"), lease=30, ttl=600)
        await store.complete(key, outcome="acked", ttl=600, delivery=delivery(f"m{i}"))
    await store.claim(("m3", "billing"), delivery("m3"), lease=30, ttl=600)
    assert store.entries == 3
    statuses = [
        (await store.claim((f"m{i}", "billing"), delivery(f"m{i}"), lease=30, ttl=600)).status
        for i in (1, 2)
    ]
    assert statuses == ["done", "done"]
    assert (await store.claim(("m0", "billing"), delivery("m0"), lease=30, ttl=600)).status == (
        "new"
    )


async def test_running_work_is_never_forgotten_to_make_room() -> None:
    store = MemoryStore(max_entries=2)
    running = [(f"run{i}", "billing") for i in range(4)]
    for key in running:
        assert (await store.claim(key, delivery(key[0]), lease=30, ttl=600)).status == "new"
    for key in running:
        assert (await store.claim(key, delivery(key[0], "r2"), lease=30, ttl=600)).status == (
            "busy"
        )
