"""ironpush: IronMQ push queues for Python.

A v3 client (async and sync twins), an ASGI push receiver to mount in any Starlette or FastAPI
service, a local IronMQ-compatible dev server with a real pusher, and a CLI. Everything a user
configures is imported from here, and from here only (the README lists each name)::

    from ironpush import IronMQ, PushRouter, PushMessage, Defer, SQLiteStore, NotFound

Two more modules have public names: :mod:`ironpush.devserver` (``DevServer``) and
:mod:`ironpush.testing` (the push simulators and the pytest plugin). ``RedisStore`` and
``PostgresStore`` are imported on first use, so a missing extra fails with its pip hint then,
not at ``import ironpush``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._errors import (
    APIError,
    BadRequest,
    ConfigError,
    InvalidPayload,
    IronPushError,
    NotFound,
    ReservationExpired,
    ServiceUnavailable,
    SignatureError,
    StoreUnavailable,
    TransportError,
    Unauthorized,
    ValidationError,
)
from ._signing import generate_key
from ._version import __version__ as __version__
from .client._async_client import AsyncIronMQ, AsyncQueue
from .client._models import (
    Alert,
    ErrorReport,
    Message,
    PushConfig,
    PushStatus,
    QueueInfo,
    Subscriber,
)
from .client._retry import RetryPolicy
from .client._sync_client import IronMQ, Queue
from .receiver._outbox import OutboxSettings
from .receiver._outcomes import Ack, Defer, Drop, PushMessage, Retry
from .receiver._registration import subscribe_app, subscribe_app_async
from .receiver._router import PushRouter
from .receiver._settings import AckTokens, Health, Leases, Limits, Shutdown
from .receiver._subscribe_report import SubscribeReport
from .receiver.stores import MemoryStore, SQLiteStore, Store

if TYPE_CHECKING:
    from .receiver.stores._postgres import PostgresStore as PostgresStore
    from .receiver.stores._redis import RedisStore as RedisStore

__all__ = [
    "APIError",
    "Ack",
    "AckTokens",
    "Alert",
    "AsyncIronMQ",
    "AsyncQueue",
    "BadRequest",
    "ConfigError",
    "Defer",
    "Drop",
    "ErrorReport",
    "Health",
    "InvalidPayload",
    "IronMQ",
    "IronPushError",
    "Leases",
    "Limits",
    "MemoryStore",
    "Message",
    "NotFound",
    "OutboxSettings",
    "PushConfig",
    "PushMessage",
    "PushRouter",
    "PushStatus",
    "Queue",
    "QueueInfo",
    "ReservationExpired",
    "Retry",
    "RetryPolicy",
    "SQLiteStore",
    "ServiceUnavailable",
    "Shutdown",
    "SignatureError",
    "Store",
    "StoreUnavailable",
    "SubscribeReport",
    "Subscriber",
    "TransportError",
    "Unauthorized",
    "ValidationError",
    "__version__",
    "generate_key",
    "subscribe_app",
    "subscribe_app_async",
]

# Implementation lives in private modules (httpx's layout); the names say where users import
# them from, so reprs, tracebacks and documentation show ``ironpush.PushRouter``, not
# ``ironpush.receiver._router.PushRouter``.
for _name in __all__:
    if not _name.startswith("__"):
        globals()[_name].__module__ = __name__
del _name

#: Public names imported on first use (their extras may be missing); not in ``__all__`` so that
#: ``from ironpush import *`` works without every extra installed.
LAZY_NAMES = ("PostgresStore", "RedisStore")


def __getattr__(name: str) -> Any:
    if name in LAZY_NAMES:
        from .receiver import stores

        cls: Any = getattr(stores, name)
        cls.__module__ = __name__
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *LAZY_NAMES})
