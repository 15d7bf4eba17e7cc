"""The ``ironpush`` command line (``ironpush --help``).

Importing this package loads click and the client only: the dev server, uvicorn and the demo
are imported inside the commands that need them.
"""

from __future__ import annotations

from . import serve as _serve  # noqa: F401  (registers the command on main)
from .commands import main

__all__ = ["main"]
