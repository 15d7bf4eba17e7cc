"""The ``ironpush`` command line (``ironpush --help``).

Importing this package loads click and the client only: the dev server, uvicorn and the demo
are imported inside the commands that need them.
"""

from __future__ import annotations

from . import (  # each module registers its commands on main
    _listen,  # noqa: F401  (listen)
    _messages,  # noqa: F401  (peek, reserve, clear)
    _queues,  # noqa: F401  (queues, info, post, delete-queue)
    _replay,  # noqa: F401  (replay)
    _serve,  # noqa: F401  (serve)
    _subscriptions,  # noqa: F401  (subscribe, unsubscribe, subscribers, statuses, ack, keygen)
    _tail,  # noqa: F401  (tail)
)
from ._commands import main

__all__ = ["main"]
