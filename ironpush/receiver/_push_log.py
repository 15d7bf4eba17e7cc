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

from .._logfields import fields, write_direct
from .._protocol import Delivery
from ._outcomes import PushMessage
from ._push import ClaimedPush
from ._routes import Route
from ._sentry import failures, report

logger = logging.getLogger("ironpush.receiver")


#: The delivery line's format (its values are also the record's fields).
_LINE = "push %s queue=%s subscriber=%s outcome=%s status=%d duration_ms=%.1f%s"


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
    queue, subscriber = route.queue, route.subscriber
    if delivery is None:
        message_id, reservation_id = "-", None
    else:
        message_id, reservation_id = delivery.message_id, delivery.reservation_id
    args = (message_id, queue, subscriber, outcome, status, ms, f" ({why})" if why else "")
    if write_direct(logger, level, _LINE, args):  # only the fallback handler would show it
        return
    # The fields of _logfields.fields(), made here directly: this runs once per push.
    extra: dict[str, Any] = {"message_id": message_id, "queue": queue, "subscriber": subscriber}
    if attempt is not None:
        extra["attempt"] = attempt
    if reservation_id:
        extra["reservation_id"] = reservation_id
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


def handler_failed(route: Route, msg: PushMessage, exc: Exception) -> None:
    """The handler of ``route`` raised ``exc`` for ``msg`` (answered 500: IronMQ retries)."""
    # Sentry before the log line, whose event would be the same failure again.
    report(
        exc,
        queue=route.queue,
        subscriber=route.subscriber,
        message_id=msg.id,
        attempt=msg.attempt,
        outcome="error",
        route=route.path,
        reservation_id=msg.reservation_id,
    )
    failures.error(
        "handler %s failed for message %s",
        route.path,
        msg.id,
        exc_info=exc,
        extra=msg_fields(route, msg, outcome="error"),
    )


def job_failed(push: ClaimedPush, job: object, exc: Exception) -> None:
    """The deferred ``job`` of ``push`` raised ``exc`` (its claim is released: IronMQ pushes
    the message again)."""
    name = str(getattr(job, "__qualname__", None) or type(job).__name__)
    route, delivery = push.route, push.delivery
    report(
        exc,
        queue=route.queue,
        subscriber=route.subscriber,
        message_id=delivery.message_id,
        attempt=push.attempt,
        outcome="job_failed",
        route=route.path,
        job=name,
        reservation_id=delivery.reservation_id,
    )
    failures.error(
        "deferred job for message %s on %s failed; IronMQ will push again",
        delivery.message_id,
        route.queue,
        exc_info=exc,
        extra=push_fields(push, outcome="job_failed", job=name),
    )


def push_fields(push: ClaimedPush, **more: Any) -> dict[str, Any]:
    """The ``extra=`` of a record about a claimed push (``more`` adds or overrides)."""
    delivery = push.delivery
    found = fields(
        push.route.queue,
        push.route.subscriber,
        delivery.message_id,
        attempt=push.attempt,
        reservation_id=delivery.reservation_id,
    )
    found.update((key, value) for key, value in more.items() if value is not None)
    return found


def msg_fields(route: Route, msg: PushMessage, **more: Any) -> dict[str, Any]:
    """The ``extra=`` of a record about the message a handler got."""
    return fields(
        route.queue,
        route.subscriber,
        msg.id,
        attempt=msg.attempt,
        reservation_id=msg.reservation_id,
        **more,
    )
