"""The in-process store (the default): fast, bounded, per process; forgotten on restart."""

from __future__ import annotations

import itertools
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Collection
from dataclasses import replace
from typing import Literal

from ..._protocol import Delivery
from ._base import ActiveState, Claim, Key, OutboxItem, Outcome, StoreProblem
from ._common import ack_delivery

_get, _pop = dict.get, OrderedDict.pop

# Rows are plain tuples, one table per kind of claim, each oldest first:
# - active (running, deferred, external): (state, claim id, lease until, newest delivery,
#   attempts, expires at);
# - idle (the last attempt failed): (newest delivery, attempts, expires at);
# - done (handled): (outcome, attempts, expires at). Done rows hold only strings and numbers:
#   the garbage collector untracks such tuples, and the many remembered messages cost it nothing.
_Active = tuple[str, str, float, Delivery, int, float]
_Idle = tuple[Delivery | None, int, float]
_Done = tuple[str, int, float]


class MemoryStore:
    """In-process claims and outbox (the default), for one process and one event loop.

    Holds at most ``max_entries`` claims; past it, the oldest failed attempts are forgotten
    first, then the oldest handled messages (a forgotten handled message would run again if
    IronMQ pushed it again), and every finished one after its ``ttl``. Everything is lost on
    restart, and each worker process has its own: use
    :class:`~ironpush.receiver.stores.SQLiteStore` (or a networked store) for several workers
    or for durable acks::

        router = PushRouter(secret_keys=keys, store=MemoryStore(max_entries=10_000))

    Its methods never wait, so each is atomic on the event loop that calls it.
    """

    kind = "memory"
    shared = False
    dedupes = True

    def __init__(self, *, max_entries: int = 100_000, clock: Callable[[], float] = time.time):
        if max_entries < 1:
            raise ValueError("max_entries must be >= 1")
        self.max_entries = max_entries
        self._clock = clock
        # Active rows are few (the claims in flight) and come and go on every push: a plain
        # dict (insertion-ordered too) is cheaper to update than an OrderedDict, and its holes
        # at the front, which _trim skips, are bounded by its small size. The others can grow
        # to max_entries and lose their oldest rows one at a time: OrderedDicts.
        self._active: dict[Key, _Active] = {}
        self._idle: OrderedDict[Key, _Idle] = OrderedDict()
        self._done: OrderedDict[Key, _Done] = OrderedDict()
        self._outbox: dict[str, OutboxItem] = {}
        self._leases: dict[str, float] = {}
        # Claim ids only need to be unique within this store: a counter is cheaper than uuid4.
        self._prefix = uuid.uuid4().hex[:8] + "-"
        self._seq = itertools.count(1)
        self._trimmed = float("-inf")  # when expired rows last went

    def __repr__(self) -> str:
        return f"MemoryStore(entries={self.entries}, outbox={len(self._outbox)})"

    @property
    def entries(self) -> int:
        """How many messages the store remembers now (active, failed and handled ones)."""
        return len(self._active) + len(self._idle) + len(self._done)

    # --- claims ------------------------------------------------------------------------------

    async def claim(self, key: Key, delivery: Delivery, *, lease: float, ttl: float) -> Claim:
        status, detail, attempt = self.claim_now(key, delivery, lease, ttl)
        if status == "new":
            return Claim("new", claim_id=detail, attempt=attempt)
        if status == "done":
            return Claim("done", outcome=detail)
        return Claim("busy", state=detail)

    # The pipeline's quick path calls these two synchronous twins of claim/complete (this
    # store never waits: a coroutine per call would cost a push more than the dict work).

    def claim_now(
        self, key: Key, delivery: Delivery, lease: float, ttl: float
    ) -> tuple[Literal["new", "done", "busy"], str, int]:
        """:meth:`claim`, synchronous: ``(status, claim id | done outcome | busy state,
        attempt)``."""
        clock = self._clock  # (an attribute, not a method: read, then called)
        now = clock()
        attempts = 1
        done_rows = self._done
        done = _get(done_rows, key)  # dict.get: an OrderedDict's own lookup, without the
        if done is not None:  # generic method lookup its instance dict costs
            if done[2] > now:
                return "done", done[0], done[1]
            del done_rows[key]  # forgotten after its ttl: a new message again
        active = self._active
        row = active.get(key)
        if row is not None:
            if row[2] > now:
                active[key] = (row[0], row[1], row[2], delivery, row[4], row[5])
                return "busy", row[0], row[4]
            del active[key]  # the lease ran out: taken over
            attempts = row[4] + 1
        idle_rows = self._idle
        if idle_rows:
            idle = _pop(idle_rows, key, None)
            if idle is not None:
                attempts = idle[1] + 1
        claim_id = f"{self._prefix}{next(self._seq)}"
        active[key] = ("running", claim_id, now + lease, delivery, attempts, now + ttl)
        # Expired rows go at most once a second (claim checks expiry itself); the bound on
        # entries is kept on every claim.
        if now >= self._trimmed + 1.0 or (
            len(active) + len(idle_rows) + len(done_rows) > self.max_entries
        ):
            self._trimmed = now
            self._trim(now)
        return "new", claim_id, attempts

    def _trim(self, now: float) -> None:
        active, idle, done = self._active, self._idle, self._done
        # Finished rows past their ttl go (each table is oldest first, so they gather in front).
        for rows in (idle, done):
            while rows and rows[next(iter(rows))][2] <= now:
                rows.popitem(last=False)
        excess = len(active) + len(idle) + len(done) - self.max_entries
        if excess <= 0:
            return
        # Over the bound: forget what costs least to forget. A failed attempt only loses its
        # count; a lapsed claim is taken over by the next push anyway; a handled message
        # forgotten would run again if IronMQ pushed it again, so those go last.
        while excess > 0 and idle:
            idle.popitem(last=False)
            excess -= 1
        while excess > 0 and active:
            oldest = next(iter(active))
            if active[oldest][2] > now:
                break
            del active[oldest]
            excess -= 1
        while excess > 0 and done:
            done.popitem(last=False)
            excess -= 1

    async def hold(self, key: Key, claim_id: str, *, state: ActiveState, lease: float) -> bool:
        row = self._active.get(key)
        if row is None or row[1] != claim_id:
            return False
        self._active[key] = (state, claim_id, self._clock() + lease, *row[3:])
        return True

    async def renew(self, claim_ids: Collection[str], *, lease: float) -> None:
        if not claim_ids:
            return
        wanted = set(claim_ids)
        until = self._clock() + lease
        active = self._active
        for key, row in active.items():
            # External claims keep their own (long) lease: the heartbeat must not shorten it.
            if row[1] in wanted and row[0] != "external":
                active[key] = (row[0], row[1], until, *row[3:])

    async def complete(
        self, key: Key, *, outcome: Outcome, ttl: float, delivery: Delivery
    ) -> Delivery:
        return self.complete_now(key, outcome, ttl, delivery)

    def complete_now(self, key: Key, outcome: Outcome, ttl: float, delivery: Delivery) -> Delivery:
        """:meth:`complete`, synchronous."""
        row = self._active.pop(key, None)
        if row is not None:  # the usual case; a key is in one table at most
            clock = self._clock
            self._done[key] = (outcome, row[4], clock() + ttl)
            return row[3]
        idle = _pop(self._idle, key, None)
        done = _pop(self._done, key, None)  # re-inserted at the end: the table stays in order
        attempts = idle[1] if idle else done[1] if done else 1
        clock = self._clock
        self._done[key] = (outcome, attempts, clock() + ttl)
        return delivery

    async def complete_ack(self, key: Key, *, ttl: float, item: OutboxItem) -> Delivery:
        """:meth:`complete` (``acked``) and :meth:`add` of ``item`` (an ack) with the newest
        delivery, in one step (a deferred job's end)."""
        delivery = ack_delivery(item)
        newest = await self.complete(key, outcome="acked", ttl=ttl, delivery=delivery)
        await self.add(item if newest is delivery else replace(item, delivery=newest))
        return newest

    def complete_ack_now(self, key: Key, ttl: float, item: OutboxItem) -> Delivery:
        """:meth:`complete_ack`, synchronous: :meth:`complete_now`, then :meth:`add_now`'s
        step."""
        delivery = ack_delivery(item)
        newest = self.complete_now(key, "acked", ttl, delivery)
        self._outbox[item.id] = item if newest is delivery else replace(item, delivery=newest)
        return newest

    async def complete_once(
        self, key: Key, *, outcome: Outcome, ttl: float, delivery: Delivery
    ) -> Delivery | None:
        done = self._done.get(key)
        if done is not None and done[2] > self._clock():
            return None
        return await self.complete(key, outcome=outcome, ttl=ttl, delivery=delivery)

    async def release(self, key: Key, claim_id: str | None) -> bool:
        row = self._active.get(key)
        if row is None or (claim_id is not None and row[1] != claim_id):
            return False
        del self._active[key]
        self._idle[key] = (row[3], row[4], row[5])
        return True

    async def newest(self, key: Key) -> Delivery | None:
        row = self._active.get(key)
        return None if row is None else row[3]

    # --- outbox ------------------------------------------------------------------------------

    async def add(self, item: OutboxItem) -> None:
        self.add_now(item)

    def add_now(self, item: OutboxItem) -> None:
        """:meth:`add`, synchronous."""
        self._outbox[item.id] = item

    async def take(self, *, limit: int, lease: float) -> list[OutboxItem]:
        now = self._clock()
        out: list[OutboxItem] = []
        for item in self._outbox.values():
            if item.next_at <= now and self._leases.get(item.id, 0.0) <= now:
                self._leases[item.id] = now + lease
                out.append(item)
                if len(out) >= limit:
                    break
        return out

    async def finish(self, item_ids: Collection[str]) -> None:
        for item_id in item_ids:
            self._outbox.pop(item_id, None)
            self._leases.pop(item_id, None)

    async def retry(self, item_id: str, *, attempts: int, next_at: float) -> None:
        item = self._outbox.pop(item_id, None)
        self._leases.pop(item_id, None)
        if item is not None:  # re-inserted at the end: due items keep their FIFO order
            self._outbox[item_id] = replace(item, attempts=attempts, next_at=next_at)

    async def depth(self) -> int:
        return len(self._outbox)

    async def next_due(self) -> float | None:
        leases = self._leases
        return min(
            (max(i.next_at, leases.get(i.id, 0.0)) for i in self._outbox.values()), default=None
        )

    # --- life ----------------------------------------------------------------------------------

    async def check(self) -> None:
        """Always healthy: there is no engine to lose."""

    def problems(self) -> list[StoreProblem]:
        """None: there is no engine to misconfigure."""
        return []

    async def close(self) -> None:
        """Nothing to release."""
