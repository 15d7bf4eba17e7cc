"""A real :class:`MemoryStore` with switchable faults, for the receiver's failure tests.

Each fault is a plain attribute the test sets: ``fail`` (method names that raise
``StoreUnavailable``), ``hang`` (method names that wait until ``unhang`` is set), plus a log of
the calls that completed (``calls``: ``(method, key)``), so tests assert what was recorded.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection

from ironpush._errors import StoreUnavailable
from ironpush._protocol import Delivery
from ironpush.receiver.stores import Claim, MemoryStore
from ironpush.receiver.stores._base import ActiveState, Key, Outcome


class FlakyStore(MemoryStore):
    """MemoryStore whose methods can fail or hang on demand (by name, or per key)."""

    def __init__(self) -> None:
        super().__init__()
        self.fail: set[str] = set()
        self.hang: set[str] = set()
        self.hang_keys: Callable[[Key], bool] = lambda key: False
        self.unhang = asyncio.Event()
        self.calls: list[tuple[str, Key | None]] = []
        self.on_complete: Callable[[Key], None] = lambda key: None

    async def _fault(self, name: str, key: Key | None = None) -> None:
        if name in self.fail:
            raise StoreUnavailable(f"{name} failed (test fault)", store="memory")
        if name in self.hang or (key is not None and self.hang_keys(key)):
            await self.unhang.wait()

    async def claim(self, key: Key, delivery: Delivery, *, lease: float, ttl: float) -> Claim:
        await self._fault("claim", key)
        claim = await super().claim(key, delivery, lease=lease, ttl=ttl)
        self.calls.append(("claim", key))
        return claim

    async def hold(self, key: Key, claim_id: str, *, state: ActiveState, lease: float) -> bool:
        await self._fault("hold", key)
        return await super().hold(key, claim_id, state=state, lease=lease)

    async def renew(self, claim_ids: Collection[str], *, lease: float) -> None:
        await self._fault("renew")
        await super().renew(claim_ids, lease=lease)
        self.calls.append(("renew", None))

    async def complete(
        self, key: Key, *, outcome: Outcome, ttl: float, delivery: Delivery
    ) -> Delivery:
        self.on_complete(key)
        await self._fault("complete", key)
        newest = await super().complete(key, outcome=outcome, ttl=ttl, delivery=delivery)
        self.calls.append(("complete", key))
        return newest

    async def release(self, key: Key, claim_id: str | None) -> bool:
        await self._fault("release", key)
        released = await super().release(key, claim_id)
        self.calls.append(("release", key))
        return released

    async def check(self) -> None:
        await self._fault("check")

    def completed(self) -> list[str]:
        """Message ids recorded as handled, in order."""
        return [key[0] for name, key in self.calls if name == "complete" and key is not None]
