"""The producer side of a trace: ``post()`` inside an active span is a ``send <queue>`` span
whose context travels in each message's ``push_headers``.

IronMQ's pusher sends a message's ``push_headers`` with every push of it (protocol §3.2), so
the receiver's ``process <queue>`` span continues the producer's trace. A message keeps at
most five push headers, and the caller's come first:

- a message whose ``push_headers`` already carry a ``traceparent`` is left as it is (the
  caller chose its creation context);
- otherwise the propagator's headers (``traceparent``, then ``tracestate``, then any other a
  configured propagator writes) are added while there is room and no header of the same name
  (any case) is there: a caller's header is never overwritten;
- a message with no room for ``traceparent`` is posted without trace context; the send span
  counts such messages in ``ironpush.trace_context.dropped`` and the receiver's span starts a
  trace of its own for it.

Only inside a recording span (the caller's request, job...): a bare ``post()`` in a script
starts no trace. ``IronMQ(tracing=False)`` turns this off::

    sending = start_send(client, "orders", messages)
    if sending is not None:
        span, messages = sending
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .. import _tracing
from .._protocol import MAX_PUSH_HEADER_VALUE, MAX_PUSH_HEADERS

if TYPE_CHECKING:
    from opentelemetry.trace import Span

    from .._config import Settings
    from ._operations import MessageInput

#: The header a caller sets to give a message its own creation context.
TRACEPARENT = "traceparent"


def start_send(
    settings: Settings, queue: str, messages: Sequence[MessageInput]
) -> tuple[Span, list[MessageInput]] | None:
    """The ``send <queue>`` PRODUCER span and the messages carrying its context, or None when
    there is nothing to trace (no SDK, or no recording span around the call)."""
    if _tracing.tracer() is None or not _tracing.recording():
        return None
    attributes: dict[str, Any] = {
        "messaging.system": _tracing.SYSTEM,
        "messaging.operation.type": "send",
        "messaging.operation.name": "send",
        "messaging.destination.name": queue,
        "server.address": settings.host,
        "server.port": settings.port,
    }
    if len(messages) > 1:
        attributes["messaging.batch.message_count"] = len(messages)
    span = _tracing.start(f"send {queue}", _tracing.PRODUCER, attributes)
    if span is None:
        return None
    carrier: dict[str, str] = {}
    _tracing.inject(carrier, span)
    carried = [with_context(m, carrier) for m in messages]
    dropped = sum(1 for ok, _ in carried if not ok)
    if dropped:
        span.set_attribute("ironpush.trace_context.dropped", dropped)
    return span, [m for _, m in carried]


def with_context(given: MessageInput, carrier: Mapping[str, str]) -> tuple[bool, MessageInput]:
    """``given`` with the propagation headers of ``carrier`` added where there is room;
    whether it carries a creation context (its own or ours). Never overwrites a header."""
    message: object = given
    if isinstance(message, str | bytes | bytearray):
        message = {"body": message}
    if not carrier or not isinstance(message, Mapping):
        return False, given  # not a message: post() refuses it with its own error
    headers = message.get("push_headers") or {}
    if not isinstance(headers, Mapping):
        return False, message
    taken = {str(name).lower() for name in headers}
    if TRACEPARENT in taken:
        return True, given
    merged = dict(headers)
    # traceparent first: without it the rest means nothing to the receiver.
    for name, value in sorted(carrier.items(), key=lambda item: item[0] != TRACEPARENT):
        if len(merged) >= MAX_PUSH_HEADERS:
            break
        if name.lower() in taken or not value or len(value.encode()) > MAX_PUSH_HEADER_VALUE:
            continue
        merged[name] = value
        taken.add(name.lower())
    if TRACEPARENT not in taken:
        return False, given
    return True, {**message, "push_headers": merged}


def sent(span: Span, ids: Sequence[str]) -> None:
    """Record what IronMQ answered: the message id of a single-message post."""
    if len(ids) == 1:
        span.set_attribute("messaging.message.id", ids[0])
