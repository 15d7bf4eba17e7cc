"""What the pipeline tells about one push: its log records, with the push as record fields.

- :func:`log_delivery`: THE line per delivery, on ``ironpush.receiver`` (INFO; WARNING for a
  4xx), ``push <id> queue=… subscriber=… outcome=… status=… duration_ms=…`` with the same
  values as fields (:data:`ironpush._logfields.CONTEXT_KEYS`);
- :func:`handler_failed` / :func:`job_failed`: a handler or a ``Defer(job)`` job raised: one
  ERROR line with its traceback on ``ironpush.receiver.failures``, and the exception to Sentry
  with the push's tags when Sentry is in use (:mod:`._sentry`), reported first;
- :func:`push_fields` / :func:`msg_fields`: the ``extra=`` of any other record about a push::

    logger.info("message %s ...", push.key[0], extra=push_fields(push, outcome="dropped"))
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

from .._logfields import LEVEL_NAMES, FallbackHandler, fields, sole_fallback
from .._protocol import Delivery
from ._outcomes import PushMessage
from ._push import ClaimedPush
from ._routes import Route
from ._sentry import failures, report

logger = logging.getLogger("ironpush.receiver")
_NAME = logger.name


#: The delivery line's format (its values are also the record's fields).
_LINE = "push %s queue=%s subscriber=%s outcome=%s status=%d duration_ms=%s%s"
_LINE_MIDDLE = " queue=%s subscriber=%s outcome=%s status=%d duration_ms="


def duration_text(ms: float) -> str:
    """The line's ``duration_ms`` value: ``ms`` to a tenth, halves to even (``round``)::

        duration_text(0.26)  # "0.3"

    (A table for the usual quick push, under 100 ms: float formatting costs a push about
    2,600 instructions, the table a few hundred; ``float.__round__`` is ``round()`` without
    its lookup of the method.)"""
    tenths = (ms * 10.0).__round__()
    if 0 <= tenths < 1000:
        return _TENTHS[tenths]
    return f"{tenths / 10:.1f}"


_TENTHS = tuple(f"{tenths // 10}.{tenths % 10}" for tenths in range(1000))


def log_delivery(
    level: int,
    route: Route,
    delivery: Delivery | None,
    outcome: str,
    status: int,
    started: float,
    why: str | None,
    attempt: int | None,
    now: float | None = None,
) -> None:
    """The delivery's line (``why``: the reason of a 4xx, in the line and the body; ``now``: a
    ``time.perf_counter()`` the caller read already). The caller checked that ``logger`` is
    enabled for ``level``."""
    ms = ((time.perf_counter() if now is None else now) - started) * 1000
    message_id = "-" if delivery is None else delivery.message_id
    handler = sole_fallback(logger, level)
    if handler is not None:  # only the fallback handler would show it: the line, no record
        # _LINE % args after the time, from the parts made once per route and outcome.
        made = _parts.get((route.path, outcome, status, level))
        if made is None or made[0] is not route or made[1] is not LEVEL_NAMES.get(level):
            made = _line_parts(route, outcome, status, level, handler)
        tenths = (ms * 10.0).__round__()
        duration = _TENTHS[tenths] if 0 <= tenths < 1000 else duration_text(ms)
        if why:
            duration = f"{duration} ({why})"
        if handler.write_after_time(made[2], message_id, made[3], duration):
            return
    why_text = f" ({why})" if why else ""
    args = (message_id, route.queue, route.subscriber, outcome, status, duration_text(ms), why_text)
    # The fields of _logfields.fields(), made here directly: this runs once per push.
    extra: dict[str, Any] = {
        "message_id": message_id,
        "queue": route.queue,
        "subscriber": route.subscriber,
    }
    if attempt is not None:
        extra["attempt"] = attempt
    if delivery is not None and delivery.reservation_id:
        extra["reservation_id"] = delivery.reservation_id
    extra["outcome"] = outcome
    extra["status"] = status
    extra["duration_ms"] = round(ms, 3)
    # What logger.log(level, _LINE, *args, extra=extra) does, without its walk up the stack
    # to find the caller (this frame is what it finds) and with the fields set in one update
    # (none of them can collide with a LogRecord attribute). Filters, handlers, a custom
    # record factory or Logger class all apply as usual.
    if logging._srcfile:
        frame = sys._getframe()
        where = (frame.f_code.co_filename, frame.f_lineno, frame.f_code.co_name)
    else:  # the application turned caller lookup off (logging._srcfile = None)
        where = ("(unknown file)", 0, "(unknown function)")
    record = logger.makeRecord(logger.name, level, where[0], where[1], _LINE, args, None, where[2])
    record.__dict__.update(extra)
    logger.handle(record)


def log_acked(route: Route, delivery: Delivery, started: float, now: float, attempt: int) -> None:
    """``log_delivery(INFO, route, delivery, "acked", 200, started, None, attempt, now)``, the
    quick path's line: its parts found by the route's path alone. The caller checked that
    ``logger`` is enabled for INFO."""
    handler = sole_fallback(logger, _INFO)
    if handler is not None:
        made = _acked.get(route.path)
        if made is None or made[0] is not route or made[1] is not LEVEL_NAMES.get(_INFO):
            made = _acked[route.path] = _line_parts(route, "acked", 200, _INFO, handler)
        # duration_text's table read here (a call less per push).
        ms = (now - started) * 1000
        tenths = (ms * 10.0).__round__()
        duration = _TENTHS[tenths] if 0 <= tenths < 1000 else duration_text(ms)
        if handler.write_after_time(made[2], delivery.message_id, made[3], duration):
            return
    log_delivery(_INFO, route, delivery, "acked", 200, started, None, attempt, now)


#: A line's parts by (route path, outcome, status, level): the route they were made for, the
#: level's name they were made with (logging.addLevelName may rename it), the text before
#: the message id ("LEVEL   name: push "), and the text between it and the duration.
_Parts = tuple[Route, str | None, str, str]
_parts: dict[tuple[str, str, int, int], _Parts] = {}
#: log_acked's parts by route path alone.
_acked: dict[str, _Parts] = {}
_INFO = logging.INFO


def _line_parts(
    route: Route, outcome: str, status: int, level: int, handler: FallbackHandler
) -> _Parts:
    made = (
        route,
        LEVEL_NAMES.get(level),
        handler.head(level, _NAME) + "push ",
        _LINE_MIDDLE % (route.queue, route.subscriber, outcome, status),
    )
    if len(_parts) < 4096:  # bounded whatever the routes (a route has a few outcomes)
        _parts[(route.path, outcome, status, level)] = made
    return made


def handler_failed(route: Route, msg: PushMessage, exc: Exception) -> None:
    """The handler of ``route`` raised ``exc`` for ``msg`` (answered 500: IronMQ retries)."""
    known = _known(msg.attempt, msg.reservation_id, {"outcome": "error"})
    text = "handler %s failed for message %s"
    _failed(exc, route, msg.id, known, text, route.path, msg.id)


def job_failed(push: ClaimedPush, job: object, exc: Exception) -> None:
    """The deferred ``job`` of ``push`` raised ``exc`` (its claim is released: IronMQ pushes
    the message again)."""
    name = str(getattr(job, "__qualname__", None) or type(job).__name__)
    delivery, queue = push.delivery, push.route.queue
    known = _known(push.attempt, delivery.reservation_id, {"outcome": "job_failed", "job": name})
    text = "deferred job for message %s on %s failed; IronMQ will push again"
    _failed(exc, push.route, delivery.message_id, known, text, delivery.message_id, queue)


def _failed(
    exc: Exception, route: Route, message_id: str, known: dict[str, Any], text: str, *args: Any
) -> None:
    """Report a failure once: to Sentry first (when in use), then the log line, whose Sentry
    event would be the same failure again (``known``: the push's fields, see :func:`_known`)."""
    queue, subscriber = route.queue, route.subscriber
    report(
        exc, queue=queue, subscriber=subscriber, message_id=message_id, route=route.path, **known
    )
    extra = fields(queue, subscriber, message_id, **known)
    failures.error(text, *args, exc_info=exc, extra=extra)


def push_fields(push: ClaimedPush, **more: Any) -> dict[str, Any]:
    """The ``extra=`` of a record about a claimed push (``more`` adds or overrides)."""
    delivery = push.delivery
    known = _known(push.attempt, delivery.reservation_id, more)
    return fields(push.route.queue, push.route.subscriber, delivery.message_id, **known)


def msg_fields(route: Route, msg: PushMessage, **more: Any) -> dict[str, Any]:
    """The ``extra=`` of a record about the message a handler got."""
    known = _known(msg.attempt, msg.reservation_id, more)
    return fields(route.queue, route.subscriber, msg.id, **known)


def _known(attempt: int | None, reservation_id: str | None, more: dict[str, Any]) -> dict[str, Any]:
    """A push's attempt and reservation, with ``more`` added (its None values left out) or
    overriding them."""
    known: dict[str, Any] = {"attempt": attempt, "reservation_id": reservation_id}
    known.update((key, value) for key, value in more.items() if value is not None)
    return known
