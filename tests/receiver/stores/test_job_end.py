"""The store contract for a deferred job's end, on memory, SQLite, Redis and PostgreSQL.

``AckOutbox.complete_and_queue`` records the push handled and queues the ack of the newest
delivery: in one call where the store folds both (``complete_ack``: memory, SQLite, Redis, one
script), else ``complete`` then ``add``. The assertions are the same for every store: the
completion is recorded, exactly one ack is queued, for the newest reservation; a try repeated
with the same outbox item (its answer lost) queues nothing more.
"""

from __future__ import annotations

import pytest

from ironpush._errors import StoreUnavailable
from ironpush.receiver._metrics import Counters
from ironpush.receiver._outbox import AckOutbox
from ironpush.receiver._timed_store import timed_store
from ironpush.receiver.stores import OutboxItem, Store

from ..flaky_store import FlakyStore
from .contender import delivery

pytestmark = pytest.mark.anyio

KEY = ("m1", "billing")
#: The stores whose ``complete_ack`` does a job's end in one call (the others: two calls).
FOLDS = {"memory", "sqlite", "redis"}


def outbox(store: Store) -> AckOutbox:
    async def no_client() -> object:
        raise AssertionError("nothing is sent here")

    return AckOutbox(store, no_client, Counters())  # type: ignore[arg-type]


async def queued(store: Store) -> list[OutboxItem]:
    return await store.take(limit=10, lease=60)


async def test_a_jobs_end_records_it_and_queues_the_ack_of_the_newest_delivery(
    store: Store,
) -> None:
    await store.claim(KEY, delivery("m1", "r1"), lease=30, ttl=600)
    await store.claim(KEY, delivery("m1", "r2"), lease=30, ttl=600)  # redelivered meanwhile
    box = outbox(store)
    newest = await box.complete_and_queue("orders", KEY, delivery("m1", "r1"), ttl=600)
    assert newest == delivery("m1", "r2")
    assert box.backlog == 1
    [item] = await queued(store)
    assert (item.kind, item.queue, item.delivery) == ("ack", "orders", delivery("m1", "r2"))
    done = await store.claim(KEY, delivery("m1", "r3"), lease=30, ttl=600)
    assert (done.status, done.outcome) == ("done", "acked")


async def test_a_jobs_end_without_an_active_claim_acks_the_jobs_own_delivery(
    store: Store,
) -> None:
    box = outbox(store)
    own = delivery("m1", "r1")
    assert await box.complete_and_queue("orders", KEY, own, ttl=600) == own
    [item] = await queued(store)
    assert item.delivery == own
    done = await store.claim(KEY, delivery("m1", "r2"), lease=30, ttl=600)
    assert (done.status, done.outcome) == ("done", "acked")


async def test_a_jobs_end_tried_again_with_the_same_item_queues_one_ack(store: Store) -> None:
    own = delivery("m1", "r1")
    await store.claim(KEY, own, lease=30, ttl=600)
    item = OutboxItem("ack", "orders", delivery=own, id="the-same-item")
    fold = getattr(store, "complete_ack", None)
    for _ in range(2):  # the first try's answer was lost: the same item is sent again
        if fold is not None:
            await fold(KEY, ttl=600, item=item)
        else:  # a store without the fold: what the outbox does instead
            assert await store.complete(KEY, outcome="acked", ttl=600, delivery=own) == own
            await store.add(item)
    [taken] = await queued(store)
    assert (taken.id, taken.delivery) == ("the-same-item", own)
    assert await store.depth() == 1


async def test_the_stores_that_fold_refuse_anything_but_an_ack(store: Store) -> None:
    fold = getattr(store, "complete_ack", None)
    assert (fold is not None) == (store.kind in FOLDS)
    if fold is not None:
        with pytest.raises(ValueError, match="queues an ack"):
            await fold(KEY, ttl=600, item=OutboxItem("post", "dlq", body="{}"))
    assert await store.depth() == 0


async def test_a_jobs_end_is_timed_as_one_store_operation_where_the_store_folds_it(
    store: Store,
) -> None:
    # The outbox calls complete_ack on the store itself (the memory store's synchronous twin)
    # and times it into the store histogram, as the timed store times the other operations.
    counters = Counters()
    assert counters.timings is not None
    box = AckOutbox(timed_store(store, counters.timings), outbox(store).get_client, counters)
    assert (box._fold_now is not None) == (store.kind == "memory")  # no coroutine for it
    await store.claim(KEY, delivery("m1", "r1"), lease=30, ttl=600)
    await box.complete_and_queue("orders", KEY, delivery("m1", "r1"), ttl=600)
    timed = {
        operation: sum(series.counts)
        for (_, operation), series in counters.timings.store.series.items()
        if sum(series.counts)
    }
    if store.kind in FOLDS:
        assert timed == {"complete_ack": 1}
    else:
        assert timed == {"complete": 1, "add": 1}


async def test_a_jobs_end_that_fails_is_timed_and_raises() -> None:
    # A store whose complete is overridden (here: fails) is asked through its coroutines, its
    # own override included; the failed call is timed like a timed store's.
    store = FlakyStore()
    store.fail.add("complete")
    counters = Counters()
    assert counters.timings is not None
    box = AckOutbox(timed_store(store, counters.timings), outbox(store).get_client, counters)
    assert box._fold_now is None  # its override must not be skipped by the synchronous twin
    await store.claim(KEY, delivery("m1", "r1"), lease=30, ttl=600)
    with pytest.raises(StoreUnavailable):
        await box.complete_and_queue("orders", KEY, delivery("m1", "r1"), ttl=600)
    assert sum(counters.timings.store.labels("memory", "complete_ack").counts) == 1
    assert box.backlog == 0
    assert await store.depth() == 0  # no ack queued for a completion not recorded
