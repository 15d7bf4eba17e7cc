"""A relayed message while this process holds it, and what is done with its relay
reservation: kept alive, renewed for a new try, deleted, released, or lost.

Every operation on the reservation takes the message's lock, so a keep-alive touch, the
service's ack (a delete) and a retry (a release) never use a reservation id another one has
just replaced. A refusal (403/404: the reservation ran out, e.g. this process was suspended
past it) marks the message *lost*: IronMQ hands it out again, and its next push is answered
from the service's store if it was handled::

    holds = Holds(mq, settings, emit, counts)
    if await holds.delete(held): ...   # False: lost
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

from .._errors import IronPushError, NotFound, ReservationExpired
from ..client._async_client import AsyncIronMQ
from ..client._models import Message
from ._events import Emit, Event, short
from ._plan import Relay
from ._settings import ListenSettings

State = Literal["held", "done", "released", "lost"]


@dataclass(eq=False)
class Held:
    """A relayed message while this process holds its reservation."""

    relay: Relay
    message: Message
    reservation: str
    since: float  # monotonic time of the last reserve or touch
    state: State = "held"
    forwarded: str | None = None  # the Iron-Reservation-Id of the current try
    acked: asyncio.Event = field(default_factory=asyncio.Event)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def key(self) -> tuple[str, str]:
        return (self.relay.relay_queue, self.message.id)

    @property
    def push_headers(self) -> dict[str, str]:
        found = self.message.raw.get("push_headers")
        return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}


class Holds:
    """The relay-reservation operations of held messages (see the module docs)."""

    def __init__(
        self, mq: AsyncIronMQ, settings: ListenSettings, emit: Emit, counts: Counter[str]
    ) -> None:
        self.mq = mq
        self.settings = settings
        self.emit = emit
        self.counts = counts

    async def keep_alive(self, held: Held) -> None:
        """Touch the relay reservation every ``reservation / 2`` seconds while it is held."""
        half = self.settings.reservation / 2
        due = held.since + half
        while held.state == "held":
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            async with held.lock:
                if held.state != "held" or time.monotonic() < held.since + half:
                    due = held.since + half  # touched meanwhile (a new try)
                    continue
                try:
                    await self.touch(held)
                except IronPushError as exc:  # IronMQ did not answer: try again soon
                    self.warn(held, f"could not keep its reservation ({exc}); trying again")
                    due = time.monotonic() + min(half / 4, 5.0)
                    continue
                due = held.since + half

    async def renew(self, held: Held) -> bool:
        """A new reservation id for a new try (IronMQ gives every push its own)."""
        async with held.lock:
            return held.state == "held" and await self.touch(held)

    async def touch(self, held: Held) -> bool:
        queue = self.mq.queue(held.relay.relay_queue)
        try:
            rid = await queue.touch(
                held.message.id, held.reservation, timeout=self.settings.reservation
            )
        except (NotFound, ReservationExpired):
            self.lose(held)
            return False
        held.reservation, held.since = rid, time.monotonic()
        relay = held.relay
        fields = {"queue": relay.queue, "message_id": held.message.id, "reservation_id": short(rid)}
        text = f"kept {relay.queue} {held.message.id} reserved (reservation {short(rid)})"
        self.emit(Event("touch", text, fields, quiet=True))
        return True

    async def delete(self, held: Held) -> bool:
        async with held.lock:
            if held.state == "done":
                return True
            if held.state != "held":
                return False
            try:
                await self.mq.queue(held.relay.relay_queue).delete(
                    held.message.id, reservation_id=held.reservation
                )
            except (NotFound, ReservationExpired):
                self.lose(held)
                return False
            held.state = "done"
            return True

    async def release(self, held: Held) -> None:
        async with held.lock:
            if held.state != "held":
                return
            try:
                await self.mq.queue(held.relay.relay_queue).release(
                    held.message.id, held.reservation, delay=held.relay.retries_delay
                )
            except (NotFound, ReservationExpired):
                self.lose(held)
                return
            held.state = "released"

    def lose(self, held: Held) -> None:
        held.state = "lost"
        self.counts["lost"] += 1
        self.emit(
            Event(
                "lost",
                f"lost {held.relay.queue} {held.message.id}: the relay reservation ran out (was "
                "this process suspended?); IronMQ hands the message out again",
                {"queue": held.relay.queue, "message_id": held.message.id},
            )
        )

    def warn(self, held: Held, text: str) -> None:
        fields = {"queue": held.relay.queue, "message_id": held.message.id, "error": text}
        self.emit(Event("warning", f"{held.relay.queue} {held.message.id}: {text}", fields))
