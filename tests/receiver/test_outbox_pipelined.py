"""The outbox's acks over real sockets, pipelined by the lean client (the router's default).

An asyncio server stands in for IronMQ's v3 ack endpoint (``DELETE …/messages/{id}`` with the
reservation and subscriber): it answers each ack as scripted, and may drop a connection midway
through the acks pipelined on it. Acks are idempotent ``DELETE``\\ s with a reservation, so one
the connection lost before its answer is sent again; whatever happens each ends exactly once:
``acked``, or ``late`` when IronMQ refused it (403/404: the reservation ran out).
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest

from ironpush import AsyncIronMQ
from ironpush._protocol import Delivery
from ironpush.receiver._metrics import Counters
from ironpush.receiver._outbox import AckOutbox, OutboxSettings, SendResult
from ironpush.receiver.stores import MemoryStore

pytestmark = pytest.mark.anyio
PATH = "/3/projects/p/queues/orders/messages/"


@dataclass
class FakeIronMQ:
    """What the server saw: each ack's DELETE (message id, its JSON body) and connections."""

    port: int = 0
    deletes: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    connections: int = 0

    def sent(self) -> Counter[str]:
        return Counter(message_id for message_id, _ in self.deletes)


@asynccontextmanager
async def fake_ironmq(
    answer: Callable[[str], tuple[int, str]], *, drop_after: int | None = None
) -> AsyncIterator[FakeIronMQ]:
    """Answers each ack with ``answer(message id)``; ``drop_after``: a connection is closed
    without an answer when it reads that many + 1 requests (the pipelined ones behind it with
    it)."""
    seen = FakeIronMQ()
    writers: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        seen.connections += 1
        served = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                request_line, *lines = head.decode("latin-1").split("\r\n")
                length = next(
                    int(line.split(":", 1)[1])
                    for line in lines
                    if line.lower().startswith("content-length:")
                )
                body = json.loads(await reader.readexactly(length))
                message_id = request_line.split(" ")[1].removeprefix(PATH)
                seen.deletes.append((message_id, body))
                served += 1
                if drop_after is not None and served > drop_after:
                    return
                status, msg = answer(message_id)
                text = json.dumps({"msg": msg}).encode()
                writer.write(
                    b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (status, len(text), text)
                )
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    seen.port = server.sockets[0].getsockname()[1]
    async with server:
        try:
            yield seen
        finally:
            for writer in writers:
                writer.close()


def delivery(n: int) -> Delivery:
    return Delivery(f"m{n}", reservation_id=f"r{n}", subscriber_name="billing")


async def send_acks(port: int, count: int) -> tuple[list[SendResult], Counters, MemoryStore]:
    """Queue ``count`` acks in one outbox (the router's defaults: 32 senders, lean client)
    and flush them once; how each ended."""
    client = AsyncIronMQ(
        project_id="p", token="t", host="127.0.0.1", port=port, protocol="http", backend="lean"
    )
    store, counters = MemoryStore(), Counters()

    async def get_client() -> AsyncIronMQ:
        return client

    box = AckOutbox(store, get_client, counters, OutboxSettings(backoff=0.01, max_backoff=0.05))
    futures = [await box.put_ack("orders", delivery(n)) for n in range(count)]
    try:
        await box.drain_due()
        results = [await asyncio.wait_for(f, 30) for f in futures]
    finally:
        await client.aclose()
    return results, counters, store


async def test_a_batch_with_late_acks_among_good_ones_ends_each_once() -> None:
    late = {"m7": (404, "Message not found"), "m12": (403, "Reservation timed out")}

    async with fake_ironmq(lambda m: late.get(m, (200, "Deleted"))) as ironmq:
        results, counters, store = await send_acks(ironmq.port, 40)
    assert results == ["late" if f"m{n}" in late else "acked" for n in range(40)]
    assert (counters.totals["acked"], counters.totals["late_acks"]) == (38, 2)
    assert ironmq.sent() == Counter(f"m{n}" for n in range(40))  # each DELETE once
    assert ironmq.deletes[0][1] == {"reservation_id": "r0", "subscriber_name": "billing"}
    assert ironmq.connections <= 6  # pipelined: 8 in flight per connection, not 1
    assert await store.depth() == 0


async def test_a_connection_lost_mid_pipeline_ends_every_ack_acked() -> None:
    async with fake_ironmq(lambda m: (200, "Deleted"), drop_after=3) as ironmq:
        results, counters, store = await send_acks(ironmq.port, 40)
    assert results == ["acked"] * 40
    assert counters.totals["acked"] == 40
    assert counters.totals["late_acks"] == counters.totals["ack_failures"] == 0
    sent = ironmq.sent()
    assert set(sent) == {f"m{n}" for n in range(40)}
    # The ones a dropped connection read, or held behind, were sent again: never more than
    # once more each (an idempotent DELETE with its reservation; IronMQ deletes once).
    assert max(sent.values()) <= 2
    assert await store.depth() == 0
