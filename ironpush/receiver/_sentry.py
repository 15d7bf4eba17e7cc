"""Handler and job exceptions to Sentry, once each, tagged with the push.

The router turns a handler's exception into a 500 (IronMQ retries) and a failed deferred job
into a redelivery, so no exception ever leaves it for Sentry's ASGI integration to see; only
the log line would reach Sentry (its logging integration), without the push. So when the
application uses ``sentry_sdk`` (imported and initialised: ``sentry_sdk.init(dsn=...)``),
:func:`report` captures the exception itself, as unhandled (mechanism ``ironpush``), with the
tags ``queue``, ``subscriber``, ``message_id``, ``attempt`` and ``outcome`` (``error``: the
handler raised, answered 500; ``job_failed``: a ``Defer(job)`` job raised) and an ``ironpush``
context (route path, job name, reservation).

**Once per failure.** The failure's log line goes to :data:`FAILURES_LOGGER`, which Sentry's
logging integration is told to ignore (``ignore_logger``) the first time ironpush reports to
Sentry; and the report comes before the line, so Sentry's default ``DedupeIntegration`` would
drop the line's event too. Nothing is imported and nothing happens without ``sentry_sdk``;
an error inside the report never reaches the push::

    report(exc, queue="orders", subscriber="billing", message_id="6295...", attempt=1,
           outcome="error", route="/orders")
"""

from __future__ import annotations

import inspect
import logging
import sys
from typing import Any

#: The logger of the "handler failed" and "deferred job failed" lines (not captured again).
FAILURES_LOGGER = "ironpush.receiver.failures"
failures = logging.getLogger(FAILURES_LOGGER)

_ignoring: list[bool] = []  # non-empty once ignore_logger was called


def report(
    exc: BaseException,
    *,
    queue: str,
    subscriber: str | None,
    message_id: str,
    attempt: int | None,
    outcome: str,
    route: str,
    job: str | None = None,
    reservation_id: str | None = None,
) -> None:
    """Capture ``exc`` in Sentry with the push's tags, when Sentry is in use (see module)."""
    sentry: Any = sys.modules.get("sentry_sdk")
    if sentry is None:
        return
    try:
        client = sentry.get_client()
        if not client.is_active():
            return
        if not _ignoring:
            from sentry_sdk.integrations.logging import ignore_logger

            ignore_logger(FAILURES_LOGGER)
            _ignoring.append(True)
        event, hint = _event_of(exc, client)
        tags = {
            "queue": queue,
            "subscriber": subscriber or "",
            "message_id": message_id,
            "attempt": "" if attempt is None else str(attempt),
            "outcome": outcome,
        }
        context = {"route": route, "job": job, "reservation_id": reservation_id}
        sentry.capture_event(
            event,
            hint=hint,
            tags=tags,
            contexts={"ironpush": {k: v for k, v in context.items() if v is not None}},
        )
    except Exception:  # reporting must never break the push (a broken transport, an old SDK)
        logging.getLogger("ironpush.receiver").debug("Sentry report failed", exc_info=True)


def _event_of(exc: BaseException, client: Any) -> tuple[Any, Any]:
    """Sentry's event and hint for ``exc``, as unhandled (mechanism ``ironpush``): the SDK's
    own builder, which takes the client's options in sentry-sdk 2 and reads them itself in 3."""
    from sentry_sdk.utils import event_from_exception

    build: Any = event_from_exception  # its signature depends on the SDK's major version
    mechanism = {"type": "ironpush", "handled": False}
    if "client_options" in inspect.signature(build).parameters:
        return build(exc, client_options=client.options, mechanism=mechanism)  # type: ignore[no-any-return]
    return build(exc, mechanism=mechanism)  # type: ignore[no-any-return]
