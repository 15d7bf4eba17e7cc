"""ironpush's log records: the push context as record fields, one JSON object per line, and a
fallback that keeps the receiver's lines visible when nothing configured logging.

**Fields.** Every record about one push (the receiver's per-delivery line, its handler or job
failure, the outbox's ack line, the dev server's push and ack lines) carries the push as
record attributes (``logger.info(..., extra=fields(...))``), under the keys of
:data:`CONTEXT_KEYS`; any formatter that reads record attributes picks them up (structlog's
``ExtraAdder``, python-json-logger, :class:`JsonFormatter`).

**JSON.** :class:`JsonFormatter` writes ``time``, ``level``, ``logger``, ``message``, ``pid``,
then the context keys a record has, then any other ``extra=`` field, then ``exception`` (the
traceback) — one object per line; a field whose name says it holds a secret (``token``,
``secret``, ``authorization``…, :func:`ironpush._redact.is_sensitive`) is masked, and so are
the secrets in a URL or request path (``?ironpush_secret=…``).

**Fallback.** Under plain uvicorn or gunicorn (Django, any framework) nobody configures the
root logger: uvicorn configures its own ``uvicorn.*`` loggers only, so a record of
``ironpush.receiver`` meets the root's WARNING level and no handler — the INFO lines per
delivery are dropped, warnings reach Python's bare last-resort handler. When a router starts
and no handler would show ironpush's records, :func:`ensure_visible` gives the ``ironpush``
logger one stderr handler (the CLI's format) at INFO; it stays silent as soon as the root
logger has a handler (the application configured logging: its handlers show the records)::

    logger.info("push %s ...", message_id, extra=fields("orders", "billing", message_id))
"""

from __future__ import annotations

import io
import json
import logging
import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO
from urllib.parse import parse_qsl, urlencode

from ._redact import MASK, is_sensitive, mask, redact_url

#: The push-context keys a record may carry, in the order a JSON line shows them.
CONTEXT_KEYS = (
    "message_id",  # IronMQ's message id
    "queue",  # the queue's name
    "subscriber",  # the subscriber's name
    "attempt",  # the delivery attempt (the store's count of handler runs), from 1
    "reservation_id",  # the push's reservation (what an ack names)
    "outcome",  # what happened: acked, deferred, retry, error, duplicate, ... (see README)
    "status",  # the HTTP status answered (receiver) or received (dev server)
    "duration_ms",  # how long it took, in milliseconds
    "result",  # an ack's result: acked, late, failed, retry
    "kind",  # an outbox item: ack or post
    "job",  # a deferred job's name
    "store",  # the store's kind (memory, sqlite, redis, postgres)
    "project",  # the project id (dev server)
    "event",  # the dev server's event: push, ack, expired, error_queue, replay
)
#: The text format of the CLI and of the fallback handler.
FORMAT = "%(asctime)s.%(msecs)03d %(levelname)-7s %(name)s: %(message)s"
DATEFMT = "%H:%M:%S"

# Attributes every LogRecord has (not extra= fields), and those other tools add that a JSON
# line should not repeat (uvicorn's coloured copy of the message, ironpush's repeat marker).
_STANDARD = frozenset(
    {
        *logging.LogRecord("", 0, "", 0, "", (), None).__dict__,
        "message",
        "asctime",
        "taskName",
        "color_message",
        "ironpush_every_time",
    }
)
_CONTEXT = frozenset(CONTEXT_KEYS)
_URL_KEYS = frozenset({"url", "message_url"})


def fields(
    queue: str,
    subscriber: str | None,
    message_id: str | None,
    *,
    attempt: int | None = None,
    reservation_id: str | None = None,
    **more: Any,
) -> dict[str, Any]:
    """The ``extra=`` of a record about one push (None values left out)."""
    found: dict[str, Any] = {"message_id": message_id, "queue": queue, "subscriber": subscriber}
    if attempt is not None:
        found["attempt"] = attempt
    if reservation_id:
        found["reservation_id"] = reservation_id
    for key, value in more.items():
        if value is not None:
            found[key] = value
    return found


class JsonFormatter(logging.Formatter):
    """One JSON object per record (see the module docs for the keys)::

    handler.setFormatter(JsonFormatter())
    """

    def __init__(self, *, use_colors: bool | None = None) -> None:
        # use_colors: uvicorn hands it to the formatters it configures; a JSON line has none.
        super().__init__()

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(self.document(record), ensure_ascii=False, default=str)

    def document(self, record: logging.LogRecord) -> dict[str, Any]:
        """The record as a dict (what :meth:`format` writes)."""
        doc: dict[str, Any] = {
            "time": _iso(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        attributes = record.__dict__
        for key in CONTEXT_KEYS:
            value = attributes.get(key)
            if value is not None:
                doc[key] = value
        if record.name == "uvicorn.access":
            doc.update(_access_fields(record.args))
        for key, value in attributes.items():
            if key not in _STANDARD and key not in _CONTEXT and not key.startswith("_"):
                doc.setdefault(key, value)
        for key, value in doc.items():
            if is_sensitive(key) and value is not None:
                doc[key] = mask(str(value))
            elif key in _URL_KEYS and isinstance(value, str):
                doc[key] = redact_url(value)
            elif key == "path" and isinstance(value, str) and "?" in value:
                doc[key] = _redact_query(value)
        if record.exc_info and record.exc_info[0] is not None:
            doc["error_type"] = record.exc_info[0].__qualname__
            doc["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            doc["exception"] = record.exc_text
        if record.stack_info:
            doc["stack"] = self.formatStack(record.stack_info)
        return doc


def _iso(created: float) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
    return f"{seconds}.{int(created % 1 * 1000):03d}Z"


def _redact_query(path: str) -> str:
    """A request path with its secret query values masked (those masked already kept)."""
    head, _, query = path.partition("?")
    pairs = parse_qsl(query, keep_blank_values=True)
    if not any(is_sensitive(k) and not v.endswith(MASK) for k, v in pairs):
        return path
    masked = [(k, mask(v) if is_sensitive(k) and not v.endswith(MASK) else v) for k, v in pairs]
    return head + "?" + urlencode(masked, safe="*/")


def _access_fields(args: object) -> dict[str, Any]:
    # uvicorn's access record: (client address, method, path with query, HTTP version, status);
    # ironpush serve's filter has masked the path's secrets already, redact_url does it again.
    if not (isinstance(args, tuple) and len(args) == 5):
        return {}
    client, method, path, _version, status = args
    return {"client": client, "method": method, "path": path, "status": status}


class TextFormatter(logging.Formatter):
    """``logging.Formatter(FORMAT, DATEFMT)``, with the time's text made once a second (the
    fallback handler formats a line per push), and :meth:`line`: the same text without a
    record."""

    def __init__(self) -> None:
        super().__init__(FORMAT, DATEFMT)
        # The second whose text _asctime is: [_start, _start + 1) in time.time()'s scale.
        self._start = -2.0
        self._asctime = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        if datefmt is not None and datefmt != DATEFMT:
            return super().formatTime(record, datefmt)
        created = record.created
        if not 0.0 <= created - self._start < 1.0:
            self._tick(created)
        return self._asctime

    def _tick(self, created: float) -> None:
        # (Two threads may both make it: the same text.) The text first, then the second it
        # belongs to: a reader that sees the new second sees its text.
        self._asctime = time.strftime(DATEFMT, self.converter(created))
        self._start = float(int(created))

    def stamp(self, created: float) -> str:
        """``%(asctime)s.%(msecs)03d`` of a record made at ``created`` (``time.time()``)."""
        since = created - self._start  # LogRecord's msecs: (created - int(created)) * 1000
        if not 0.0 <= since < 1.0:
            self._tick(created)
            since = created - self._start
        return self._asctime + _MILLIS[int(since * 1000)]

    def line(self, created: float, level: int, name: str, message: str) -> str:
        """What :meth:`format` makes of a record of ``name`` at ``level``, made at ``created``
        (``time.time()``), whose message is ``message``: FORMAT, written out."""
        level_name = logging.getLevelName(level).ljust(7)  # %-7s
        return f"{self.stamp(created)} {level_name} {name}: {message}"


_MILLIS = tuple(f".{n:03d}" for n in range(1000))


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is *now* (it may be swapped, e.g. by click's runner
    or pytest's capture)::

        logging.getLogger("ironpush").addHandler(StderrHandler())
    """

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass  # always the current sys.stderr


class FallbackHandler(StderrHandler):
    """stderr (whatever ``sys.stderr`` is now), silent once the root logger has a handler."""

    def __init__(self) -> None:
        super().__init__()
        self.text = TextFormatter()
        self.setFormatter(self.text)
        # "LEVEL   name: " by logger name and level, with the level's name it was made from
        # (logging.addLevelName may rename a level later).
        self._heads: dict[str, dict[int, tuple[str | None, str]]] = {}
        # The last stream found to need no flush() after a line (see _flush).
        self._unbuffered: Any = None

    def emit(self, record: logging.LogRecord) -> None:
        if logging.root.handlers:  # logging configured since: the root's handlers show it
            return
        # StreamHandler.emit, reading sys.stderr once (the lock is held: Handler.handle).
        try:
            msg = self.format(record)
            stream = sys.stderr
            if stream is None:  # pythonw: nowhere to write
                return
            stream.write(msg + self.terminator)
            stream.flush()
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)

    def write_line(self, level: int, name: str, message: str) -> bool:
        """Write what :meth:`emit` writes for a record of logger ``name`` at ``level`` whose
        message is ``message``, made now, without the record (see :func:`sole_fallback`):
        True when written (or nowhere to write), False when it failed (log it instead, and
        the logging path reports the failure)."""
        return self.write_after_time(self.head(level, name), message, "", "")

    def head(self, level: int, name: str) -> str:
        """FORMAT's part between the time and the message: ``" INFO    name: "``."""
        heads = self._heads.get(name)
        head = None if heads is None else heads.get(level)
        if head is None or head[0] is not LEVEL_NAMES.get(level):
            # Remembered with the level's name it was made from (logging.addLevelName may
            # rename the level later).
            head = (LEVEL_NAMES.get(level), f" {logging.getLevelName(level):<7} {name}: ")
            self._heads.setdefault(name, {})[level] = head
        return head[1]

    def write_after_time(self, first: str, second: str, third: str, fourth: str) -> bool:
        """:meth:`write_line` of ``head(level, name) + message``: the time now, then the
        rest in four parts (the caller's pieces, joined once here)."""
        created = time.time()
        text = self.text
        since = created - text._start
        if not 0.0 <= since < 1.0:  # a new second: TextFormatter.stamp makes its text
            text.stamp(created)
            since = created - text._start
        stream: Any = sys.stderr
        if stream is None:  # pythonw: nowhere to write (the handler would write nothing either)
            return True
        lock = self.lock
        assert lock is not None  # Handler.__init__ made it
        lock.acquire()
        try:
            # FORMAT: the second's text, ".%03d" of LogRecord's msecs, the level and name.
            stream.write(
                f"{text._asctime}{_MILLIS[(since * 1000.0).__trunc__()]}"
                f"{first}{second}{third}{fourth}{self.terminator}"
            )
            if stream is not self._unbuffered or not (
                stream.write_through or (stream.line_buffering and self.terminator == "\n")
            ):
                self._flush(stream)
        except Exception:  # let the logging path report it (Handler.handleError)
            return False
        finally:
            lock.release()
        return True

    def write_lines(self, lines: Sequence[str]) -> bool:
        """:meth:`write_line` for several lines made now, in one write (one system call for
        an outbox chunk's acks, not one each): each of ``lines`` is ``head(level, name) +
        message``; the time is read once for all::

            handler.write_lines([f"{handler.head(logging.INFO, name)}ack m1 ...", ...])
        """
        created = time.time()
        text = self.text
        since = created - text._start
        if not 0.0 <= since < 1.0:
            text.stamp(created)
            since = created - text._start
        stamp, end = f"{text._asctime}{_MILLIS[(since * 1000.0).__trunc__()]}", self.terminator
        stream: Any = sys.stderr
        if stream is None:
            return True
        lock = self.lock
        assert lock is not None
        # (write_after_time's lines, one call: the delivery line's path keeps its own copy,
        # a call fewer per push.)
        with lock:
            try:
                stream.write("".join([f"{stamp}{line}{end}" for line in lines]))
                self._flush(stream)
            except Exception:
                return False
        return True

    def _flush(self, stream: Any) -> None:
        """Flush ``stream``, unless what it is makes flush() a no-op after a written line
        (remembered: the check above is then one identity test and a flag)."""
        # sys.stderr is a TextIOWrapper (Python >= 3.9: line-buffered even to a pipe or a
        # file; with -u or PYTHONUNBUFFERED write_through on a raw FileIO): write_through
        # reaches the file at once, line_buffering flushes itself and its buffer at "\n"
        # (the terminator; another one, and flush() is called).
        if type(stream) is io.TextIOWrapper and type(stream.buffer) in _FILES:
            self._unbuffered = stream
            if stream.write_through or (stream.line_buffering and self.terminator == "\n"):
                return
        stream.flush()


#: The binary layers under sys.stderr whose flush TextIOWrapper's own flush reaches.
_FILES = (io.FileIO, io.BufferedWriter)

#: What logging.getLevelName reads (logging.addLevelName changes it).
LEVEL_NAMES = logging._levelToName


def sole_fallback(logger: logging.Logger, level: int) -> FallbackHandler | None:
    """The :class:`FallbackHandler` that alone would show ``logger``'s record at ``level``
    (write the line with its :meth:`~FallbackHandler.write_line`), or None: log a record.

    That is the case with nothing configured (plain uvicorn): a per-delivery line then costs
    a line of text, not a LogRecord walked through the logger tree (a tenth of the cost).
    Anything of the application's on the way makes it None: a handler on the root (or on any
    logger between), a filter, a record factory, a Logger class, another formatter or level
    on the handler; the caller checked ``logger.isEnabledFor(level)``::

        handler = sole_fallback(logger, logging.INFO)
        if handler is None or not handler.write_line(logging.INFO, logger.name, text):
            logger.info("push %s ...", *args, extra=fields(...))

    ironpush's loggers are one level below ``ironpush``, which holds the handler: for that
    shape, what the walk up the logger tree (:func:`_sole_fallback`) reads is read again
    straight, without the walk's loop (the same checks); any other shape is walked."""
    # (logging._logRecordFactory: what getLogRecordFactory() returns, without the call.)
    if logging.root.handlers or logging._logRecordFactory is not _LogRecord:  # type: ignore[attr-defined]
        return None
    owner = logger.parent
    if owner is not None and owner.handlers and owner.parent is logging.root:
        handlers = owner.handlers
        handler = handlers[0]
        if (
            type(handler) is FallbackHandler
            and len(handlers) == 1
            and not (logger.handlers or logger.filters or logger.disabled or owner.filters)
            and logger.propagate
            and not owner.disabled
            and not handler.filters
            and level >= handler.level
            and handler.formatter is handler.text
            and type(logger) is _Logger
            and type(owner) is _Logger
        ):
            return handler
    return _sole_fallback(logger, level)


_LogRecord = logging.LogRecord
_Logger = logging.Logger


def _sole_fallback(logger: logging.Logger, level: int) -> FallbackHandler | None:
    """The FallbackHandler that alone would show ``logger``'s record at ``level``, or None."""
    if logging.root.handlers or logging.getLogRecordFactory() is not logging.LogRecord:
        return None
    found: FallbackHandler | None = None
    node: logging.Logger | None = logger
    while node is not None and node is not logging.root:
        if type(node) is not logging.Logger or node.filters or node.disabled:
            return None
        if node.handlers:
            handler = node.handlers[0]
            if (
                found is not None
                or len(node.handlers) != 1
                or type(handler) is not FallbackHandler
                or handler.filters
                or level < handler.level
                or handler.formatter is not handler.text
            ):
                return None
            found = handler
        if not node.propagate:
            break
        node = node.parent
    return found


def ensure_visible() -> None:
    """Give the ``ironpush`` logger a :class:`FallbackHandler` at INFO when no handler would
    show its records (see the module docs); nothing when one would, or when it has one."""
    ironpush = logging.getLogger("ironpush")
    if ironpush.hasHandlers():
        return
    ironpush.addHandler(FallbackHandler())
    if ironpush.level == logging.NOTSET:
        ironpush.setLevel(logging.INFO)
