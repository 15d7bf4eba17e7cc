"""The in-process store (the default): fast, bounded, per process; forgotten on restart.

(Being converted to the async contract of :mod:`.base`.)
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Collection
from dataclasses import replace

from .legacy import _ACTIVE, ActiveState, Claim, Key, OutboxItem

__all__ = ["MemoryStore"]

# =========================================================================== memory


# A memory row is a plain tuple: (state, claim id, lease until, newest delivery, attempts,
# expires at, outcome). Tuples of strings and numbers are untracked by the garbage collector,
# so 100k remembered messages cost the collector nothing (objects would make each full
# collection walk them all, which showed up as a 30% throughput loss under load).
_Row = tuple[str, str | None, float, str, int, float, str | None]


class MemoryStore:
    """In-process claims and outbox (the default).

    Holds at most ``max_entries`` claims: the oldest finished ones are forgotten first, and
    finished ones are also forgotten after their ``ttl``. Everything is lost on restart, and
    each worker process has its own: use :class:`SQLiteStore` for several workers or for
    durable acks::

        router = PushRouter(secret_keys=keys, store=MemoryStore(max_entries=10_000))
    """

    blocking = False

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
        # The router calls from one event loop, but a store may be shared by routers running
        # in several threads (tests, a sync framework): an uncontended lock costs ~50 ns.
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"MemoryStore(entries={len(self._rows)}, outbox={len(self._outbox)})"

    # --- dedupe ------------------------------------------------------------------------------

    def claim(self, key: Key, delivery: str, *, lease: float, ttl: float) -> Claim:
        now = self._clock()
        with self._lock:
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

    def hold(self, key: Key, claim_id: str, *, state: ActiveState, lease: float) -> bool:
        with self._lock:
            row = self._rows.get(key)
            if row is None or row[1] != claim_id or row[0] not in _ACTIVE:
                return False
            self._rows[key] = (state, claim_id, self._clock() + lease, *row[3:])
            return True

    def renew(self, claim_ids: Collection[str], *, lease: float) -> None:
        if not claim_ids:
            return
        wanted = set(claim_ids)
        until = self._clock() + lease
        with self._lock:
            rows = self._rows
            for key, row in rows.items():
                if row[1] in wanted and row[0] in ("running", "deferred"):
                    rows[key] = (row[0], row[1], until, *row[3:])

    def complete(self, key: Key, *, outcome: str, ttl: float, delivery: str) -> str:
        now = self._clock()
        with self._lock:
            row = self._rows.pop(key, None)
            newest = row[3] if row is not None and row[0] in _ACTIVE else delivery
            attempts = row[4] if row is not None else 1
            self._rows[key] = ("done", None, 0.0, "", attempts, now + ttl, outcome)
            return newest

    def release(self, key: Key, claim_id: str | None) -> bool:
        with self._lock:
            row = self._rows.get(key)
            if row is None or row[0] not in _ACTIVE:
                return False
            if claim_id is not None and row[1] != claim_id:
                return False
            self._rows[key] = ("idle", None, 0.0, *row[3:])
            return True

    def newest(self, key: Key) -> str | None:
        with self._lock:
            row = self._rows.get(key)
            return row[3] if row is not None and row[0] in _ACTIVE else None

    # --- outbox ------------------------------------------------------------------------------

    def add(self, item: OutboxItem) -> None:
        with self._lock:
            self._outbox[item.id] = item

    def take(self, *, limit: int, lease: float) -> list[OutboxItem]:
        now = self._clock()
        out: list[OutboxItem] = []
        with self._lock:
            for item in self._outbox.values():
                if item.next_at <= now and self._leases.get(item.id, 0.0) <= now:
                    self._leases[item.id] = now + lease
                    out.append(item)
                    if len(out) >= limit:
                        break
        return out

    def finish(self, item_ids: Collection[str]) -> None:
        with self._lock:
            for item_id in item_ids:
                self._outbox.pop(item_id, None)
                self._leases.pop(item_id, None)

    def retry(self, item_id: str, *, attempts: int, next_at: float) -> None:
        with self._lock:
            item = self._outbox.pop(item_id, None)
            self._leases.pop(item_id, None)
            if item is not None:  # re-inserted at the end: due items keep their FIFO order
                self._outbox[item_id] = replace(item, attempts=attempts, next_at=next_at)

    def depth(self) -> int:
        return len(self._outbox)

    def next_due(self) -> float | None:
        with self._lock:
            return min(
                (max(i.next_at, self._leases.get(i.id, 0.0)) for i in self._outbox.values()),
                default=None,
            )

    def close(self) -> None:
        """Nothing to release (present for symmetry with :class:`SQLiteStore`)."""
