"""The in-process store (the default): fast, bounded, per process; forgotten on restart."""

from __future__ import annotations

import itertools
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Collection
from dataclasses import replace

from ..._protocol import Delivery
from ._base import _ACTIVE, ActiveState, Claim, Key, OutboxItem, Outcome

__all__ = ["MemoryStore"]

# A row is a plain tuple: (state, claim id, lease until, newest delivery, attempts, expires at,
# outcome). Finished rows drop their delivery, so they hold only strings and numbers: the
# garbage collector untracks such tuples, and the many remembered messages cost it nothing.
_Row = tuple[str, str | None, float, Delivery | None, int, float, str | None]


class MemoryStore:
    """In-process claims and outbox (the default), for one process and one event loop.

    Holds at most ``max_entries`` claims: the oldest finished ones are forgotten first, and
    finished ones are also forgotten after their ``ttl``. Everything is lost on restart, and
    each worker process has its own: use :class:`~ironpush.receiver.stores.SQLiteStore` (or a
    networked store) for several workers or for durable acks::

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
        self._rows: OrderedDict[Key, _Row] = OrderedDict()
        self._outbox: dict[str, OutboxItem] = {}
        self._leases: dict[str, float] = {}
        # Claim ids only need to be unique within this store: a counter is cheaper than uuid4.
        self._prefix = uuid.uuid4().hex[:8] + "-"
        self._seq = itertools.count(1)

    def __repr__(self) -> str:
        return f"MemoryStore(entries={len(self._rows)}, outbox={len(self._outbox)})"

    # --- claims ------------------------------------------------------------------------------

    async def claim(self, key: Key, delivery: Delivery, *, lease: float, ttl: float) -> Claim:
        now = self._clock()
        rows = self._rows
        row = rows.get(key)
        attempts = 1
        if row is not None:
            state = row[0]
            if state == "done":
                if row[5] > now:
                    return Claim("done", outcome=row[6])
            elif state != "idle" and row[2] > now:
                rows[key] = (state, row[1], row[2], delivery, row[4], row[5], None)
                return Claim("busy", state=state)
            else:
                attempts = row[4] + 1
            del rows[key]  # re-inserted at the end: rows stay ordered by last change
        claim_id = f"{self._prefix}{next(self._seq)}"
        rows[key] = ("running", claim_id, now + lease, delivery, attempts, now + ttl, None)
        self._trim(now)
        return Claim("new", claim_id=claim_id, attempt=attempts)

    def _trim(self, now: float) -> None:
        # Rows are ordered by last change, so expired and evictable ones gather at the front.
        rows = self._rows
        while rows:
            key, row = next(iter(rows.items()))
            inactive = row[0] not in _ACTIVE or row[2] <= now
            if inactive and (row[5] <= now or len(rows) > self.max_entries):
                del rows[key]
            else:
                break

    async def hold(self, key: Key, claim_id: str, *, state: ActiveState, lease: float) -> bool:
        row = self._rows.get(key)
        if row is None or row[1] != claim_id or row[0] not in _ACTIVE:
            return False
        self._rows[key] = (state, claim_id, self._clock() + lease, *row[3:])
        return True

    async def renew(self, claim_ids: Collection[str], *, lease: float) -> None:
        if not claim_ids:
            return
        wanted = set(claim_ids)
        until = self._clock() + lease
        rows = self._rows
        for key, row in rows.items():
            # External claims keep their own (long) lease: the heartbeat must not shorten it.
            if row[1] in wanted and row[0] in ("running", "deferred"):
                rows[key] = (row[0], row[1], until, *row[3:])

    async def complete(
        self, key: Key, *, outcome: Outcome, ttl: float, delivery: Delivery
    ) -> Delivery:
        row = self._rows.pop(key, None)
        newest = row[3] if row is not None and row[0] in _ACTIVE else None
        attempts = row[4] if row is not None else 1
        self._rows[key] = ("done", None, 0.0, None, attempts, self._clock() + ttl, outcome)
        return delivery if newest is None else newest

    async def release(self, key: Key, claim_id: str | None) -> bool:
        row = self._rows.get(key)
        if row is None or row[0] not in _ACTIVE:
            return False
        if claim_id is not None and row[1] != claim_id:
            return False
        self._rows[key] = ("idle", None, 0.0, *row[3:])
        return True

    async def newest(self, key: Key) -> Delivery | None:
        row = self._rows.get(key)
        return row[3] if row is not None and row[0] in _ACTIVE else None

    # --- outbox ------------------------------------------------------------------------------

    async def add(self, item: OutboxItem) -> None:
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

    async def close(self) -> None:
        """Nothing to release."""
