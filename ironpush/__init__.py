"""ironpush: IronMQ push queues for Python.

A v3 client (async and sync twins), an ASGI push receiver to mount in any Starlette or FastAPI
service, a local IronMQ-compatible dev server with a real pusher, and a CLI::

    from ironpush import IronMQ, PushRouter, PushMessage, Ack, Defer, Retry, Drop
"""

from __future__ import annotations

__version__ = "0.1.0"

from .client.async_client import AsyncIronMQ, AsyncQueue
from .client.sync_client import IronMQ, Queue
from .errors import IronPushError
from .receiver.outcomes import Ack, Defer, Drop, PushMessage, Retry
from .receiver.router import PushRouter

__all__ = [
    "Ack",
    "AsyncIronMQ",
    "AsyncQueue",
    "Defer",
    "Drop",
    "IronMQ",
    "IronPushError",
    "PushMessage",
    "PushRouter",
    "Queue",
    "Retry",
    "__version__",
]
