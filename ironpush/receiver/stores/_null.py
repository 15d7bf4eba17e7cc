"""The null store: deduplication off, every push runs its handler (``dedupe=False``)."""

from __future__ import annotations

from collections.abc import Collection

from ..._protocol import Delivery
from ._base import ActiveState, Claim, Key, OutboxItem, Outcome, Store, StoreProblem
from ._memory import MemoryStore

_NEW = Claim("new", claim_id="null")


class NullStore:
    """Claims that remember nothing, over a real outbox.

    Every claim is new, so every push (redeliveries too) runs the handler; acknowledgements
    still go through ``outbox`` (default: a :class:`MemoryStore`), so deferred work is acked as
    usual. ``PushRouter(dedupe=False)`` uses one around the router's store::

        router = PushRouter(store=NullStore(outbox=SQLiteStore("acks.db")))
    """

    kind = "null"
    dedupes = False

    def __init__(self, *, outbox: Store | None = None) -> None:
        self.outbox: Store = outbox if outbox is not None else MemoryStore()
        self.shared = self.outbox.shared

    def __repr__(self) -> str:
        return f"NullStore(outbox={self.outbox!r})"

    # --- claims: nothing is remembered ------------------------------------------------------

    async def claim(self, key: Key, delivery: Delivery, *, lease: float, ttl: float) -> Claim:
        return _NEW

    async def hold(self, key: Key, claim_id: str, *, state: ActiveState, lease: float) -> bool:
        return True

    async def renew(self, claim_ids: Collection[str], *, lease: float) -> None:
        return None

    async def complete(
        self, key: Key, *, outcome: Outcome, ttl: float, delivery: Delivery
    ) -> Delivery:
        return delivery

    async def complete_once(
        self, key: Key, *, outcome: Outcome, ttl: float, delivery: Delivery
    ) -> Delivery | None:
        return delivery

    async def release(self, key: Key, claim_id: str | None) -> bool:
        return False

    async def newest(self, key: Key) -> Delivery | None:
        return None

    # --- the outbox: delegated -----------------------------------------------------------------

    async def add(self, item: OutboxItem) -> None:
        await self.outbox.add(item)

    async def take(self, *, limit: int, lease: float) -> list[OutboxItem]:
        return await self.outbox.take(limit=limit, lease=lease)

    async def finish(self, item_ids: Collection[str]) -> None:
        await self.outbox.finish(item_ids)

    async def retry(self, item_id: str, *, attempts: int, next_at: float) -> None:
        await self.outbox.retry(item_id, attempts=attempts, next_at=next_at)

    async def depth(self) -> int:
        return await self.outbox.depth()

    async def next_due(self) -> float | None:
        return await self.outbox.next_due()

    async def check(self) -> None:
        await self.outbox.check()

    def problems(self) -> list[StoreProblem]:
        return self.outbox.problems()

    async def close(self) -> None:
        await self.outbox.close()
