"""The per-push pipeline of :class:`~ironpush.receiver.PushRouter`.

verify the push secret (before the body is read) -> check ``Content-Length`` -> parse the
``Iron-*`` headers -> read the body under the limit -> parse JSON (JSON routes) -> claim the
message in the dedupe store -> call the handler -> turn its outcome into the status code, and
for ``Defer`` start the job whose success is acknowledged through the outbox.

This is plain ASGI code on purpose: it is the hot path, and Starlette's Request/Router layers
cost more than everything below (see ``benchmarks/bench_receiver.py``).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import anyio
from starlette.datastructures import Headers

from ..errors import ValidationError
from ..protocol import Delivery, parse_delivery
from ..signing import dump_ack_token, verify_push_secret
from .asgi import (
    STATUS,
    Disconnected,
    Receive,
    Scope,
    Send,
    TooLarge,
    json_body,
    read_body,
    respond,
)
from .deferred import Runtime, call_store, delivery_json
from .metrics import Counters
from .outcomes import _UNSET as _UNPARSED
from .outcomes import Ack, Defer, Drop, PushMessage, Retry
from .stores.legacy import Store

if TYPE_CHECKING:
    from .router import Route

__all__ = ["PushPipeline", "is_async"]

logger = logging.getLogger("ironpush.receiver")

#: Called in a worker thread with a sync handler's (or job's) result: records the message as
#: handled and returns the newest delivery, or None when the result does not finish it.
Recorder = Callable[[Any], "str | None"]


def call_then_record(call: Callable[[], Any], record: Recorder | None) -> tuple[Any, str | None]:
    """Run a sync handler or job, then record it as handled in the same worker thread.

    Going back to the event loop first and then queueing for a store thread left, under load,
    hundreds of milliseconds between a handler's side effect and the record that it happened;
    a kill -9 in that window makes the redelivery run the handler again (the fault run measured
    it). Recording here shrinks the window to one SQLite write.
    """
    result = call()
    if record is None or inspect.isawaitable(result):
        return result, None
    try:
        return result, record(result)
    except Exception:  # the store failed: the event loop side records it again, and reports
        logger.exception("recording a handled message failed; retrying from the event loop")
        return result, None


def is_async(fn: Any) -> bool:
    while isinstance(fn, functools.partial):
        fn = fn.func
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - an instance with an async __call__
    )


class PushPipeline:
    """The push-handling half of PushRouter (a mixin: the router provides the attributes)."""

    keys: tuple[str | bytes, ...]
    verify: bool
    store: Store
    dedupe: bool
    body_limit: int
    dead_letter_queue: str | None
    secret_param: str
    claim_lease: float
    external_lease: float
    dedupe_ttl: float
    counters: Counters
    _header_b: bytes

    def _runtime_now(self) -> Runtime:
        raise NotImplementedError

    async def _store(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await call_store(self.store.blocking, fn, *args, **kwargs)

    async def _push(self, route: Route, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        counters = self.counters
        counters.totals["received"] += 1
        hmap: dict[bytes, bytes] = {}
        iron: dict[str, str] = {}
        kept: list[tuple[bytes, bytes]] = []  # what the handler sees: never the push secret
        secret_header = self._header_b
        for name, value in scope["headers"]:  # one pass over the headers, on every push
            lower = name.lower()
            hmap[lower] = value
            if lower == secret_header:
                continue
            kept.append((name, value))
            if lower[:5] == b"iron-":
                iron[lower.decode("latin-1")] = value.decode("latin-1")
        if self.verify:
            presented = hmap.get(secret_header) or self._query_secret(scope)
            if not presented or not verify_push_secret(presented, route.secrets):
                status = 403 if presented else 401
                counters.totals["verification_failures"] += 1
                logger.warning(
                    "push refused on %s: %s push secret",
                    route.path,
                    "wrong" if presented else "missing",
                )
                await respond(
                    send,
                    status,
                    json_body(error="push secret wrong" if presented else "push secret missing"),
                )
                return None
        declared = hmap.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.body_limit:
            return await self._reject(send, route, None, 413, "body too large", started)
        try:
            delivery = parse_delivery(iron)
        except ValidationError as exc:
            return await self._reject(send, route, None, 400, str(exc), started)
        if delivery.subscriber_name is None:  # legacy pushes do not name the subscriber
            delivery = replace(delivery, subscriber_name=route.subscriber)
        try:
            body = await read_body(receive, self.body_limit)
        except TooLarge:
            return await self._reject(send, route, delivery, 413, "body too large", started)
        except Disconnected:
            return None
        parsed: Any = _UNPARSED
        if route.json:
            try:
                parsed = json.loads(body)
            except (ValueError, RecursionError):  # RecursionError: e.g. b"[" * 100_000
                return await self._reject(
                    send, route, delivery, 400, "body is not valid JSON", started
                )
        runtime = self._runtime_now()
        return await self._handle(
            route, delivery, body, parsed, Headers(raw=kept), runtime, send, started
        )

    def _query_secret(self, scope: Scope) -> bytes | None:
        query: bytes = scope.get("query_string", b"")
        if not query:
            return None
        for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
            if name == self.secret_param:
                # UTF-8, not latin-1: a percent-escape such as %E2%82%AC decodes to a character
                # latin-1 cannot encode, and a garbage secret must be a 403, not a crash.
                return value.encode()
        return None

    async def _reject(
        self,
        send: Send,
        route: Route,
        delivery: Delivery | None,
        status: int,
        why: str,
        started: float,
    ) -> None:
        self.counters.totals["rejected"] += 1
        logger.warning("push refused on %s: %s", route.path, why)
        self._log(route, delivery, "rejected", status, started)
        await respond(send, status, json_body(error=why))

    def _log(
        self, route: Route, delivery: Delivery | None, outcome: str, status: int, started: float
    ) -> None:
        self.counters.outcome(route.queue, route.subscriber, outcome)
        if logger.isEnabledFor(logging.INFO):
            message_id = delivery.message_id if delivery else "-"
            ms = (time.perf_counter() - started) * 1000
            logger.info(
                "push %s queue=%s subscriber=%s outcome=%s status=%d duration_ms=%.1f",
                message_id,
                route.queue,
                route.subscriber,
                outcome,
                status,
                ms,
                extra={
                    "message_id": message_id,
                    "queue": route.queue,
                    "subscriber": route.subscriber,
                    "outcome": outcome,
                    "status": status,
                    "duration_ms": round(ms, 3),
                },
            )

    async def _handle(
        self,
        route: Route,
        delivery: Delivery,
        body: bytes,
        parsed: Any,
        headers: Headers,
        runtime: Runtime,
        send: Send,
        started: float,
    ) -> None:
        key = (delivery.message_id, delivery.subscriber_name or route.subscriber)
        text = delivery_json(delivery)
        claim_id: str | None = None
        attempt = 1
        if self.dedupe:
            store = self.store
            try:
                if store.blocking:
                    claim = await self._store(
                        store.claim, key, text, lease=self.claim_lease, ttl=self.dedupe_ttl
                    )
                else:  # the memory store: no coroutine round trip on the hot path
                    claim = store.claim(key, text, lease=self.claim_lease, ttl=self.dedupe_ttl)
            except Exception:  # e.g. SQLite busy past its timeout: IronMQ retries later
                logger.exception("dedupe store failed for message %s", delivery.message_id)
                self.counters.totals["busy"] += 1
                self._log(route, delivery, "busy", 503, started)
                await respond(send, 503, STATUS["busy"])
                return
            if claim.status != "new":
                self.counters.totals["duplicates"] += 1
                # busy: a handler or job holds the message and will ack the delivery just recorded.
                status = 200 if claim.status == "done" else 202
                self._log(
                    route,
                    delivery,
                    "duplicate" if status == 200 else "in_progress",
                    status,
                    started,
                )
                await respond(send, status, STATUS["duplicate" if status == 200 else "in_progress"])
                return
            claim_id, attempt = claim.claim_id, claim.attempt
            runtime.active.add(claim_id)
        msg = PushMessage(
            body,
            headers,
            route.queue,
            delivery,
            attempt,
            parsed,
            self._token_factory(route.queue, delivery),
        )
        keep_active = False
        record = self._recorder(key, text) if claim_id is not None else None
        try:
            outcome, recorded = await self._call(route, msg, record)
            if isinstance(outcome, Defer):
                keep_active = await self._defer(
                    route, msg, outcome, key, claim_id, text, runtime, send, started
                )
            else:
                await self._finish(
                    route, msg, outcome, key, claim_id, text, runtime, send, started, recorded
                )
        finally:
            if claim_id is not None and not keep_active:
                runtime.active.discard(claim_id)

    def _token_factory(self, queue: str, delivery: Delivery) -> Callable[[], str] | None:
        if not self.keys:
            return None
        return functools.partial(dump_ack_token, queue, delivery, self.keys)

    def _recorder(self, key: tuple[str, str], text: str, *, job: bool = False) -> Recorder | None:
        """What a worker thread calls right after a sync handler or job returns (see below)."""
        if not (self.dedupe and self.store.blocking):
            return None
        store, ttl = self.store, self.dedupe_ttl

        def record(result: Any) -> str | None:
            if not job and result is not None and not isinstance(result, Ack | Drop):
                return None  # Defer, Retry, errors: not handled yet
            outcome = "dropped" if isinstance(result, Drop) else "acked"
            return store.complete(key, outcome=outcome, ttl=ttl, delivery=text)

        return record

    async def _call(
        self, route: Route, msg: PushMessage, record: Recorder | None = None
    ) -> tuple[Any, str | None]:
        """The handler's outcome, and the newest delivery when it was already recorded."""
        recorded: str | None = None
        try:
            if route.is_async:
                result = await route.handler(msg)  # type: ignore[misc]
            else:
                call = functools.partial(route.handler, msg)
                result, recorded = await anyio.to_thread.run_sync(call_then_record, call, record)
                if inspect.isawaitable(result):
                    result = await result
        except Exception as exc:
            logger.exception("handler %s failed for message %s", route.path, msg.id)
            return exc, None
        if result is None or isinstance(result, Ack | Defer | Retry | Drop):
            return result, recorded
        logger.error(
            "handler %s returned %s; return None, Ack(), Defer(...), Retry() or Drop(...)",
            route.path,
            type(result).__name__,
        )
        return TypeError("bad handler result"), None

    async def _finish(
        self,
        route: Route,
        msg: PushMessage,
        outcome: Any,
        key: tuple[str, str],
        claim_id: str | None,
        text: str,
        runtime: Runtime,
        send: Send,
        started: float,
        recorded: str | None = None,
    ) -> None:
        counters = self.counters.totals
        if isinstance(outcome, Retry | Exception):
            if claim_id is not None:  # not handled: the redelivery must run the handler again
                await self._store(self.store.release, key, claim_id)
            counters["retried"] += 1
            status = 503 if isinstance(outcome, Retry) else 500
            if isinstance(outcome, Retry):
                logger.info(
                    "handler %s asked to retry message %s: %s", route.path, msg.id, outcome.reason
                )
            self._log(route, msg.delivery, "retry" if status == 503 else "error", status, started)
            await respond(send, status, STATUS["retry" if status == 503 else "error"])
            return
        dropped = isinstance(outcome, Drop)
        if self.dedupe:
            store, done = self.store, "dropped" if dropped else "acked"
            if recorded is not None:
                newest = recorded  # recorded in the handler's own thread
            elif store.blocking:
                newest = await self._store(
                    store.complete, key, outcome=done, ttl=self.dedupe_ttl, delivery=text
                )
            else:
                newest = store.complete(key, outcome=done, ttl=self.dedupe_ttl, delivery=text)
            if newest != text:
                # A redelivery arrived (and got 202) while the handler ran: IronMQ now waits for
                # an ack of that newest reservation, not for this response.
                logger.info(
                    "message %s was redelivered while handled: acking the newest push", msg.id
                )
                await runtime.outbox.put_ack(route.queue, newest)
        if dropped:
            await self._dropped(route, msg, outcome, runtime)
        else:
            counters["acked"] += 1
        self._log(route, msg.delivery, "dropped" if dropped else "acked", 200, started)
        await respond(send, 200, STATUS["dropped" if dropped else "acked"])

    async def _dropped(self, route: Route, msg: PushMessage, drop: Drop, runtime: Runtime) -> None:
        self.counters.totals["dropped"] += 1
        logger.warning("message %s on %s dropped: %s", msg.id, route.queue, drop.reason)
        dlq = route.dead_letter_queue or self.dead_letter_queue
        if dlq:
            report = {
                "source_msg_id": msg.id,
                "queue": route.queue,
                "subscriber_name": msg.subscriber_name,
                "reason": drop.reason,
                "body": msg.text,
            }
            await runtime.outbox.put_post(dlq, json.dumps(report))

    async def _defer(
        self,
        route: Route,
        msg: PushMessage,
        defer: Defer,
        key: tuple[str, str],
        claim_id: str | None,
        text: str,
        runtime: Runtime,
        send: Send,
        started: float,
    ) -> bool:
        """Answer 202 and start the job; True when the claim stays active (a job runs)."""
        delivery = msg.delivery
        ackable = (
            bool(delivery.subscriber_message_url)
            if delivery.flavour == "legacy"
            else bool(delivery.reservation_id)
        )
        if not ackable or not runtime.runner.try_reserve():
            if claim_id is not None:
                await self._store(self.store.release, key, claim_id)
            if not ackable:
                logger.error("cannot defer message %s: the push has no reservation to ack", msg.id)
                await self._finish(
                    route, msg, ValueError("not ackable"), key, None, text, runtime, send, started
                )
                return False
            self.counters.totals["busy"] += 1
            self._log(route, delivery, "busy", 503, started)
            await respond(send, 503, STATUS["busy"])
            return False
        external = defer.job is None
        if claim_id is not None:
            lease = self.external_lease if external else self.claim_lease
            await self._store(
                self.store.hold,
                key,
                claim_id,
                state="external" if external else "deferred",
                lease=lease,
            )
        self.counters.totals["deferred"] += 1
        self._log(route, delivery, "deferred", 202, started)
        try:
            await respond(send, 202, STATUS["deferred"])
        finally:
            if external:
                runtime.runner.unreserve()
            else:
                runtime.runner.start(self._run_job(route, msg, defer, key, claim_id, text, runtime))
        return not external

    async def _run_job(
        self,
        route: Route,
        msg: PushMessage,
        defer: Defer,
        key: tuple[str, str],
        claim_id: str | None,
        text: str,
        runtime: Runtime,
    ) -> None:
        job = defer.job
        assert job is not None
        recorded: str | None = None
        try:
            try:
                if is_async(job):
                    await job(*defer.args, **defer.kwargs)
                else:
                    call = functools.partial(job, *defer.args, **defer.kwargs)
                    record = self._recorder(key, text, job=True) if claim_id is not None else None
                    result, recorded = await anyio.to_thread.run_sync(
                        call_then_record,
                        call,
                        record,
                        limiter=runtime.runner.limiter,
                        abandon_on_cancel=True,
                    )
                    if inspect.isawaitable(result):
                        await result
            except asyncio.CancelledError:
                # Shutdown: not done, so let the next push (here or on another worker) run it.
                with anyio.CancelScope(shield=True):
                    if claim_id is not None:
                        await self._store(self.store.release, key, claim_id)
                raise
            except Exception:
                self.counters.totals["jobs_failed"] += 1
                logger.exception(
                    "deferred job for message %s on %s failed; IronMQ will push again",
                    msg.id,
                    route.queue,
                )
                if claim_id is not None:
                    await self._store(self.store.release, key, claim_id)
                return
            newest = recorded or text
            if self.dedupe and recorded is None:
                newest = await self._store(
                    self.store.complete, key, outcome="acked", ttl=self.dedupe_ttl, delivery=text
                )
            await runtime.outbox.put_ack(route.queue, newest)
        finally:
            if claim_id is not None:
                runtime.active.discard(claim_id)
