"""The ``ironpush`` command line (``ironpush --help``).

Importing this package loads click and the client only: the dev server, uvicorn and the demo
are imported inside the commands that need them.
"""

from __future__ import annotations

from . import (
    _inspect,  # noqa: F401  (registers peek, reserve, clear, tail, replay…)
    _queues,  # noqa: F401  (registers queues, info, post)
    _serve,  # noqa: F401  (registers the command on main)
    _subscriptions,  # noqa: F401  (subscribe, unsubscribe, ack…)
)
from ._commands import main

__all__ = ["main"]
