"""ironpush: IronMQ push queues for Python.

A v3 client (async and sync twins), an ASGI push receiver to mount in any Starlette or FastAPI
service, a local IronMQ-compatible dev server with a real pusher, and a CLI.
"""

from __future__ import annotations

__version__ = "0.1.0"

from .client import AsyncIronMQ, AsyncQueue, IronMQ, Queue
from .errors import IronPushError

__all__ = [
    "AsyncIronMQ",
    "AsyncQueue",
    "IronMQ",
    "IronPushError",
    "Queue",
    "__version__",
]
