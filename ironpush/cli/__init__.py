"""The ``ironpush`` command line (``ironpush --help``).

Importing this package loads click and the client only: the dev server, uvicorn and the demo
are imported inside the commands that need them.
"""

from __future__ import annotations

from . import inspect as _inspect  # noqa: F401  (registers peek, reserve, clear, tail, replay…)
from . import queues as _queues  # noqa: F401  (registers queues, info, post)
from . import serve as _serve  # noqa: F401  (registers the command on main)
from . import subscriptions as _subscriptions  # noqa: F401  (subscribe, unsubscribe, ack…)
from .commands import main

__all__ = ["main"]
