"""TRANSITIONAL: the old synchronous store protocols, kept only while the receiver and the
stores move to the async contract in :mod:`.base`. Delete this module when nothing imports it.

Where the receiver remembers things: dedupe claims and the ack outbox.

Two implementations of the same two protocols:

- :class:`MemoryStore` (the default): fast, bounded (``max_entries``), per process; forgotten
  on restart.
- :class:`SQLiteStore`: durable across restarts and safe for several worker processes on one
  host (WAL journal, ``busy_timeout``, every claim decided inside one ``BEGIN IMMEDIATE``
  transaction)::

      router = PushRouter(secret_keys=[...], store=SQLiteStore("/var/lib/app/ironpush.db"))

**Dedupe** is keyed by ``(message id, subscriber name)``. A claim is *running* (a handler is
executing), *deferred* (a ``Defer`` job runs), *external* (an external worker holds the ack
token), *idle* (the last attempt failed, so the next push runs the handler again) or *done*
(handled; kept for ``ttl`` seconds so redeliveries answer 200 without running the handler).
Active claims carry a lease that the owning process renews while the work runs; a crashed
process stops renewing, so its claims expire and a redelivery takes the message over.

The **outbox** holds acknowledgements (and dead-letter posts) until IronMQ confirms them.

The methods are synchronous; ``blocking = True`` tells the router to call them from a worker
thread rather than the event loop.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

__all__ = [
    "Claim",
    "DedupeStore",
    "OutboxItem",
    "OutboxStore",
    "Store",
]

Key = tuple[str, str]  # (message id, subscriber name)
ActiveState = Literal["running", "deferred", "external"]
_ACTIVE = ("running", "deferred", "external")


@dataclass(frozen=True, slots=True)
class Claim:
    """The answer to :meth:`DedupeStore.claim`.

    - ``status == "new"``: the caller owns the message now (``claim_id``) and runs the handler;
      ``attempt`` counts the handler runs this store has seen for the message (1, 2, ...).
    - ``"done"``: already handled (``outcome`` is ``"acked"`` or ``"dropped"``): answer 200.
    - ``"busy"``: another call or job holds it (``state``); the push's delivery was recorded
      as the newest, so the holder acknowledges with the newest reservation: answer 202.
    """

    status: Literal["new", "done", "busy"]
    claim_id: str | None = None
    attempt: int = 1
    outcome: str | None = None
    state: str | None = None


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """One pending call: an ack (``payload`` = delivery JSON) or a post (``payload`` = body)."""

    kind: Literal["ack", "post"]
    queue: str
    payload: str
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    attempts: int = 0
    created_at: float = field(default_factory=time.time)
    next_at: float = 0.0


@runtime_checkable
class DedupeStore(Protocol):
    """Claims on ``(message id, subscriber)`` keys; see the module docs for the states."""

    blocking: bool

    def claim(self, key: Key, delivery: str, *, lease: float, ttl: float) -> Claim:
        """Claim ``key`` for a push whose delivery (JSON) is ``delivery``."""
        ...

    def hold(self, key: Key, claim_id: str, *, state: ActiveState, lease: float) -> bool:
        """Switch an owned claim to ``state`` with a new lease; False if the claim was lost."""
        ...

    def renew(self, claim_ids: Collection[str], *, lease: float) -> None:
        """Extend the lease of these (running or deferred) claims."""
        ...

    def complete(self, key: Key, *, outcome: str, ttl: float, delivery: str) -> str:
        """Mark ``key`` handled; return the newest delivery recorded (``delivery`` if none)."""
        ...

    def release(self, key: Key, claim_id: str | None) -> bool:
        """Give up an active claim (owned by ``claim_id``, or any when None) after a failure."""
        ...

    def newest(self, key: Key) -> str | None:
        """The newest delivery recorded for an active claim on ``key``."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class OutboxStore(Protocol):
    """Pending IronMQ calls, taken with a lease so two processes never send the same item."""

    blocking: bool

    def add(self, item: OutboxItem) -> None: ...

    def take(self, *, limit: int, lease: float) -> list[OutboxItem]:
        """Up to ``limit`` due items not leased by anyone, leased now for ``lease`` seconds."""
        ...

    def finish(self, item_ids: Collection[str]) -> None:
        """Remove items that are done (confirmed, late, or given up)."""
        ...

    def retry(self, item_id: str, *, attempts: int, next_at: float) -> None:
        """Put a failed item back, due again at ``next_at``."""
        ...

    def depth(self) -> int: ...

    def next_due(self) -> float | None:
        """When the earliest item can be taken (due and unleased), or None when empty."""
        ...

    def close(self) -> None: ...


class Store(DedupeStore, OutboxStore, Protocol):
    """A store that keeps both claims and the outbox (both built-in stores do)."""
