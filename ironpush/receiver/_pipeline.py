"""What happens to one push, step by step (the router's hot path).

verify the push secret (before the body is read) → check ``Content-Length`` → parse the
``Iron-*`` headers → read the body under the limit → parse JSON (JSON routes) → claim the
message in the store → decode the body into the route's model (``model=`` routes; a body that
does not fit is answered by the route's ``on_invalid`` instead of calling the handler) → call
the handler → record its outcome in the store (:mod:`._settle`) → answer (:mod:`._responder`,
by the table of :mod:`._answers`); for ``Defer``, :mod:`._deferrals` keeps the claim (or
hands it off), answers 202 and runs the job, whose success is recorded and then acknowledged
through the outbox.

Plain ASGI on purpose: Starlette's Request/Router layers would cost more than all of this. The
usual push (a new claim, an ``async def`` handler returning ``None`` or ``Ack()``, a route
without ``model=``) is answered inline in :meth:`PushPipeline.__call__`: one coroutine, the
store's synchronous twins when it has them (the memory store), the four latency observations
in one call. Its effects and their order are the general path's (``Settler.settle`` of
``"acked"``, then ``Responder.answer``); ``benchmarks/bench_quick_path.py`` measures it::

    pipeline = PushPipeline(shared)               # the router's settings, store, counters...
    await pipeline(route, scope, receive, send)
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from time import perf_counter
from typing import Any, Literal
from urllib.parse import parse_qsl

import anyio

from .._errors import InvalidPayload, ValidationError
from .._json import loads as loads_json
from .._protocol import Delivery, delivery_from_raw
from .._signing import dump_ack_token, verify_push_secret
from .._tracing import tracer
from ._answers import ANSWERS, Situation, situation_of
from ._asgi import Disconnected, Receive, Scope, Send, TooLarge, read_body
from ._deferrals import Deferrals
from ._observe import PushObservation, PushObserver, current_push
from ._observe import failed as observe_failure
from ._outcomes import _UNSET as _UNPARSED
from ._outcomes import Ack, Defer, Drop, PushHeaders, PushMessage, Retry
from ._push import ClaimedPush as Push
from ._push_log import handler_failed, log_acked, msg_fields
from ._responder import Responder
from ._routes import Route
from ._runtime import Runtime, Shared
from ._settle import Settler
from ._timed_store import timed_store
from ._timings import AckedSeries, handler_outcome
from .stores._base import Key, Outcome, Store, sync_twin

logger = logging.getLogger("ironpush.receiver")

#: A store's synchronous twins of claim and complete (see :func:`sync_twins`).
ClaimNow = Callable[[Key, Delivery, float, float], tuple[Literal["new", "done", "busy"], str, int]]
CompleteNow = Callable[[Key, Outcome, float, Delivery], Delivery]

_ACKED_HEADERS = ANSWERS["acked"].headers
_INFO = logging.INFO


class PushPipeline:
    """Receives the pushes of the router's routes and answers each by the contract."""

    def __init__(self, shared: Shared) -> None:
        settings = shared.settings
        self.settings = settings
        self.counters = shared.counters
        self.timings = shared.counters.timings  # None with PushRouter(metrics=False)
        self.store: Store = timed_store(shared.store, self.timings)
        self.background = shared.background
        self.responder = Responder(shared)
        self.settler = Settler(shared, self.store, self.responder)
        self.deferrals = Deferrals(shared, self.store, self.settler)
        self.observer = PushObserver(tracing=settings.tracing)
        self._observing = self.observer.tracing  # tracing on and ironpush[otel] importable
        # What each push reads, one attribute each.
        self._totals = shared.counters.totals
        self._by_route = shared.counters.by_route
        self._refusals = shared.refusals
        self._verify = settings.verify
        self._secret_header = settings.secret_header.lower().encode("latin-1")
        self._body_limit = settings.limits.body_limit
        self._limit_digits = len(str(self._body_limit))
        self._lower_names = b""  # the header names last found all lower-case, joined
        self._lease = settings.leases.claim
        self._ttl = settings.leases.dedupe_ttl
        # A message's ack token is signed on first use only (msg.ack_token).
        self._signer = (
            functools.partial(dump_ack_token, keys=settings.keys) if settings.keys else None
        )
        # Every push claims (and the usual one completes) on the store itself, timed here:
        # the timed wrapper's extra coroutine would cost a push more than the observation.
        self._store = shared.store
        self._claim_now, self._complete_now = sync_twins(shared.store)
        self._claims = self._completes = None
        if self.timings is not None:
            self._claims = self.timings.store.labels(shared.store.kind, "claim")
            self._completes = self.timings.store.labels(shared.store.kind, "complete")
        self._acked_series: dict[str, AckedSeries] = {}  # by route path

    # --- the request, the claim, the quick path ------------------------------------------

    async def __call__(self, route: Route, scope: Scope, receive: Receive, send: Send) -> None:
        observation = current_push()
        if observation is None and self._observing and tracer() is not None:
            # An OpenTelemetry SDK is configured: run this push again inside its observation
            # (_observe.py). The runtime starts first, so its tasks are not part of the trace.
            self.background.current()
            return await self.observer.observe(self, route, scope, receive, send)
        started = perf_counter()
        self._totals["received"] += 1
        answer = self.responder.answer
        raw_headers: list[tuple[bytes, bytes]] = scope["headers"]
        if type(raw_headers) is not list:  # ASGI allows any iterable; it is read twice here
            raw_headers = list(raw_headers)
        # One C-level pass: servers send lower-case names (uvicorn, hypercorn, httpx's
        # ASGITransport); a repeated header keeps its last value, like a Python loop would.
        found: dict[bytes, bytes] = dict(raw_headers)
        names = b"".join(found)
        # A sender's pushes carry the same names: the last all-lower-case ones seen are
        # compared (a memcmp) instead of checked byte by byte again.
        if names != self._lower_names:
            if names.islower():
                self._lower_names = names
            else:  # some upper-case name: match case-insensitively
                found = {name.lower(): value for name, value in raw_headers}
        if self._verify:
            presented = found.get(self._secret_header) or self._query_secret(scope)
            if not presented or not verify_push_secret(presented, route.secrets):
                situation: Situation = "secret_wrong" if presented else "secret_missing"
                return await answer(send, route, None, situation, started)
        declared = found.get(b"content-length")
        limit = self._body_limit
        # (A value with fewer digits than the limit is below it: no int() for the usual push.)
        if (
            declared is not None
            and len(declared) >= self._limit_digits
            and declared.isdigit()
            and int(declared) > limit
        ):
            return await answer(send, route, None, "too_large", started)
        try:  # a legacy push names no subscriber: it is the route's
            delivery = delivery_from_raw(found, route.subscriber)
        except ValidationError as exc:
            return await answer(send, route, None, "bad_request", started, str(exc))
        message = await receive()
        if message["type"] == "http.request" and not message.get("more_body", False):
            body: bytes = message.get("body", b"")  # the usual push: the body in one message
            if len(body) > limit:
                return await answer(send, route, delivery, "too_large", started)
        else:
            try:
                body = await read_body(receive, limit, first=message)
            except Disconnected:
                return None
            except TooLarge:
                return await answer(send, route, delivery, "too_large", started)
        parsed: Any = _UNPARSED
        if route.json and route.decode is None:  # a model's decoder parses the JSON itself
            try:
                parsed = loads_json(body)
            except (ValueError, RecursionError):  # RecursionError: e.g. b"[" * 100_000
                why = "body is not valid JSON"
                return await answer(send, route, delivery, "bad_request", started, why)
        runtime = self.background.current()
        key: Key = (delivery.message_id, delivery.subscriber_name or route.subscriber)
        completions = runtime.completions
        if completions.pending and completions.holds(key, delivery):
            # Its job finished here and the store has not recorded that yet: still ours.
            return await answer(send, route, delivery, "in_progress", started)
        claims = self._claims
        claiming = 0.0 if claims is None else perf_counter()
        try:
            if (claim_now := self._claim_now) is not None:
                status, claim_id, attempt = claim_now(key, delivery, self._lease, self._ttl)
            else:
                claim = await self._store.claim(key, delivery, lease=self._lease, ttl=self._ttl)
                status, claim_id, attempt = claim.status, claim.claim_id or "", claim.attempt
        except Exception as exc:  # e.g. SQLite busy past its timeout: IronMQ retries later
            if claims is not None:
                claims.observe(perf_counter() - claiming)
            return await self.responder.store_failed(send, route, delivery, started, exc)
        quick = route.decode is None and route.is_async
        if claims is not None and (status != "new" or not quick):
            claims.observe(perf_counter() - claiming)
        if status != "new":
            # busy: a handler or job holds the message and will ack the delivery just recorded.
            situation = "duplicate" if status == "done" else "in_progress"
            return await answer(send, route, delivery, situation, started)
        if not quick:
            push = Push(route, delivery, key, claim_id, started, attempt)
            await self._claimed(
                push, attempt, runtime, body, parsed, raw_headers, send, observation
            )
            return None
        # The quick path: the general one's effects, inline (see the module's docs).
        headers = PushHeaders(raw_headers, self._secret_header)
        msg: PushMessage[Any] = PushMessage(
            body,
            headers,
            route.queue,
            delivery,
            attempt,
            parsed,
            None,
            None,
            _UNPARSED,
            self._signer,
        )
        if observation is not None:
            observation.claimed(msg)
        active = runtime.active
        active.add(claim_id)
        keeps = False
        try:
            calling = 0.0 if claims is None else perf_counter()
            try:
                result = await route.handler(msg)  # type: ignore[misc]
            except Exception as exc:
                result = _raised(route, msg, exc)
            else:
                if result is not None:
                    result = _checked(route, msg, result)
            completing = 0.0 if claims is None else perf_counter()
            if result is not None and not isinstance(result, Ack):
                self._timed_apart(route, claiming, calling, completing, result)
                push = Push(route, delivery, key, claim_id, started, attempt)
                keeps = await self._outcome(push, result, runtime, send, msg)
                return None
            # "acked": record the message handled first (Settler.settle), then answer.
            try:
                if (complete_now := self._complete_now) is not None:
                    newest = complete_now(key, "acked", self._ttl, delivery)
                else:
                    newest = await self._store.complete(
                        key, outcome="acked", ttl=self._ttl, delivery=delivery
                    )
                if newest is not None and newest is not delivery and newest != delivery:
                    push = Push(route, delivery, key, claim_id, started, attempt)
                    await self.settler.redelivered(push, newest, runtime)
            except Exception as exc:
                self._timed_apart(route, claiming, calling, completing, None)
                if self._completes is not None:  # timed whether it succeeds or raises
                    self._completes.observe(perf_counter() - completing)
                return await self.responder.store_failed(send, route, delivery, started, exc)
            completed = 0.0 if claims is None else perf_counter()
            # Responder.answer of "acked", inline.
            if observation is not None:
                observation.answered("acked", 200)
            self._totals["acked"] += 1
            self._by_route[(route.queue, route.subscriber, "acked")] += 1
            self._refusals.record(started, False)
            if logger.isEnabledFor(_INFO):
                now = perf_counter() if claims is None else completed
                log_acked(route, delivery, started, now, attempt)
            # A new list each time: middleware may add headers to the message in place.
            headers_out = list(_ACKED_HEADERS)
            await send({"type": "http.response.start", "status": 200, "headers": headers_out})
            await send({"type": "http.response.body", "body": b""})
            if claims is not None:
                series = self._acked_series.get(route.path) or self._series_of(route)
                series.observe(started, claiming, calling, completing, completed, perf_counter())
        finally:
            if not keeps:
                active.discard(claim_id)
        return None

    def _query_secret(self, scope: Scope) -> bytes | None:
        query: bytes = scope.get("query_string", b"")
        if not query:
            return None
        for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
            if name == self.settings.secret_param:
                # UTF-8, not latin-1: a percent-escape such as %E2%82%AC decodes to a character
                # latin-1 cannot encode, and a garbage secret must be a 403, not a crash.
                return value.encode()
        return None

    def _series_of(self, route: Route) -> AckedSeries:
        timings = self.timings
        assert timings is not None  # only called with the histograms on
        series = AckedSeries(timings, route, self._store.kind)
        self._acked_series[route.path] = series
        return series

    def _timed_apart(
        self, route: Route, claiming: float, calling: float, completing: float, result: object
    ) -> None:
        """The quick path's claim and handler observations when the push leaves it (a
        handler outcome other than "acked", or a completion that failed)."""
        timings = self.timings
        if timings is None or self._claims is None:
            return
        self._claims.observe(calling - claiming)
        outcome = "acked" if result is None else handler_outcome(result)
        timings.handler.observe((route.queue, route.subscriber, outcome), completing - calling)

    # --- the general path: models, sync handlers -------------------------------------------

    async def _claimed(
        self,
        push: Push,
        attempt: int,
        runtime: Runtime,
        body: bytes,
        parsed: Any,
        raw_headers: list[tuple[bytes, bytes]],
        send: Send,
        observation: PushObservation | None,
    ) -> None:
        route = push.route
        payload: Any = _UNPARSED
        invalid: InvalidPayload | None = None
        if route.decode is not None:
            try:
                payload = route.decode(body)
            except InvalidPayload as exc:
                invalid = exc
        headers = PushHeaders(raw_headers, self._secret_header)
        delivery, signer = push.delivery, self._signer
        msg: PushMessage[Any] = PushMessage(
            body, headers, route.queue, delivery, attempt, parsed, None, None, payload, signer
        )
        if observation is not None:
            observation.claimed(msg)
        active = runtime.active
        active.add(push.claim_id)
        keeps = False
        try:
            if invalid is not None:
                result: object = invalid
            elif (timings := self.timings) is None:
                result = await self._call(route, msg)
            else:
                called = perf_counter()
                result = await self._call(route, msg)
                seconds = perf_counter() - called
                outcome = "acked" if result is None else handler_outcome(result)
                timings.handler.observe((route.queue, route.subscriber, outcome), seconds)
            keeps = await self._outcome(push, result, runtime, send, msg)
        finally:
            if not keeps:
                active.discard(push.claim_id)

    async def _call(self, route: Route, msg: PushMessage[Any]) -> object:
        """The handler's outcome, or the exception it raised (logged here)."""
        try:
            if route.is_async:
                result = await route.handler(msg)  # type: ignore[misc]
            else:
                result = await anyio.to_thread.run_sync(route.handler, msg)
                if inspect.isawaitable(result):
                    result = await result
        except Exception as exc:
            return _raised(route, msg, exc)
        return None if result is None else _checked(route, msg, result)

    async def _outcome(
        self, push: Push, result: object, runtime: Runtime, send: Send, msg: PushMessage[Any]
    ) -> bool:
        """Settle what the handler returned; True when a deferred job keeps the claim."""
        if result is None:  # the usual outcome: done
            await self.settler.settle(push, "acked", runtime, send, None, msg)
        elif isinstance(result, Defer):
            return await self.deferrals.defer(push, result, runtime, send)
        elif isinstance(result, InvalidPayload):
            await self.settler.invalid(push, result, runtime, send, msg)
        else:
            await self.settler.settle(push, situation_of(result), runtime, send, result, msg)
        return False


def _raised(route: Route, msg: PushMessage[Any], exc: Exception) -> Exception:
    """What a handler's exception becomes: itself, logged (and to Sentry when it is in use);
    ``msg.parse(Model)``'s :class:`InvalidPayload` is answered by ``on_invalid`` instead."""
    if not isinstance(exc, InvalidPayload):
        handler_failed(route, msg, exc)
        observe_failure(exc)
    return exc


def _checked(route: Route, msg: PushMessage[Any], result: object) -> object:
    """A handler's result: an outcome (a ``Retry`` logged), or a ``TypeError`` (logged) for
    anything else."""
    if isinstance(result, Ack | Defer | Retry | Drop):
        if isinstance(result, Retry):
            logger.info(
                "handler %s asked to retry message %s: %s",
                route.path,
                msg.id,
                result.reason,
                extra=msg_fields(route, msg, outcome="retry"),
            )
        return result
    logger.error(
        "handler %s returned %s; return None, Ack(), Defer(...), Retry() or Drop(...)",
        route.path,
        type(result).__name__,
        extra=msg_fields(route, msg, outcome="error"),
    )
    return TypeError("bad handler result")


def sync_twins(store: Store) -> tuple[ClaimNow | None, CompleteNow | None]:
    """The store's synchronous ``claim_now`` and ``complete_now`` (:func:`sync_twin`)."""
    return sync_twin(store, "claim"), sync_twin(store, "complete")
