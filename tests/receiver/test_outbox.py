"""The ack outbox: retries until IronMQ confirms, late acks, give-ups, several senders on one
file, and crash recovery."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import pytest
from support import wait_until_async

from ironpush._errors import APIError, NotFound, ReservationExpired, TransportError
from ironpush._protocol import Delivery
from ironpush.receiver._metrics import Counters
from ironpush.receiver._outbox import AckOutbox, OutboxSettings
from ironpush.receiver._router import PushRouter
from ironpush.receiver.stores import MemoryStore, OutboxItem, SQLiteStore
from ironpush.testing import PushSimulator

pytestmark = pytest.mark.anyio
FAST = OutboxSettings(backoff=0.01, max_backoff=0.02, poll_interval=0.05)


def delivery(n: int) -> Delivery:
    return Delivery(f"m{n}", reservation_id=f"r{n}", subscriber_name="s")


class FakeClient:
    """Answers acks from a script of outcomes per message id (an exception or None = ok)."""

    def __init__(self, script: dict[str, list[Exception | None]] | None = None) -> None:
        self.script = script or {}
        self.calls: list[tuple[str, str]] = []
        self.posts: list[tuple[str, str]] = []

    async def acknowledge(self, queue: str, d: Delivery) -> None:
        self.calls.append((queue, d.message_id))
        steps = self.script.get(d.message_id, [])
        outcome = steps.pop(0) if steps else None
        if outcome is not None:
            raise outcome

    async def acknowledge_all(self, acks: list[tuple[str, Delivery]]) -> list[Exception | None]:
        """The outbox's call: :meth:`acknowledge` for each, at once (as the client does)."""

        async def one(queue: str, d: Delivery) -> Exception | None:
            try:
                await self.acknowledge(queue, d)
            except Exception as exc:
                return exc
            return None

        return list(await asyncio.gather(*(one(q, d) for q, d in acks)))

    def queue(self, name: str) -> Any:
        client = self

        class _Q:
            async def post(self, body: str) -> list[str]:
                client.posts.append((name, body))
                return ["id"]

        return _Q()


def outbox(store: Any, client: FakeClient, counters: Counters | None = None) -> AckOutbox:
    return AckOutbox(store, _client(client), counters or Counters(), FAST)


async def test_outbox_sends_everything_and_empties() -> None:
    store, client, counters = MemoryStore(), FakeClient(), Counters()
    box = outbox(store, client, counters)
    futures = [await box.put_ack("q", delivery(i)) for i in range(10)]
    await box.put_post("dlq", "report")
    await box.drain_due()
    assert sorted(m for _, m in client.calls) == sorted(f"m{i}" for i in range(10))
    assert client.posts == [("dlq", "report")]
    assert [f.result() for f in futures] == ["acked"] * 10
    assert await store.depth() == 0
    assert counters.totals["acked"] == 10


class ChunkClient(FakeClient):
    """Records each ``acknowledge_all`` call's size and the most acks in flight at once;
    each call waits until ``release`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.chunks: list[int] = []
        self.in_flight = self.most = 0
        self.release = asyncio.Event()

    async def acknowledge_all(self, acks: list[tuple[str, Delivery]]) -> list[Exception | None]:
        self.chunks.append(len(acks))
        self.in_flight += len(acks)
        self.most = max(self.most, self.in_flight)
        await self.release.wait()
        self.in_flight -= len(acks)
        return await super().acknowledge_all(acks)


async def test_outbox_acks_in_chunks_with_concurrency_acks_in_flight() -> None:
    store, client = MemoryStore(), ChunkClient()
    box = AckOutbox(store, _client(client), Counters(), replace(FAST, concurrency=8))
    for i in range(20):
        await box.queue_ack("q", delivery(i))
    draining = asyncio.ensure_future(box.drain_due())
    await wait_until_async(lambda: client.in_flight == 8, what="four chunks in flight")
    assert client.chunks == [2, 2, 2, 2]  # a quarter of concurrency each, four at a time
    client.release.set()
    await draining
    assert sum(client.chunks) == 20
    assert client.most == 8
    assert sorted(m for _, m in client.calls) == sorted(f"m{i}" for i in range(20))
    assert await store.depth() == 0


async def test_every_ack_of_a_chunk_is_timed_and_counted_by_its_result() -> None:
    store, counters = MemoryStore(), Counters()
    client = FakeClient({"m2": [NotFound(404, "gone")], "m3": [TransportError("reset")]})
    box = AckOutbox(store, _client(client), counters, replace(FAST, concurrency=32))
    for i in range(8):
        await box.queue_ack("q", delivery(i))
    await box.drain_due()  # one chunk of eight: six acked, one late, one to retry
    assert counters.timings is not None
    # (snapshot: cumulative bucket counts, the last one, +Inf, is the count)
    assert {values: counts[-1] for values, counts, _ in counters.timings.ack.snapshot()} == {
        ("q", "", "acked"): 6,
        ("q", "", "late"): 1,
        ("q", "", "retry"): 1,
    }
    acked = counters.timings.ack.series[("q", "", "acked")]
    late = counters.timings.ack.series[("q", "", "late")]
    assert acked.sum == pytest.approx(6 * late.sum)  # each took the call's time
    waits = {values: counts[-1] for values, counts, _ in counters.timings.outbox_wait.snapshot()}
    assert waits == {("q", "", "ack"): 7}  # the one to retry has not ended yet


async def test_outbox_retries_transient_failures_until_confirmed() -> None:
    store, counters = MemoryStore(), Counters()
    flaky = [TransportError("reset"), APIError(503, "busy"), APIError(401, "token")]
    client = FakeClient({"m1": flaky})
    box = outbox(store, client, counters)
    box.start()
    future = await box.put_ack("q", delivery(1))
    with anyio.fail_after(5):
        assert await future == "acked"
    assert client.calls == [("q", "m1")] * 4
    await box.close(1)


@pytest.mark.parametrize(
    "error", [ReservationExpired(403, "Reservation timed out"), NotFound(404, "gone")]
)
async def test_outbox_stops_on_late_acks(error: APIError) -> None:
    store, counters = MemoryStore(), Counters()
    box = outbox(store, FakeClient({"m1": [error]}), counters)
    future = await box.put_ack("q", delivery(1))
    await box.drain_due()
    assert future.result() == "late"
    assert counters.totals["late_acks"] == 1
    assert await store.depth() == 0


async def test_outbox_gives_up_on_permanent_errors_and_old_items() -> None:
    store, counters = MemoryStore(), Counters()
    box = outbox(store, FakeClient({"m1": [APIError(400, "bad")]}), counters)
    future = await box.put_ack("q", delivery(1))
    await box.drain_due()
    assert future.result() == "failed"
    assert counters.totals["ack_failures"] == 1
    old = OutboxItem("ack", "q", delivery=delivery(2), created_at=0.0)
    await store.add(old)
    box.get_client = _failing_client
    await box.drain_due()
    assert await store.depth() == 0
    assert counters.totals["ack_failures"] == 2


async def _failing_client() -> Any:
    raise TransportError("down")


async def test_two_outboxes_on_one_sqlite_file_never_send_an_item_twice(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    client = FakeClient()
    first, second = SQLiteStore(path), SQLiteStore(path)
    for i in range(200):
        await first.add(OutboxItem("ack", "q", delivery=delivery(i)))
    a, b = outbox(first, client), outbox(second, client)
    async with anyio.create_task_group() as tg:
        tg.start_soon(a.drain_due)
        tg.start_soon(b.drain_due)
    assert len(client.calls) == 200
    assert len(set(client.calls)) == 200
    assert await first.depth() == 0
    await first.close()
    await second.close()


async def test_router_startup_flushes_an_outbox_left_by_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "crashed.db"
    left = SQLiteStore(path)
    await left.add(OutboxItem("ack", "orders", delivery=delivery(1)))
    await left.close()
    router = PushRouter(secret_keys=["k"], store=path)
    async with PushSimulator(router) as sim:
        [ack] = await sim.wait_for_acks(1)
        assert (ack.queue, ack.message_id, ack.reservation_id) == ("orders", "m1", "r1")
    reopened = SQLiteStore(path)
    assert await reopened.depth() == 0
    await reopened.close()


class SignallingClient(FakeClient):
    """Confirms every ack, and says when it took the first."""

    def __init__(self) -> None:
        super().__init__()
        self.sent = anyio.Event()

    async def acknowledge(self, queue: str, d: Delivery) -> None:
        await super().acknowledge(queue, d)
        self.sent.set()


class HangingClient(FakeClient):
    """Takes an ack and never answers it (a process that dies mid-send, or is shut down)."""

    def __init__(self) -> None:
        super().__init__()
        self.sent = anyio.Event()

    async def acknowledge(self, queue: str, d: Delivery) -> None:
        self.calls.append((queue, d.message_id))
        self.sent.set()
        await anyio.sleep_forever()


async def test_an_ack_someone_waits_for_is_sent_by_their_process_not_a_sharing_one() -> None:
    # Two processes' outboxes on one store; the other one polls it all the time. The waiting
    # one has no loop running, so only a send of its own can confirm the ack.
    store, mine, theirs = MemoryStore(), FakeClient(), FakeClient()
    box, other = outbox(store, mine), outbox(store, theirs)
    other.start()
    try:
        for n in range(20):
            assert await box.ack_and_wait("q", delivery(n), wait=5) == "acked"
    finally:
        await other.close(1)
    assert mine.calls == [("q", f"m{n}") for n in range(20)]
    assert theirs.calls == []
    assert await store.depth() == 0


async def test_an_ack_its_process_never_confirms_is_sent_by_another_after_the_lease() -> None:
    store, dying, theirs = MemoryStore(), HangingClient(), SignallingClient()
    box = AckOutbox(store, _client(dying), Counters(), OutboxSettings(lease=0.3))
    other = outbox(store, theirs)
    other.start()
    try:
        assert await box.ack_and_wait("q", delivery(1), wait=0.1) is None  # "queued"
        assert dying.calls == [("q", "m1")]
        with anyio.fail_after(10):
            await theirs.sent.wait()  # the other outbox polls; the item is due after the lease
    finally:
        await other.close(1)
    assert theirs.calls == [("q", "m1")]
    assert await store.depth() == 0


async def test_a_waited_ack_that_failed_is_retried_by_the_loop_and_the_caller_told() -> None:
    store, client = MemoryStore(), FakeClient({"m1": [TransportError("reset")]})
    box = outbox(store, client)
    box.start()
    try:
        assert await box.ack_and_wait("q", delivery(1), wait=5) == "acked"
    finally:
        await box.close(1)
    assert client.calls == [("q", "m1")] * 2
    assert await store.depth() == 0


async def test_shutdown_mid_send_makes_the_waited_ack_due_again_at_once() -> None:
    store, hanging = MemoryStore(), HangingClient()
    box = AckOutbox(store, _client(hanging), Counters(), OutboxSettings(lease=3600))
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: box.ack_and_wait("q", delivery(1), wait=30))
        with anyio.fail_after(5):
            await hanging.sent.wait()
        await box.close(0.05)
        tg.cancel_scope.cancel()
    [item] = await store.take(limit=10, lease=1)  # due now, not in an hour
    assert item.delivery == delivery(1)


def _client(client: FakeClient) -> Any:
    async def get_client() -> Any:
        return client

    return get_client
