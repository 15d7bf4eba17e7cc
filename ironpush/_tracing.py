"""OpenTelemetry tracing, native and optional (``pip install 'ironpush[otel]'``).

ironpush depends on ``opentelemetry-api`` only, as OpenTelemetry asks of libraries: its tracer
comes from the global provider, so spans are recorded only when the application configured an
SDK (``trace.set_tracer_provider(TracerProvider(...))``). Without the API nothing is imported
and every hook is a constant check; with the API but no SDK, :func:`tracer` is one module
attribute read per push and no span object is ever made, not even the API's no-op one (a
push is ~13 µs; ``benchmarks/README.md``, ``bench_tracing.py``: +0.9 % instructions).

Two kinds of hooks use this module:

- the entry points of a trace (the client's ``post()``, the receiver's push, a deferred job, a
  Celery task, an ack) ask :func:`tracer` and make their span the current one with
  :func:`activate`, which also marks it as ironpush's (:data:`current`);
- the calls ironpush makes with its own clients, which no auto-instrumentation sees (the
  RESP2 Redis client, the PostgreSQL connections, the SQLite writer, the lean HTTP/1.1
  client), emit a CLIENT span only *inside* such an ironpush span: their one check on the hot
  path is ``current() is None`` (a context variable read). So an idle outbox polling its store
  or the lease heartbeat makes no trace of its own, and ``PushRouter(tracing=False)`` turns
  their spans off too.

Nothing secret goes into a span: no URL (a legacy ack URL or a Redis URL may carry a token or
a password), no header value, no ack token, no push secret, no key; only names, ids, sizes,
status codes and ``server.address``/``server.port``::

    span = start("send orders", PRODUCER, {"messaging.system": "ironmq"})
    with activate(span):
        ...                                   # store and HTTP calls here get child spans
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, MutableMapping
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from ._version import __version__

try:
    from opentelemetry import context as _context
    from opentelemetry import propagate as _propagate
    from opentelemetry import trace as _trace
    from opentelemetry.trace import Link, NoOpTracerProvider, ProxyTracerProvider, SpanKind
    from opentelemetry.trace.status import Status, StatusCode

    AVAILABLE = True
except ImportError:  # the API is an optional extra: every hook sees tracer() is None
    AVAILABLE = False

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.trace import Span, SpanContext, Tracer

#: The tracer's (instrumentation scope's) name.
SCOPE = "ironpush"
#: ``messaging.system`` of every messaging span.
SYSTEM = "ironmq"

# The ironpush span the running code is inside (a push, a job, an ack...), or None. Store and
# HTTP hooks read it first: None (no SDK, tracing off, outside a push) means "no span".
_CURRENT: ContextVar[Span | None] = ContextVar("ironpush_span", default=None)
#: The ironpush span the running code is inside, or None (one context-variable read).
current = _CURRENT.get

_UNSET: Any = object()
_seen_provider: Any = _UNSET  # the global provider tracer() last resolved...
_seen_tracer: Tracer | None = None  # ...and ironpush's tracer from it (None: no SDK)


def tracer() -> Tracer | None:
    """ironpush's tracer when the application configured an SDK, else None (cheap: one global
    read while the global provider stays the same)."""
    if not AVAILABLE:
        return None
    try:  # getattr(_trace, "_TRACER_PROVIDER", _UNSET) without the builtin's call (per push)
        provider = _trace._TRACER_PROVIDER
    except AttributeError:
        provider = _UNSET
    if provider is _seen_provider and provider is not _UNSET:
        return _seen_tracer
    return _resolve(provider)


def _resolve(provider: Any) -> Tracer | None:
    global _seen_provider, _seen_tracer
    if provider is _UNSET:  # the API keeps its provider elsewhere now: ask it (slower, right)
        return _tracer_of(_trace.get_tracer_provider())
    if provider is None:
        # Not set in code; get_tracer_provider() loads OTEL_PYTHON_TRACER_PROVIDER if named.
        _trace.get_tracer_provider()
        provider = getattr(_trace, "_TRACER_PROVIDER", None)
    _seen_tracer = _tracer_of(provider)
    _seen_provider = getattr(_trace, "_TRACER_PROVIDER", None)
    return _seen_tracer


def _tracer_of(provider: Any) -> Tracer | None:
    if provider is None or isinstance(provider, NoOpTracerProvider | ProxyTracerProvider):
        return None
    found: Tracer = provider.get_tracer(SCOPE, __version__)
    return found


# --- spans --------------------------------------------------------------------------------


def start(
    name: str,
    kind: SpanKind,
    attributes: Mapping[str, Any],
    *,
    parent: Context | None = None,
    links: list[SpanContext] | None = None,
) -> Span | None:
    """A started span (not current yet), or None without an SDK."""
    found = tracer()
    if found is None:
        return None
    return found.start_span(
        name,
        context=parent,
        kind=kind,
        attributes=attributes,
        links=[Link(c) for c in links] if links else None,
    )


@contextlib.contextmanager
def activate(span: Span | None, *, end: bool = True) -> Iterator[Span | None]:
    """Make ``span`` the current span (OpenTelemetry's and ironpush's) inside the block; an
    exception leaving the block is recorded on it (``error.type``, status ERROR); the span is
    ended after the block unless ``end=False``. ``None`` does nothing."""
    if span is None:
        yield None
        return
    token = _context.attach(_trace.set_span_in_context(span))
    mine = _CURRENT.set(span)
    try:
        with recorded(span, end=end):
            yield span
    finally:
        _CURRENT.reset(mine)
        _context.detach(token)


@contextlib.contextmanager
def recorded(span: Span, *, end: bool = True) -> Iterator[Span]:
    """``span`` around a block: an exception leaving the block is recorded on it (:func:`fail`)
    and raised again; the span is ended after the block unless ``end=False``."""
    try:
        yield span
    except BaseException as exc:
        fail(span, exc)
        raise
    finally:
        if end:
            span.end()


def fail(span: Span, exc: BaseException | str) -> None:
    """Mark ``span`` failed: ``error.type`` (the exception's class, or the given text) and
    status ERROR; the exception's message is not recorded (it may quote a secret)."""
    kind = exc if isinstance(exc, str) else type(exc).__qualname__
    span.set_attribute("error.type", kind)
    errored(span)


def errored(span: Span) -> None:
    """Set ``span``'s status to ERROR (its ``error.type`` says why)."""
    span.set_status(Status(StatusCode.ERROR))


@contextlib.contextmanager
def client_span(name: str, attributes: Mapping[str, Any]) -> Iterator[Span | None]:
    """A CLIENT span around one call ironpush makes with its own clients (a store command, an
    HTTP request), child of the current span; callers enter it only when :func:`current` is
    not None. Not made current: nothing runs inside it but the call."""
    found = tracer()
    if found is None:
        yield None
        return
    with recorded(found.start_span(name, kind=SpanKind.CLIENT, attributes=attributes)) as span:
        yield span


def span_context() -> SpanContext | None:
    """The context of the current ironpush span (to link or parent later work), or None."""
    span = _CURRENT.get()
    return span.get_span_context() if span is not None else None


def parent_of(span_context: SpanContext | None) -> Context | None:
    """A context whose parent is ``span_context`` (for a span that starts later elsewhere)."""
    if span_context is None or not AVAILABLE:
        return None
    return _trace.set_span_in_context(_trace.NonRecordingSpan(span_context))


def ambient() -> SpanContext | None:
    """The current OpenTelemetry span's context when it is valid (an HTTP server span around a
    push, the caller's span around a post), else None."""
    if not AVAILABLE:
        return None
    found = _trace.get_current_span().get_span_context()
    return found if found.is_valid else None


def recording() -> bool:
    """True inside a recording span (of anyone): ``post()`` traces only then."""
    return AVAILABLE and _trace.get_current_span().is_recording()


# --- propagation --------------------------------------------------------------------------


def inject(carrier: MutableMapping[str, str], span: Span) -> None:
    """Write ``span``'s context into ``carrier`` with the global propagator (W3C
    ``traceparent``/``tracestate`` by default)."""
    _propagate.inject(carrier, context=_trace.set_span_in_context(span))


def extract(headers: Mapping[str, str]) -> SpanContext | None:
    """The creation context a producer put in ``headers`` (lower-case names), if valid."""
    found = _trace.get_current_span(_propagate.extract(headers)).get_span_context()
    return found if found.is_valid else None


def current_carrier() -> dict[str, str]:
    """The current context as propagation headers (empty outside a span)."""
    carrier: dict[str, str] = {}
    if AVAILABLE and ambient() is not None:
        _propagate.inject(carrier)
    return carrier


def context_from(carrier: Mapping[str, Any]) -> Context | None:
    """A parent context read from ``carrier`` (a Celery task's headers), or None."""
    if not AVAILABLE:
        return None
    headers = {k: v for k, v in carrier.items() if isinstance(k, str) and isinstance(v, str)}
    return _propagate.extract(headers) if headers else None


#: The span kinds, importable without the API (None then: no span is made anyway).
PRODUCER: Any = SpanKind.PRODUCER if AVAILABLE else None
CONSUMER: Any = SpanKind.CONSUMER if AVAILABLE else None
CLIENT: Any = SpanKind.CLIENT if AVAILABLE else None
INTERNAL: Any = SpanKind.INTERNAL if AVAILABLE else None
