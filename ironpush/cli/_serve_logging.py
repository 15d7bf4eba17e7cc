"""Logging for ``ironpush serve``: one format in every process, each start-up warning once, no
secrets in the access log, no floods of tracebacks.

:func:`log_config` is uvicorn's logging configuration (or, with ``--log-format json``, one
JSON object per line: :class:`ironpush._logfields.JsonFormatter`) plus three filters, built by
``logging.config.dictConfig`` in the master (before it imports the app, so that its lines have
the workers' format) and in every worker process:

- :class:`AccessLogRedactor` on ``uvicorn.access``: the request line's query values that hold a
  secret (``?ironpush_secret=…``, any name :func:`ironpush._redact.is_sensitive` flags, and the
  routers' own ``secret_param``) are masked before the line is formatted.
- :class:`RepeatLimiter` on every handler: of a run of identical warnings or errors (same
  logger, level, message template and exception type) the first one passes with its
  traceback, the rest are counted, and one line per ``interval`` reports how many there were.
  A store that fails for minutes logs a handful of lines, not one traceback per push.
- :class:`StartupOnce` on every handler: with ``--workers N`` (or ``--reload``) every process
  imports the app and starts its routers, so each start-up warning would appear once per
  process; the processes of one run share a directory (:data:`ONCE_ENV`, made by the master)
  where the first to log a warning claims it, and the others drop it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode

from .._logfields import JsonFormatter
from .._redact import MASK, is_sensitive, mask

#: The directory the processes of one ``ironpush serve`` run share (:class:`StartupOnce`).
ONCE_ENV = "IRONPUSH_SERVE_ONCE_DIR"


def redact_path(path: str, extra_names: Iterable[str] = ()) -> str:
    """``/p?ironpush_secret=abc&x=1`` → ``/p?ironpush_secret=***&x=1`` (the query's secrets)."""
    head, sep, query = path.partition("?")
    if not sep:
        return path
    names = set(extra_names)
    pairs = parse_qsl(query, keep_blank_values=True)

    def secret(name: str, value: str) -> bool:
        # A value masked already stays as it is (a second filter would lose its prefix).
        return (name in names or is_sensitive(name)) and not value.endswith(MASK)

    if not any(secret(name, value) for name, value in pairs):
        return path
    masked = [(k, mask(v) if secret(k, v) else v) for k, v in pairs]
    return head + "?" + urlencode(masked, safe="*/")


class AccessLogRedactor(logging.Filter):
    """Masks secrets in the query string of uvicorn's access log records.

    uvicorn logs ``(client, method, path with query, http version, status)`` as the record's
    arguments; the path is rewritten, the rest left alone. ``names`` adds query parameter names
    to mask (``ironpush serve`` adds each router's ``secret_param``).
    """

    def __init__(self, names: Iterable[str] = ()) -> None:
        super().__init__()
        self.names: set[str] = set(names)

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            path = args[2]
            if "?" in path:
                record.args = (args[0], args[1], redact_path(path, self.names), args[3], args[4])
        return True


@dataclass(slots=True)
class _Run:
    started: float  # when this interval began
    last: float  # the latest occurrence
    suppressed: int = 0


class RepeatLimiter(logging.Filter):
    """Lets through the first of repeated identical records, then one count per ``interval``.

    Records below ``level`` (default WARNING: the per-delivery INFO lines) always pass, and so
    do records marked ``ironpush_every_time`` (each one is a fact an operator counts: a job
    whose completion the store could not record, keys Redis evicted).
    Identical = same logger, level, message template (not its arguments: a failing store logs
    the same template with a different message id each time) and exception type. The first
    passes as is (traceback included); the next ones within ``interval`` seconds are dropped
    and counted; the first one after the interval passes without its traceback, saying how many
    were dropped. A run that stays quiet for a whole interval starts over. At most
    ``max_keys`` runs are remembered (the oldest is forgotten first). ::

        handler.addFilter(RepeatLimiter(interval=60))
    """

    def __init__(
        self,
        interval: float = 60.0,
        *,
        level: int | str = logging.WARNING,
        max_keys: int = 512,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        if interval <= 0:
            raise ValueError("interval must be > 0")
        self.interval = float(interval)
        self.level = logging._checkLevel(level)  # type: ignore[attr-defined]
        self.max_keys = max_keys
        self._clock = clock
        self._runs: OrderedDict[tuple[str, int, str, str], _Run] = OrderedDict()
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < self.level or getattr(record, "ironpush_every_time", False):
            return True
        exc_type = record.exc_info[0].__name__ if record.exc_info and record.exc_info[0] else ""
        key = (record.name, record.levelno, str(record.msg), exc_type)
        now = self._clock()
        with self._lock:
            run = self._runs.get(key)
            if run is None or (now - run.last >= self.interval and run.suppressed == 0):
                self._remember(key, _Run(started=now, last=now))
                return True
            run.last = now
            if now - run.started < self.interval:
                run.suppressed += 1
                return False
            dropped, elapsed = run.suppressed, now - run.started
            run.started, run.suppressed = now, 0
            self._runs.move_to_end(key)
        if dropped:
            self._summarize(record, dropped, elapsed)
        return True

    def _remember(self, key: tuple[str, int, str, str], run: _Run) -> None:
        self._runs[key] = run
        self._runs.move_to_end(key)
        while len(self._runs) > self.max_keys:
            self._runs.popitem(last=False)

    @staticmethod
    def _summarize(record: logging.LogRecord, dropped: int, elapsed: float) -> None:
        # The traceback was shown with the first record of the run; this one says how many
        # more there were, and keeps its own message (with this occurrence's arguments).
        record.msg = (
            f"{record.getMessage()} [and {dropped} more like this in the last {elapsed:.0f} s; "
            "traceback logged with the first]"
        )
        record.args = None
        record.exc_info = None
        record.exc_text = None
        record.stack_info = None


class StartupOnce(logging.Filter):
    """Across the processes of one ``ironpush serve`` run, a warning or error logged while a
    process starts passes in the first process that logs it only.

    The first claims it by creating a file named after it (logger, level, message) in the run's
    directory (:data:`ONCE_ENV`; ``O_EXCL`` makes the claim atomic); the others find the file
    and drop the record. A process has started once it answered its first push (its first
    delivery line: a router without a lifespan starts, and warns so, on its first push; health
    checks come before); its later records are its own and always pass. Without the directory
    (one process) every record passes::

        handler.addFilter(StartupOnce())
    """

    def __init__(self, directory: str | None = None) -> None:
        super().__init__()
        self.directory = directory if directory is not None else os.environ.get(ONCE_ENV)
        self.starting = bool(self.directory)

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.starting:
            return True
        if _started(record):
            self.starting = False
            return True
        if record.levelno < logging.WARNING:
            return True
        text = f"{record.name}\0{record.levelno}\0{record.getMessage()}"
        name = hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:32]
        try:
            fd = os.open(os.path.join(str(self.directory), name), os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return False  # another process of this run logged it
        except OSError:
            return True  # the directory is gone (the run is ending): better twice than never
        os.close(fd)
        return True


def _started(record: logging.LogRecord) -> bool:
    return record.name == "ironpush.receiver" and "status" in record.__dict__


def log_config(*, level: str, repeat_interval: float, fmt: str = "text") -> dict[str, Any]:
    """uvicorn's default logging configuration with ironpush's filters, for ``dictConfig``;
    ``fmt="json"`` writes every line (uvicorn's, the access log, ironpush's, other
    libraries') as one JSON object.

    The root logger (where ``ironpush.*`` records go) gets the same stderr handler as uvicorn,
    so the receiver's per-delivery lines show up at ``--log-level info``; other libraries log
    from WARNING up.
    """
    from uvicorn.config import LOGGING_CONFIG

    config: dict[str, Any] = {
        **LOGGING_CONFIG,
        "formatters": dict(LOGGING_CONFIG["formatters"]),
        "handlers": {name: dict(h) for name, h in LOGGING_CONFIG["handlers"].items()},
        "loggers": {name: dict(lg) for name, lg in LOGGING_CONFIG["loggers"].items()},
    }
    config["filters"] = {
        "ironpush_once": {"()": f"{__name__}.StartupOnce"},
        "ironpush_repeats": {"()": f"{__name__}.RepeatLimiter", "interval": repeat_interval},
        "ironpush_access": {"()": f"{__name__}.AccessLogRedactor"},
    }
    if fmt == "json":
        json_formatter = {"()": f"{JsonFormatter.__module__}.{JsonFormatter.__qualname__}"}
        config["formatters"] = {name: dict(json_formatter) for name in config["formatters"]}
    for handler in config["handlers"].values():
        handler["filters"] = ["ironpush_once", "ironpush_repeats"]
    config["loggers"]["uvicorn.access"]["filters"] = ["ironpush_access"]
    # Like the rest of the CLI: ironpush at the chosen level, other libraries at WARNING (httpx
    # would log every request at INFO). Explicit, because the CLI group may have set the
    # ironpush logger's level in this process already.
    quiet = max(logging.WARNING, logging.getLevelName(level.upper()))
    config["root"] = {"handlers": ["default"], "level": logging.getLevelName(quiet)}
    config["loggers"]["ironpush"] = {"level": level.upper()}
    return config


def add_access_log_names(names: Iterable[str]) -> None:
    """Also mask these query parameters in the access log (each router's ``secret_param``)."""
    for found in logging.getLogger("uvicorn.access").filters:
        if isinstance(found, AccessLogRedactor):
            found.names.update(names)
