"""The Celery leg of a push's trace: the context travels in the task message's headers, the
worker runs the task in a ``job <task name>`` span and acknowledges in a ``settle <queue>``.

- :func:`task_headers` (in :func:`~ironpush.integrations._celery.enqueue`, inside a traced
  push): the propagator's headers (``traceparent``...) and ``ironpush_push``, the push's queue,
  subscriber and message id (names and ids only: the ack token stays in its own header);
- :class:`TaskSpans` (the worker's ``task_prerun``/``task_postrun`` signals): the task runs in
  a CONSUMER span ``job <task name>``, child of the push's ``process <queue>`` span, so store
  calls and spans the task makes join the trace;
- :func:`settling` (around the ``task_success`` ack and the ``task_failure`` release): the
  CLIENT span ``settle <queue>`` (``messaging.operation.name`` ``ack`` or ``release``).

All of it only with an OpenTelemetry SDK configured in the process (web service or worker);
otherwise each hook is one check::

    headers = {**headers, **task_headers(msg)}
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from .. import _tracing

if TYPE_CHECKING:
    from opentelemetry.trace import Span

    from ..receiver._outcomes import PushMessage

#: The task-message header that names the push (for the worker's span attributes).
PUSH_HEADER = "ironpush_push"


def task_headers(msg: PushMessage) -> dict[str, Any]:
    """Headers that carry the trace of ``msg``'s push into the task (empty when untraced)."""
    if _tracing.current() is None:
        return {}
    headers: dict[str, Any] = dict(_tracing.current_carrier())
    headers[PUSH_HEADER] = {
        "queue": msg.queue,
        "subscriber": msg.subscriber_name,
        "message_id": msg.id,
    }
    return headers


def header_of(request: Any, name: str) -> Any:
    """A custom header of a Celery task request (an attribute, or in ``headers``)."""
    found = request.get(name) if hasattr(request, "get") else None
    if found is None:
        found = (getattr(request, "headers", None) or {}).get(name)
    return found


class TaskSpans:
    """The ``job <task name>`` span of each running task of ours, by task id."""

    def __init__(self) -> None:
        self._open: dict[str, tuple[contextlib.AbstractContextManager[Any], dict[str, Any]]] = {}

    def start(self, task_id: str, name: str, request: Any) -> None:
        """The task starts (``task_prerun``): open its span, current until :meth:`end`."""
        if _tracing.tracer() is None:
            return
        carrier: dict[str, Any] = {}
        for key in ("traceparent", "tracestate", "baggage"):
            value = header_of(request, key)
            if isinstance(value, str):
                carrier[key] = value
        push = header_of(request, PUSH_HEADER)
        attributes = _push_attributes(push if isinstance(push, dict) else {})
        attributes["ironpush.job"] = name
        attributes["code.function.name"] = name
        span = _tracing.start(
            f"job {name}", _tracing.CONSUMER, attributes, parent=_tracing.context_from(carrier)
        )
        if span is None:
            return
        active = _tracing.activate(span)
        active.__enter__()
        self._open[task_id] = (active, attributes)

    def attributes(self, task_id: str | None) -> dict[str, Any] | None:
        """The push attributes of the running task's span, if it has one."""
        found = self._open.get(task_id or "")
        return found[1] if found is not None else None

    def end(self, task_id: str | None) -> None:
        """The task ended (``task_postrun``): end its span."""
        found = self._open.pop(task_id or "", None)
        if found is not None:
            found[0].__exit__(None, None, None)


@contextlib.contextmanager
def settling(spans: TaskSpans, task_id: str | None, operation: str) -> Iterator[Span | None]:
    """A ``settle <queue>`` CLIENT span (``ack`` or ``release``) inside the task's span."""
    found = spans.attributes(task_id) if _tracing.current() is not None else None
    if found is None:
        yield None
        return
    attributes = {
        key: value
        for key, value in found.items()
        if key.startswith("messaging.") and key != "messaging.destination.subscription.name"
    }
    attributes["messaging.operation.type"] = "settle"
    attributes["messaging.operation.name"] = operation
    queue = found.get("messaging.destination.name", "")
    span = _tracing.start(f"settle {queue}".strip(), _tracing.CLIENT, attributes)
    with _tracing.activate(span):
        yield span


def _push_attributes(push: dict[str, Any]) -> dict[str, Any]:
    attributes: dict[str, Any] = {"messaging.system": _tracing.SYSTEM}
    names = {
        "queue": "messaging.destination.name",
        "subscriber": "messaging.consumer.group.name",
        "message_id": "messaging.message.id",
    }
    for key, attribute in names.items():
        value = push.get(key)
        if isinstance(value, str) and value:
            attributes[attribute] = value
    return attributes
