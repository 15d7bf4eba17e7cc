"""The management layer: the v3 client, async-first with a sync twin over one sans-I/O layer.

::

    from ironpush import IronMQ

    mq = IronMQ()                       # iron.json / IRON_* / IRONMQ_EMULATOR_HOST
    mq.queue("orders").post('{"id": 1}')
"""

from __future__ import annotations

from ._async_client import AsyncIronMQ, AsyncQueue
from ._sync_client import IronMQ, Queue

__all__ = ["AsyncIronMQ", "AsyncQueue", "IronMQ", "Queue"]
