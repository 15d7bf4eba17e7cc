"""``Defer``: keep the claim, answer 202, and run the job; its success is recorded, then acked.

``Defer(job)`` takes a job slot (else 503 ``busy``), answers 202 and starts the job on the
runtime's :class:`~._jobs.JobRunner`, keeping the claim the push made (no store call: the
lease heartbeat renews it while the job runs); when the job returns the store records the
message handled and the outbox acks the newest reservation (``runtime.job_done``).
``Defer()`` (an external worker acks with the token) hands the claim off in the store with
its long lease and answers 202::

    deferrals = Deferrals(shared, store, settler)
    keeps_claim = await deferrals.defer(push, Defer(job), runtime, send)
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from time import perf_counter

import anyio

from ._answers import ANSWERS, ackable, situation_of
from ._asgi import Send
from ._observe import current_push
from ._observe import failed as observe_failure
from ._observe import job as observe_job
from ._outcomes import Defer
from ._push import ClaimedPush as Push
from ._push_log import job_failed, log_delivery, push_fields
from ._routes import Route, is_async
from ._runtime import Runtime, Shared
from ._settle import Settler
from ._timings import DeferredSeries
from .stores._base import Store

logger = logging.getLogger("ironpush.receiver")
_INFO = logging.INFO
_ACCEPTED = ANSWERS["deferred"]

#: Longest a deferred push waits for the outbox to catch up (far inside IronMQ's push timeout).
_BACKLOG_WAIT = 1.0
#: Longest a deferred push waits for a job slot when all are taken: the jobs of a burst of
#: pushes answered in one event-loop turn start (and often end) in the next.
_SLOT_WAIT = 0.25


class Deferrals:
    """Answers the pushes whose handler returned :class:`Defer`, and runs their jobs."""

    def __init__(self, shared: Shared, store: Store, settler: Settler) -> None:
        self.counters = shared.counters
        self.timings = shared.counters.timings
        self.refusals = shared.refusals
        self.store = store  # timed
        self.settler = settler
        self.responder = settler.responder
        self._soft_backlog = max(1, shared.settings.limits.max_unsent_acks // 10)
        self._series: dict[str, DeferredSeries] = {}  # by route path (with the histograms)

    async def defer(self, push: Push, defer: Defer, runtime: Runtime, send: Send) -> bool:
        """Hold the claim, answer 202 and start the job; True when a job keeps the claim."""
        settle = self.settler.settle
        if not ackable(push.delivery):
            logger.error(
                "cannot defer message %s: the push has no reservation to ack",
                push.key[0],
                extra=push_fields(push, outcome="error"),
            )
            await settle(push, "unackable", runtime, send, defer)
            return False
        outbox = runtime.outbox
        if defer.job is not None and outbox.backlog >= self._soft_backlog:
            # IronMQ confirming acks slower than jobs finish: answer this push a little later
            # (bounded) so the pusher slows to the ack rate before the backlog's hard bound.
            # (Checked here first: the call is a coroutine, most pushes need not wait.)
            await outbox.wait_below(self._soft_backlog, timeout=_BACKLOG_WAIT)
        runner = runtime.runner
        situation = situation_of(defer)
        answer = ANSWERS[situation]
        if answer.store is not None:  # a hand-off; a job keeps the claim the push made
            if not runner.has_room() and not await runner.wait_for_room(_SLOT_WAIT):
                await settle(push, "busy", runtime, send, defer)
                return False
            try:
                await self.settler.store_step(push, answer)
            except Exception as exc:
                route, delivery = push.route, push.delivery
                await self.responder.store_failed(send, route, delivery, push.started, exc)
                return False
        # The slot is taken after any store call (a hand-off's): a slot bounds jobs, not the
        # round trips of a shared store (the room was checked before it; it may be gone since,
        # taken by pushes whose store calls ended first: then wait a moment for one). A job
        # makes no store call first: its slot is taken at once, or after such a wait.
        if not runner.try_reserve() and not (
            await runner.wait_for_room(_SLOT_WAIT) and runner.try_reserve()
        ):
            await settle(push, "busy", runtime, send, defer)
            return False
        try:
            if defer.job is None:
                await self.responder.answer(
                    send, push.route, push.delivery, situation, push.started, attempt=push.attempt
                )
            else:
                await self._accepted(push, send)
        finally:
            if defer.job is None:
                runtime.runner.unreserve()
            else:
                # The job's task keeps only the Push and the Defer: not the message (body,
                # parsed JSON, headers) unless the job was given it.
                running = self._run_job(push, defer, runtime)
                observed = observe_job(running, push, defer.job)
                # Unobserved, the task runs _run_job itself, whose finally ends it.
                runtime.runner.start(observed, ends_itself=observed is running)
        return defer.job is not None

    async def _accepted(self, push: Push, send: Send) -> None:
        """``Responder.answer`` of ``"deferred"`` (a job's 202), written out: every deferred
        push answers it, and the general call's look-ups cost it more than its effects
        (``bench_deferred.py``); the same effects, in the same order."""
        route, started = push.route, push.started
        if (observation := current_push()) is not None:
            observation.answered("deferred", 202)
        counters = self.counters
        counters.totals["deferred"] += 1
        counters.by_route[(route.queue, route.subscriber, "deferred")] += 1
        self.refusals.record(started, False)
        if logger.isEnabledFor(_INFO):
            log_delivery(_INFO, route, push.delivery, "deferred", 202, started, None, push.attempt)
        # A new list each time: middleware may add headers to the message in place.
        headers = list(_ACCEPTED.headers)
        await send({"type": "http.response.start", "status": 202, "headers": headers})
        await send({"type": "http.response.body", "body": _ACCEPTED.body})
        if self.timings is not None:
            self._series_of(route).push.observe(perf_counter() - started)

    def _series_of(self, route: Route) -> DeferredSeries:
        series = self._series.get(route.path)
        if series is None:
            assert self.timings is not None  # only called with the histograms on
            series = self._series[route.path] = DeferredSeries(self.timings, route)
        return series

    async def _run_job(self, push: Push, defer: Defer, runtime: Runtime) -> None:
        job = defer.job
        if job is None:  # pragma: no cover - defer starts jobs only
            return
        began = perf_counter()
        task = asyncio.current_task()  # (looked up once: the slot is given back by task)
        assert task is not None  # a job runs in its own task
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
                self._job_timed(push, "cancelled", began)
                # Shutdown: not done, so let the next push (here or on another worker) run it.
                with anyio.CancelScope(shield=True):
                    await self._release_quietly(push)
                raise
            except Exception as exc:
                self._job_timed(push, "failed", began)
                self.counters.totals["jobs_failed"] += 1
                observe_failure(exc)
                job_failed(push, job, exc)  # logged, and to Sentry when it is in use
                await self._release_quietly(push)
                return
            if self.timings is not None:
                self._series_of(push.route).job.observe(perf_counter() - began)
            # Its work is done: the slot is free for the next push while the store records it.
            runtime.runner.release(task)
            try:
                # Recorded first, then acked; a store that does not answer gets the completion
                # retried until it records it (runtime.completions), never forgotten.
                await runtime.job_done(push.route.queue, push.key, push.delivery, push.claim_id)
            except Exception:
                logger.exception(
                    "could not record the deferred job of message %s",
                    push.key[0],
                    extra=push_fields(push, store=self.store.kind),
                )
        finally:
            runtime.active.discard(push.claim_id)
            runtime.runner.ended(task)  # (a slot not given back above is given back here)

    def _job_timed(self, push: Push, outcome: str, began: float) -> None:
        if (timings := self.timings) is not None:
            route = push.route
            timings.job.observe((route.queue, route.subscriber, outcome), perf_counter() - began)

    async def _release_quietly(self, push: Push) -> None:
        try:
            await self.store.release(push.key, push.claim_id)
        except Exception:  # the lease runs out instead
            logger.exception(
                "could not release the claim of message %s",
                push.key[0],
                extra=push_fields(push, store=self.store.kind),
            )
