"""The management layer: the v3 client, async-first with a sync twin over one sans-I/O layer.

::

    from ironpush import IronMQ

    mq = IronMQ()                       # iron.json / IRON_* / IRONMQ_EMULATOR_HOST
    mq.queue("orders").post('{"id": 1}')
"""

from __future__ import annotations

from ._async_client import AsyncIronMQ as AsyncIronMQ
from ._async_client import AsyncQueue as AsyncQueue
from ._sync_client import IronMQ as IronMQ
from ._sync_client import Queue as Queue
