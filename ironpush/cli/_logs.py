"""Logging for the command line: set up once, by the CLI; the library only creates loggers.

Every ironpush logger is a child of ``ironpush`` (``ironpush.devserver``, ``ironpush.receiver``,
``ironpush.deferred``, ``ironpush.client``…). :func:`configure` gives the root logger one
handler on stderr with one format, sets the ``ironpush`` level (``--log-level``) and routes
Python warnings through it, so a warning reads like every other line::

    12:00:03.250 INFO    ironpush.devserver: push orders 6295… → billing try 1/4: 200 …
    12:00:03.300 WARNING py.warnings: …/app.py:12: DeprecationWarning: …

Other libraries stay at WARNING (httpx would log every request at INFO). ``ironpush serve``
hands uvicorn its own ``log_config`` instead (:mod:`ironpush.cli._serve_logging`), so that it
holds in every worker process.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

FORMAT = "%(asctime)s.%(msecs)03d %(levelname)-7s %(name)s: %(message)s"
DATEFMT = "%H:%M:%S"
LEVELS = ("debug", "info", "warning", "error", "critical")


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is *now* (it may be swapped, e.g. by click's runner)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass  # always the current sys.stderr


def _level(level: str | int) -> int:
    if isinstance(level, int):
        return level
    value = logging.getLevelName(level.upper())
    if not isinstance(value, int):
        raise ValueError(f"unknown log level {level!r}; one of {', '.join(LEVELS)}")
    return value


def configure(level: str | int = "warning") -> None:
    """Set up logging for a CLI run: one stderr handler (installed once), ironpush at ``level``.

    Calling it again only changes the level (``ironpush dev --log-level debug`` after the
    group's setup)::

        configure("info")
    """
    root = logging.getLogger()
    if not any(isinstance(h, StderrHandler) for h in root.handlers):
        handler = StderrHandler()
        handler.setFormatter(logging.Formatter(FORMAT, DATEFMT))
        root.addHandler(handler)
    logging.getLogger("ironpush").setLevel(_level(level))
    logging.captureWarnings(True)
