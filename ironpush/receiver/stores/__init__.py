"""Where a receiver remembers things: dedupe claims, newest reservations and the ack outbox.

One contract (:class:`Store`), several engines::

    from ironpush.receiver.stores import MemoryStore, SQLiteStore

    router = PushRouter(store=SQLiteStore("/data/ironpush.db"))
"""

from __future__ import annotations

from .base import Owner, Store, this_owner

# TRANSITIONAL: the sync stores' records until memory/sqlite move to the async contract.
from .legacy import Claim, OutboxItem
from .memory import MemoryStore
from .sqlite import SQLiteStore

__all__ = [
    "Claim",
    "MemoryStore",
    "OutboxItem",
    "Owner",
    "SQLiteStore",
    "Store",
    "this_owner",
]
