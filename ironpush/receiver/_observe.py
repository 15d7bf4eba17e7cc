"""The per-push seam: what watches one push from its arrival to its answer, its deferred job
and its ack. Tracing is here; metrics, log fields and error reporting hook in beside it.

The pipeline asks :meth:`PushObserver.watching` once per push (a flag and one global read:
False without an OpenTelemetry SDK, with ``PushRouter(tracing=False)``, or without
``ironpush[otel]``). Only then does it run the push inside :meth:`PushObserver.observe`, which
opens one :class:`PushObservation` (kept in a context variable for the push's task and the
tasks it starts), and the pipeline's hooks report to it:

=====================  =============================================================
hook (pipeline)        what the observation does with it (tracing)
=====================  =============================================================
``observe``            starts the CONSUMER span ``process <queue>``: child of the
                       producer's creation context (the ``traceparent`` push header)
                       with a link to it, and a link to the ambient span (an HTTP
                       server span around the push) when there is one; without a
                       creation context, child of the ambient span
``claimed(msg)``       the delivery attempt (``messaging.ironmq.message.delivery_attempt``)
``failed(exc)``        the handler or job raised: ``error.type`` on the current span
``answered(...)``      ``ironpush.outcome`` and ``http.response.status_code``; 4xx/5xx
                       set the span's status to ERROR
(end of ``observe``)   ends the span, whatever happened
``job(coro, ...)``     a ``Defer(job)`` runs in its INTERNAL span ``job <name>``, a child
                       of the push's span (the trace goes on after the 202)
``acknowledge(...)``   the outbox's ack of a traced job: CLIENT span ``settle <queue>``,
                       child of the job's span (the HTTP call beneath it)
=====================  =============================================================

Each hook is ``current_push()`` (one context-variable read) and nothing more when the push is
not observed::

    observer = PushObserver(tracing=True)
    if observer.watching():
        await observer.observe(pipeline.receive_push, route, scope, receive, send)
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Coroutine
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from .. import _tracing
from .._protocol import Delivery
from ._asgi import Receive, Scope, Send
from ._routes import Route

if TYPE_CHECKING:
    from opentelemetry.trace import Span, SpanContext

    from ..client._async_client import AsyncIronMQ
    from ._outcomes import PushMessage
    from ._push import ClaimedPush

# Push headers that are never read into the consumer span's context carrier (the secret) are
# not needed there at all: the propagator reads only its own names.
_CARRIED = (b"traceparent", b"tracestate", b"baggage")
#: Jobs whose ack the outbox has not sent yet: (queue, message id, subscriber) -> the job
#: span's context, so the ``settle`` span joins the trace. Bounded: an ack sent by another
#: process sharing the store never comes back for its entry.
_SETTLES: dict[tuple[str, str, str | None], SpanContext] = {}
_MAX_SETTLES = 4096


class PushObservation:
    """One push being watched: its span (and, beside it, what metrics/logs keep per push)."""

    __slots__ = ("route", "span")

    def __init__(self, route: Route, span: Span) -> None:
        self.route = route
        self.span = span

    def claimed(self, msg: PushMessage) -> None:
        """The push is this router's to handle (a new claim): what the message says."""
        if msg.attempt is not None:
            self.span.set_attribute("messaging.ironmq.message.delivery_attempt", msg.attempt)

    def answered(self, outcome: str, status: int) -> None:
        """The router answered: ``outcome`` (the delivery log line's) and the status code."""
        span = self.span
        span.set_attribute("ironpush.outcome", outcome)
        span.set_attribute("http.response.status_code", status)
        if status >= 400:
            if not _has_error(span):
                span.set_attribute("error.type", outcome)
            _tracing.errored(span)


class PushObserver:
    """Opens a :class:`PushObservation` per push when something watches pushes."""

    def __init__(self, *, tracing: bool) -> None:
        self.tracing = tracing and _tracing.AVAILABLE

    def watching(self) -> bool:
        """Whether pushes are observed now (an SDK is configured and tracing is on)."""
        return self.tracing and _tracing.tracer() is not None

    async def observe(
        self,
        receive_push: Callable[[Route, Scope, Receive, Send], Awaitable[None]],
        route: Route,
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        """Run ``receive_push`` for one push inside its observation."""
        if type(scope["headers"]) is not list:  # any iterable, per ASGI: it is read twice
            scope = {**scope, "headers": list(scope["headers"])}
        span = _consumer_span(route, scope)
        if span is None:
            await receive_push(route, scope, receive, send)
            return
        token = _PUSH.set(PushObservation(route, span))
        try:
            with _tracing.activate(span):
                await receive_push(route, scope, receive, send)
        finally:
            _PUSH.reset(token)


_PUSH: ContextVar[PushObservation | None] = ContextVar("ironpush_push", default=None)
#: The observation of the push the running code serves, or None (one context-variable read).
current_push = _PUSH.get


def failed(exc: BaseException) -> None:
    """The handler or the deferred job raised ``exc`` (caught by the pipeline)."""
    span = _tracing.current()
    if span is not None:
        _tracing.fail(span, exc)


def job(
    coro: Coroutine[Any, Any, None], push: ClaimedPush, fn: object
) -> Coroutine[Any, Any, None]:
    """``coro`` (a deferred job's run: the job, its completion, its ack queued) inside the
    ``job <name>`` span; ``coro`` itself when the push is not observed."""
    if _PUSH.get() is None:
        return coro
    return _traced_job(coro, push, _name_of(fn))


async def _traced_job(coro: Coroutine[Any, Any, None], push: ClaimedPush, name: str) -> None:
    delivery = push.delivery
    attributes = _push_attributes(push.route, delivery.message_id, delivery.subscriber_name)
    attributes["ironpush.job"] = name
    attributes["code.function.name"] = name
    span = _tracing.start(f"job {name}", _tracing.INTERNAL, attributes)
    if span is None:
        await coro
        return
    key = (push.route.queue, delivery.message_id, delivery.subscriber_name)
    _remember(key, span.get_span_context())
    with _tracing.activate(span):
        await coro


def _remember(key: tuple[str, str, str | None], context: SpanContext) -> None:
    if len(_SETTLES) >= _MAX_SETTLES:
        # The oldest: its ack went out elsewhere. (Routers on other threads may change the
        # dict meanwhile: then another entry goes, or none.)
        with contextlib.suppress(KeyError, RuntimeError, StopIteration):
            del _SETTLES[next(iter(_SETTLES))]
    _SETTLES[key] = context


def settles_in_span(queue: str, delivery: Delivery) -> bool:
    """Whether the ack of ``delivery`` goes in a ``settle`` span (its job was traced here):
    :func:`acknowledge` sends it, not a batch."""
    return bool(_SETTLES) and (queue, delivery.message_id, delivery.subscriber_name) in _SETTLES


def acknowledge(client: AsyncIronMQ, queue: str, delivery: Delivery) -> Awaitable[None]:
    """``client.acknowledge(queue, delivery)``, in a ``settle <queue>`` span when the push's
    job was traced here (else the call itself: no coroutine of its own per ack)."""
    parent = (
        _SETTLES.pop((queue, delivery.message_id, delivery.subscriber_name), None)
        if _SETTLES
        else None
    )
    if parent is None:
        return client.acknowledge(queue, delivery)
    return _traced_ack(client, queue, delivery, parent)


async def _traced_ack(
    client: AsyncIronMQ, queue: str, delivery: Delivery, parent: SpanContext
) -> None:
    attributes = {
        "messaging.system": _tracing.SYSTEM,
        "messaging.operation.type": "settle",
        "messaging.operation.name": "ack",
        "messaging.destination.name": queue,
        "messaging.message.id": delivery.message_id,
        "server.address": client.settings.host,
        "server.port": client.settings.port,
    }
    if delivery.subscriber_name:
        attributes["messaging.consumer.group.name"] = delivery.subscriber_name
    span = _tracing.start(
        f"settle {queue}", _tracing.CLIENT, attributes, parent=_tracing.parent_of(parent)
    )
    with _tracing.activate(span):
        await client.acknowledge(queue, delivery)


# --- the consumer span ----------------------------------------------------------------------


def _consumer_span(route: Route, scope: Scope) -> Span | None:
    found: dict[bytes, bytes] = {}
    for name, value in scope["headers"]:
        found[name.lower()] = value
    message_id = found.get(b"iron-message-id") or found.get(b"iron-subscriber-message-id") or b""
    subscriber = found.get(b"iron-subscriber-name", b"").decode("latin-1") or route.subscriber
    attributes = _push_attributes(route, message_id.decode("latin-1"), subscriber)
    attributes["messaging.operation.type"] = "process"
    attributes["messaging.operation.name"] = "process"
    declared = found.get(b"content-length", b"")
    if declared.isdigit():
        attributes["messaging.message.body.size"] = int(declared)
    carrier = {n.decode("latin-1"): found[n].decode("latin-1") for n in _CARRIED if n in found}
    creation = _tracing.extract(carrier) if carrier else None
    ambient = _tracing.ambient()
    if creation is None:  # no context from the producer: part of whatever runs around us
        return _tracing.start(f"process {route.queue}", _tracing.CONSUMER, attributes)
    # The producer's creation context as parent (one trace from post to ack, as the messaging
    # conventions allow for single messages), linked too; and a link to the ambient span.
    links = [creation] if ambient is None else [creation, ambient]
    return _tracing.start(
        f"process {route.queue}",
        _tracing.CONSUMER,
        attributes,
        parent=_tracing.parent_of(creation),
        links=links,
    )


def _push_attributes(route: Route, message_id: str, subscriber: str | None) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "messaging.system": _tracing.SYSTEM,
        "messaging.destination.name": route.queue,
        "messaging.consumer.group.name": subscriber or route.subscriber,
        "messaging.destination.subscription.name": subscriber or route.subscriber,
    }
    if message_id:
        attributes["messaging.message.id"] = message_id
    return attributes


def _name_of(fn: object) -> str:
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None)
    if name is None:
        inner = getattr(fn, "func", None)  # functools.partial
        name = getattr(inner, "__qualname__", None) or type(fn).__name__
    return str(name)


def _has_error(span: Span) -> bool:
    attributes = getattr(span, "attributes", None)  # the SDK's spans expose them
    return bool(attributes and "error.type" in attributes)
