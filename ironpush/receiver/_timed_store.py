"""A store whose every operation is timed into ``ironpush_store_operation_duration_seconds``.

The router's pipeline and its runtime (outbox, completions, lease heartbeat) talk to the store
through :func:`timed_store`; the router's ``store`` attribute, health and the ack-token path
keep the store itself. An operation is timed whether it succeeds or raises (a store that
hangs shows as a slow operation). Labels: the store's ``kind`` and the operation's name::

    store = timed_store(MemoryStore(), counters.timings)   # the store itself when timings is None
    await store.claim(key, delivery, lease=10, ttl=86400)
"""

from __future__ import annotations

import time
from collections.abc import Collection
from typing import Any

from .._protocol import Delivery
from ._timings import Series, Timings
from .stores._base import ActiveState, Claim, Key, OutboxItem, Outcome, Store, StoreProblem

#: Every timed operation (the ``operation`` label's values); ``complete_ack`` (where the store
#: has it) is timed by the outbox, which calls it on the store itself (no wrapper per call).
OPERATIONS = (
    "claim",
    "hold",
    "renew",
    "complete",
    "complete_once",
    "release",
    "newest",
    "add",
    "take",
    "finish",
    "retry",
    "depth",
    "next_due",
    "complete_ack",
)
_clock = time.perf_counter


def timed_store(store: Store, timings: Timings | None) -> Store:
    """``store`` with its operations timed into ``timings`` (``store`` itself without)."""
    if timings is None or isinstance(store, TimedStore):
        return store
    return TimedStore(store, timings)


class TimedStore:
    """Times each operation of ``inner``; anything else is ``inner``'s (``kind``, ``shared``,
    ``dedupes``, ``problems()``, a store's own extras)."""

    def __init__(self, inner: Store, timings: Timings) -> None:
        self.inner = inner
        self.kind = inner.kind
        self.shared = inner.shared
        self.dedupes = inner.dedupes
        self._series: dict[str, Series] = {
            op: timings.store.labels(inner.kind, op) for op in OPERATIONS if op != "complete_ack"
        }

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def __repr__(self) -> str:
        return repr(self.inner)

    async def claim(self, key: Key, delivery: Delivery, *, lease: float, ttl: float) -> Claim:
        started = _clock()
        try:
            return await self.inner.claim(key, delivery, lease=lease, ttl=ttl)
        finally:
            self._series["claim"].observe(_clock() - started)

    async def hold(self, key: Key, claim_id: str, *, state: ActiveState, lease: float) -> bool:
        started = _clock()
        try:
            return await self.inner.hold(key, claim_id, state=state, lease=lease)
        finally:
            self._series["hold"].observe(_clock() - started)

    async def renew(self, claim_ids: Collection[str], *, lease: float) -> None:
        started = _clock()
        try:
            await self.inner.renew(claim_ids, lease=lease)
        finally:
            self._series["renew"].observe(_clock() - started)

    async def complete(
        self, key: Key, *, outcome: Outcome, ttl: float, delivery: Delivery
    ) -> Delivery:
        started = _clock()
        try:
            return await self.inner.complete(key, outcome=outcome, ttl=ttl, delivery=delivery)
        finally:
            self._series["complete"].observe(_clock() - started)

    async def complete_once(
        self, key: Key, *, outcome: Outcome, ttl: float, delivery: Delivery
    ) -> Delivery | None:
        started = _clock()
        try:
            return await self.inner.complete_once(key, outcome=outcome, ttl=ttl, delivery=delivery)
        finally:
            self._series["complete_once"].observe(_clock() - started)

    async def release(self, key: Key, claim_id: str | None) -> bool:
        started = _clock()
        try:
            return await self.inner.release(key, claim_id)
        finally:
            self._series["release"].observe(_clock() - started)

    async def newest(self, key: Key) -> Delivery | None:
        started = _clock()
        try:
            return await self.inner.newest(key)
        finally:
            self._series["newest"].observe(_clock() - started)

    async def add(self, item: OutboxItem) -> None:
        started = _clock()
        try:
            await self.inner.add(item)
        finally:
            self._series["add"].observe(_clock() - started)

    async def take(self, *, limit: int, lease: float) -> list[OutboxItem]:
        started = _clock()
        try:
            return await self.inner.take(limit=limit, lease=lease)
        finally:
            self._series["take"].observe(_clock() - started)

    async def finish(self, item_ids: Collection[str]) -> None:
        started = _clock()
        try:
            await self.inner.finish(item_ids)
        finally:
            self._series["finish"].observe(_clock() - started)

    async def retry(self, item_id: str, *, attempts: int, next_at: float) -> None:
        started = _clock()
        try:
            await self.inner.retry(item_id, attempts=attempts, next_at=next_at)
        finally:
            self._series["retry"].observe(_clock() - started)

    async def depth(self) -> int:
        started = _clock()
        try:
            return await self.inner.depth()
        finally:
            self._series["depth"].observe(_clock() - started)

    async def next_due(self) -> float | None:
        started = _clock()
        try:
            return await self.inner.next_due()
        finally:
            self._series["next_due"].observe(_clock() - started)

    async def check(self) -> None:
        await self.inner.check()

    def problems(self) -> list[StoreProblem]:
        return self.inner.problems()

    async def close(self) -> None:
        await self.inner.close()
