"""What happens to one push, step by step (the router's hot path).

verify the push secret (before the body is read) → check ``Content-Length`` → parse the
``Iron-*`` headers → read the body under the limit → parse JSON (JSON routes) → claim the
message in the store → decode the body into the route's model (``model=`` routes; a body that
does not fit is answered by the route's ``on_invalid`` instead of calling the handler) → call
the handler → record its outcome in the store → answer by :mod:`._answers`; for
``Defer(job)``, start the job, whose success is recorded and then acknowledged through the
outbox.

Plain ASGI on purpose: Starlette's Request/Router layers would cost more than all of this::

    pipeline = PushPipeline(shared)               # the router's settings, store, counters...
    await pipeline(route, scope, receive, send)
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import logging
import time
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qsl

import anyio

from .._errors import InvalidPayload, StoreUnavailable, ValidationError
from .._protocol import (
    HEADER_MESSAGE_ID,
    HEADER_RESERVATION_ID,
    HEADER_SUBSCRIBER_MESSAGE_ID,
    HEADER_SUBSCRIBER_MESSAGE_URL,
    HEADER_SUBSCRIBER_NAME,
    Delivery,
    delivery_from_values,
)
from .._signing import dump_ack_token, verify_push_secret
from .._tracing import tracer
from ._answers import ANSWERS, Answer, Situation, ackable, json_body, reply, situation_of
from ._asgi import Disconnected, Receive, Scope, Send, TooLarge, loads_json, read_body
from ._health import RefusalWindow
from ._metrics import Counters
from ._observe import PushObserver, current_push
from ._observe import failed as observe_failure
from ._observe import job as observe_job
from ._outcomes import _UNSET as _UNPARSED
from ._outcomes import Ack, Defer, Drop, PushHeaders, PushMessage, Retry
from ._push import ClaimedPush as Push
from ._routes import Route, is_async
from ._runtime import Background, Runtime, Shared
from ._settings import RouterSettings
from ._timed_store import timed_store
from ._timings import Timings
from .stores._base import Store

logger = logging.getLogger("ironpush.receiver")

#: Longest a deferred push waits for the outbox to catch up (far inside IronMQ's push timeout).
_BACKLOG_WAIT = 1.0

# The Iron-* header names, lower-cased, as the header pass looks them up.
_MESSAGE_ID, _RESERVATION_ID, _SUBSCRIBER_NAME, _MESSAGE_URL, _SUBSCRIBER_MESSAGE_ID = (
    name.lower().encode("latin-1")
    for name in (
        HEADER_MESSAGE_ID,
        HEADER_RESERVATION_ID,
        HEADER_SUBSCRIBER_NAME,
        HEADER_SUBSCRIBER_MESSAGE_URL,
        HEADER_SUBSCRIBER_MESSAGE_ID,
    )
)


class PushPipeline:
    """Receives the pushes of the router's routes and answers each by the contract."""

    def __init__(self, shared: Shared) -> None:
        # Copied to attributes: each push reads them, one lookup each.
        self.settings: RouterSettings = shared.settings
        self.counters: Counters = shared.counters
        # The latency histograms (None with PushRouter(metrics=False)); the store's operations
        # are timed into them through the wrapper.
        self.timings: Timings | None = shared.counters.timings
        self.store: Store = timed_store(shared.store, self.timings)
        self.background: Background = shared.background
        self.refusals: RefusalWindow = shared.refusals
        self._secret_header = shared.settings.secret_header.lower().encode("latin-1")
        self._soft_backlog = max(1, shared.settings.limits.max_unsent_acks // 10)
        self.observer = PushObserver(tracing=shared.settings.tracing)
        self._observing = self.observer.tracing  # tracing on and ironpush[otel] importable

    # --- before the claim: the request ----------------------------------------------------

    async def __call__(self, route: Route, scope: Scope, receive: Receive, send: Send) -> None:
        if self._observing and tracer() is not None and current_push() is None:
            # An OpenTelemetry SDK is configured: run this push again inside its observation
            # (_observe.py). The runtime starts first, so its tasks are not part of the trace.
            self.background.current()
            return await self.observer.observe(self, route, scope, receive, send)
        started = time.perf_counter()
        self.counters.totals["received"] += 1
        settings = self.settings
        body_limit = settings.limits.body_limit
        raw_headers: list[tuple[bytes, bytes]] = scope["headers"]
        if type(raw_headers) is not list:  # ASGI allows any iterable; it is read twice here
            raw_headers = list(raw_headers)
        # One C-level pass: servers send lower-case names (uvicorn, hypercorn, httpx's
        # ASGITransport); a repeated header keeps its last value, like a Python loop would.
        found: dict[bytes, bytes] = dict(raw_headers)
        if not b"".join(found).islower():  # some upper-case name: match case-insensitively
            found = {name.lower(): value for name, value in raw_headers}
        presented = found.get(self._secret_header)
        declared = found.get(b"content-length")
        if settings.verify:
            presented = presented or self._query_secret(scope)
            if not presented or not verify_push_secret(presented, route.secrets):
                situation: Situation = "secret_wrong" if presented else "secret_missing"
                return await self._answer(send, route, None, situation, started)
        if declared is not None and declared.isdigit() and int(declared) > body_limit:
            return await self._answer(send, route, None, "too_large", started)
        try:
            delivery = delivery_from_values(
                found.get(_MESSAGE_ID, b"").decode("latin-1"),
                found.get(_RESERVATION_ID, b"").decode("latin-1"),
                found.get(_SUBSCRIBER_NAME, b"").decode("latin-1"),
                found.get(_MESSAGE_URL, b"").decode("latin-1"),
                found.get(_SUBSCRIBER_MESSAGE_ID, b"").decode("latin-1"),
            )
        except ValidationError as exc:
            return await self._answer(send, route, None, "bad_request", started, str(exc))
        if delivery.subscriber_name is None:  # legacy pushes do not name the subscriber
            delivery = replace(delivery, subscriber_name=route.subscriber)
        message = await receive()
        if message["type"] == "http.request" and not message.get("more_body", False):
            body: bytes = message.get("body", b"")  # the usual push: the body in one message
            too_large = len(body) > body_limit
        else:
            try:
                body = await read_body(receive, body_limit, first=message)
            except Disconnected:
                return None
            except TooLarge:
                too_large = True
            else:
                too_large = False
        if too_large:
            return await self._answer(send, route, delivery, "too_large", started)
        parsed: Any = _UNPARSED
        if route.json and route.decode is None:  # a model's decoder parses the JSON itself
            try:
                parsed = loads_json(body)
            except (ValueError, RecursionError):  # RecursionError: e.g. b"[" * 100_000
                why = "body is not valid JSON"
                return await self._answer(send, route, delivery, "bad_request", started, why)
        headers = PushHeaders(raw_headers, hidden=self._secret_header)
        await self._claimed(route, delivery, body, parsed, headers, send, started)
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

    # --- the claim and the handler ----------------------------------------------------------

    async def _claimed(
        self,
        route: Route,
        delivery: Delivery,
        body: bytes,
        parsed: Any,
        headers: PushHeaders,
        send: Send,
        started: float,
    ) -> None:
        settings = self.settings
        runtime = self.background.current()
        key = (delivery.message_id, delivery.subscriber_name or route.subscriber)
        if runtime.completions.holds(key, delivery):
            # Its job finished here and the store has not recorded that yet: still ours.
            return await self._answer(send, route, delivery, "in_progress", started)
        try:
            claim = await self.store.claim(
                key, delivery, lease=settings.leases.claim, ttl=settings.leases.dedupe_ttl
            )
        except Exception as exc:  # e.g. SQLite busy past its timeout: IronMQ retries later
            return await self._store_failed(send, route, delivery, started, exc)
        if claim.status != "new":
            # busy: a handler or job holds the message and will ack the delivery just recorded.
            situation: Situation = "duplicate" if claim.status == "done" else "in_progress"
            return await self._answer(send, route, delivery, situation, started)
        claim_id = claim.claim_id or ""
        tokens = (
            functools.partial(dump_ack_token, route.queue, delivery, settings.keys)
            if settings.keys
            else None
        )
        payload: Any = _UNPARSED
        invalid: InvalidPayload | None = None
        if route.decode is not None:
            try:
                payload = route.decode(body)
            except InvalidPayload as exc:
                invalid = exc
        msg = PushMessage(
            body, headers, route.queue, delivery, claim.attempt, parsed, tokens, _payload=payload
        )
        if (observation := current_push()) is not None:
            observation.claimed(msg)
        push = Push(route, delivery, key, claim_id, started, claim.attempt)
        active = runtime.active
        active.add(claim_id)
        keep_active = False
        try:
            if invalid is not None:
                result: object = invalid
            elif (timings := self.timings) is None:
                result = await self._call(route, msg)
            else:
                called = time.perf_counter()
                result = await self._call(route, msg)
                timings.handled(route, result, time.perf_counter() - called)
            if result is None:  # the usual outcome: done
                await self._settle(push, "acked", runtime, send, None, msg)
            elif isinstance(result, Defer):
                keep_active = await self._defer(push, result, runtime, send)
            elif isinstance(result, InvalidPayload):
                await self._invalid(push, result, runtime, send, msg)
            else:
                await self._settle(push, situation_of(result), runtime, send, result, msg)
        finally:
            if not keep_active:
                active.discard(claim_id)
        return None

    async def _call(self, route: Route, msg: PushMessage) -> object:
        """The handler's outcome, or the exception it raised (logged here)."""
        try:
            if route.is_async:
                result = await route.handler(msg)  # type: ignore[misc]
            else:
                result = await anyio.to_thread.run_sync(route.handler, msg)
                if inspect.isawaitable(result):
                    result = await result
        except InvalidPayload as exc:  # msg.parse(Model) refused the body: see _invalid
            return exc
        except Exception as exc:
            logger.exception("handler %s failed for message %s", route.path, msg.id)
            observe_failure(exc)
            return exc
        if result is None or isinstance(result, Ack | Defer | Retry | Drop):
            if isinstance(result, Retry):
                logger.info(
                    "handler %s asked to retry message %s: %s", route.path, msg.id, result.reason
                )
            return result
        logger.error(
            "handler %s returned %s; return None, Ack(), Defer(...), Retry() or Drop(...)",
            route.path,
            type(result).__name__,
        )
        return TypeError("bad handler result")

    # --- after the handler: record, answer ----------------------------------------------------

    async def _invalid(
        self, push: Push, exc: InvalidPayload, runtime: Runtime, send: Send, msg: PushMessage
    ) -> None:
        """A body that does not fit the route's model: ``on_invalid`` says drop (200, the
        error in the dead-letter report), reject (400) or retry (503), the error in the body."""
        reason = f"invalid payload: {exc}"
        how = push.route.on_invalid
        if how == "drop":
            await self._settle(push, "dropped", runtime, send, Drop(reason), msg)
        else:
            situation: Situation = "invalid" if how == "reject" else "retry"
            await self._settle(push, situation, runtime, send, None, msg, why=reason)

    async def _settle(
        self,
        push: Push,
        situation: Situation,
        runtime: Runtime,
        send: Send,
        result: object,
        msg: PushMessage | None = None,
        why: str | None = None,
    ) -> None:
        """Apply the situation's store action (first: a completion is recorded before anything
        else can delay it), then what follows from it, then answer."""
        try:
            newest = await self._store_step(push, ANSWERS[situation])
            if newest is not None and newest is not push.delivery and newest != push.delivery:
                # A redelivery arrived (and got 202) while the handler ran: IronMQ now waits for
                # an ack of that newest reservation, not for this response.
                logger.info(
                    "message %s was redelivered while handled: acking the newest", push.key[0]
                )
                await runtime.outbox.queue_ack(push.route.queue, newest)
            if isinstance(result, Drop) and msg is not None:
                await self._dead_letter(push, result, runtime, msg)
        except Exception as exc:
            return await self._store_failed(send, push.route, push.delivery, push.started, exc)
        await self._answer(send, push.route, push.delivery, situation, push.started, why)
        return None

    async def _store_step(self, push: Push, answer: Answer) -> Delivery | None:
        """Do ``answer.store``; the newest delivery recorded when it completes the message."""
        action, store, settings = answer.store, self.store, self.settings
        if action == "acked" or action == "dropped":
            return await store.complete(
                push.key, outcome=action, ttl=settings.leases.dedupe_ttl, delivery=push.delivery
            )
        if action == "release":
            await store.release(push.key, push.claim_id)
        elif action == "hold":
            await store.hold(push.key, push.claim_id, state="deferred", lease=settings.leases.claim)
        elif action == "hand_off":
            lease = settings.leases.external
            await store.hold(push.key, push.claim_id, state="external", lease=lease)
        return None

    async def _dead_letter(
        self, push: Push, drop: Drop, runtime: Runtime, msg: PushMessage
    ) -> None:
        route = push.route
        logger.warning("message %s on %s dropped: %s", msg.id, route.queue, drop.reason)
        dlq = route.dead_letter_queue or self.settings.dead_letter_queue
        if dlq:
            report = {
                "source_msg_id": msg.id,
                "queue": route.queue,
                "subscriber_name": msg.subscriber_name,
                "reason": drop.reason,
                "body": msg.text,
            }
            await runtime.outbox.put_post(dlq, json.dumps(report))

    async def _defer(self, push: Push, defer: Defer, runtime: Runtime, send: Send) -> bool:
        """Hold the claim, answer 202 and start the job; True when a job keeps the claim."""
        if not ackable(push.delivery):
            logger.error("cannot defer message %s: the push has no reservation to ack", push.key[0])
            await self._settle(push, "unackable", runtime, send, defer)
            return False
        if defer.job is not None:
            # IronMQ confirming acks slower than jobs finish: answer this push a little later
            # (bounded) so the pusher slows to the ack rate before the backlog's hard bound.
            await runtime.outbox.wait_below(self._soft_backlog, timeout=_BACKLOG_WAIT)
        if not runtime.runner.try_reserve():
            await self._settle(push, "busy", runtime, send, defer)
            return False
        situation = situation_of(defer)
        try:
            await self._store_step(push, ANSWERS[situation])
        except Exception as exc:
            runtime.runner.unreserve()
            await self._store_failed(send, push.route, push.delivery, push.started, exc)
            return False
        try:
            await self._answer(send, push.route, push.delivery, situation, push.started)
        finally:
            if defer.job is None:
                runtime.runner.unreserve()
            else:
                # The job's task keeps only the Push and the Defer: not the message (body,
                # parsed JSON, headers) unless the job was given it.
                running = self._run_job(push, defer, runtime)
                runtime.runner.start(observe_job(running, push, defer.job))
        return defer.job is not None

    async def _run_job(self, push: Push, defer: Defer, runtime: Runtime) -> None:
        job = defer.job
        if job is None:  # pragma: no cover - _defer starts jobs only
            return
        try:
            try:
                if is_async(job):
                    await job(*defer.args, **defer.kwargs)
                else:
                    call = functools.partial(job, *defer.args, **defer.kwargs)
                    limiter = runtime.runner.limiter
                    result = await anyio.to_thread.run_sync(
                        call, limiter=limiter, abandon_on_cancel=True
                    )
                    if inspect.isawaitable(result):
                        await result
            except asyncio.CancelledError:
                # Shutdown: not done, so let the next push (here or on another worker) run it.
                with anyio.CancelScope(shield=True):
                    await self._release_quietly(push)
                raise
            except Exception as exc:
                self.counters.totals["jobs_failed"] += 1
                observe_failure(exc)
                logger.exception(
                    "deferred job for message %s on %s failed; IronMQ will push again",
                    push.key[0],
                    push.route.queue,
                )
                await self._release_quietly(push)
                return
            await self._job_done(push, runtime)
        finally:
            runtime.active.discard(push.claim_id)
            runtime.runner.release()

    async def _job_done(self, push: Push, runtime: Runtime) -> None:
        try:
            # Recorded first, then acked; a store that does not answer gets the completion
            # retried until it records it (runtime.completions), never forgotten.
            await runtime.job_done(push.route.queue, push.key, push.delivery, push.claim_id)
        except Exception:
            logger.exception("could not record the deferred job of message %s", push.key[0])

    async def _release_quietly(self, push: Push) -> None:
        try:
            await self.store.release(push.key, push.claim_id)
        except Exception:  # the lease runs out instead
            logger.exception("could not release the claim of message %s", push.key[0])

    # --- answers ----------------------------------------------------------------------------

    async def _store_failed(
        self, send: Send, route: Route, delivery: Delivery, started: float, exc: Exception
    ) -> None:
        if isinstance(exc, StoreUnavailable):
            logger.warning("store unavailable for message %s: %s", delivery.message_id, exc)
        else:
            logger.exception("store failed for message %s", delivery.message_id)
        await self._answer(send, route, delivery, "store_unavailable", started)

    async def _answer(
        self,
        send: Send,
        route: Route,
        delivery: Delivery | None,
        situation: Situation,
        started: float,
        why: str | None = None,
    ) -> None:
        """Count, log one line for the delivery, and send the situation's answer."""
        answer = ANSWERS[situation]
        counters = self.counters
        if (observation := current_push()) is not None:
            observation.answered(answer.outcome or situation, answer.status)
        if answer.counter is not None:
            counters.totals[answer.counter] += 1
        outcome = answer.outcome or situation
        counters.outcome(route.queue, route.subscriber, outcome)
        if answer.refusal is not None:
            self.refusals.record(started, answer.refusal)
        level = logging.WARNING if 400 <= answer.status < 500 else logging.INFO
        if logger.isEnabledFor(level):
            _log_delivery(level, route, delivery, outcome, answer.status, started, why)
        await reply(send, situation, None if why is None else json_body(error=why))


def _log_delivery(
    level: int,
    route: Route,
    delivery: Delivery | None,
    outcome: str,
    status: int,
    started: float,
    why: str | None,
) -> None:
    message_id = delivery.message_id if delivery else "-"
    ms = (time.perf_counter() - started) * 1000
    logger.log(
        level,
        "push %s queue=%s subscriber=%s outcome=%s status=%d duration_ms=%.1f%s",
        message_id,
        route.queue,
        route.subscriber,
        outcome,
        status,
        ms,
        f" ({why})" if why else "",
        extra={
            "message_id": message_id,
            "queue": route.queue,
            "subscriber": route.subscriber,
            "outcome": outcome,
            "status": status,
            "duration_ms": round(ms, 3),
        },
    )
