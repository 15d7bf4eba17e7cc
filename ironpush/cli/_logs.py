"""Logging for the command line: set up once, by the CLI; the library only creates loggers.

Every ironpush logger is a child of ``ironpush`` (``ironpush.devserver``, ``ironpush.receiver``,
``ironpush.deferred``, ``ironpush.client``…). :func:`configure` gives the root logger one
handler on stderr with one format, sets the ``ironpush`` level (``--log-level``) and routes
Python warnings through it, so a warning reads like every other line::

    12:00:03.250 INFO    ironpush.devserver: push orders 6295… → billing try 1/4: 200 …
    12:00:03.300 WARNING py.warnings: …/app.py:12: DeprecationWarning: …

Other libraries stay at WARNING (httpx would log every request at INFO). ``fmt="json"``
(``ironpush dev --log-format json``) writes one JSON object per line instead, the push's
fields as keys (:class:`ironpush._logfields.JsonFormatter`). ``ironpush serve`` hands uvicorn
its own ``log_config`` instead (:mod:`ironpush.cli._serve_logging`), so that it holds in every
worker process.
"""

from __future__ import annotations

import logging

from .._logfields import DATEFMT, FORMAT, JsonFormatter, StderrHandler

LEVELS = ("debug", "info", "warning", "error", "critical")
#: ``--log-format``'s choices.
FORMATS = ("text", "json")


def _level(level: str | int) -> int:
    if isinstance(level, int):
        return level
    value = logging.getLevelName(level.upper())
    if not isinstance(value, int):
        raise ValueError(f"unknown log level {level!r}; one of {', '.join(LEVELS)}")
    return value


def configure(level: str | int = "warning", fmt: str | None = None) -> None:
    """Set up logging for a CLI run: one stderr handler (installed once), ironpush at ``level``,
    lines as ``fmt`` (``text``, ``json``; None keeps the current one).

    Calling it again only changes the level and the format (``ironpush dev --log-level debug
    --log-format json`` after the group's setup)::

        configure("info")
    """
    root = logging.getLogger()
    handler = next((h for h in root.handlers if isinstance(h, StderrHandler)), None)
    if handler is None:
        handler = StderrHandler()
        root.addHandler(handler)
        fmt = fmt or "text"
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    elif fmt is not None:
        handler.setFormatter(logging.Formatter(FORMAT, DATEFMT))
    logging.getLogger("ironpush").setLevel(_level(level))
    logging.captureWarnings(True)
