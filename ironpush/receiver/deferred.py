"""Deferred work: the job runner behind ``Defer(job)`` and the ack outbox.

:class:`JobRunner` runs deferred jobs in background tasks, at most ``capacity`` at a time (the
router answers 503 when it is full, so IronMQ retries later instead of the process running out
of memory). :class:`AckOutbox` sends acknowledgements (and dead-letter posts) through
:class:`~ironpush.AsyncIronMQ`, retrying with backoff until IronMQ confirms; a 403/404
means the reservation expired, which is counted as a *late ack* and left to redelivery + dedupe.
With an :class:`SQLiteStore` the outbox survives a crash and is flushed when
the router starts again.

:class:`Runtime` ties them to one event loop together with the lease heartbeat that keeps this
process's dedupe claims alive. The router creates it lazily on the first push (Starlette does
not run the lifespan of mounted apps) and closes it from its lifespan hook.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import anyio

from ..client.retry import backoff_delay
from ..errors import APIError, ValidationError
from ..protocol import delivery_from_json, delivery_to_json
from .metrics import Counters
from .stores.legacy import DedupeStore, OutboxItem, OutboxStore

if TYPE_CHECKING:
    from ..client.sync_client import AsyncIronMQ

__all__ = ["AckOutbox", "JobRunner", "OutboxSettings", "Runtime", "delivery_json"]

logger = logging.getLogger("ironpush.deferred")
T = TypeVar("T")
AckResult = Literal["acked", "late", "failed"]


delivery_json = delivery_to_json
parse_delivery_json = delivery_from_json


# Store calls get their own thread tokens: sharing anyio's default limiter with sync handlers
# made the "message handled" write queue behind up to 40 busy handlers, which widened the window
# in which a crash after a handler's side effect makes the redelivery run it again.
STORE_THREADS = 4
_store_limiters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, anyio.CapacityLimiter] = (
    weakref.WeakKeyDictionary()
)


def _store_limiter() -> anyio.CapacityLimiter:
    loop = asyncio.get_running_loop()
    limiter = _store_limiters.get(loop)
    if limiter is None:
        limiter = _store_limiters[loop] = anyio.CapacityLimiter(STORE_THREADS)
    return limiter


async def call_store(blocking: bool, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a store method; a blocking (SQLite) store runs in a worker thread of its own pool."""
    if blocking:
        call = partial(fn, *args, **kwargs)
        return await anyio.to_thread.run_sync(call, limiter=_store_limiter())
    return fn(*args, **kwargs)


# =========================================================================== jobs


class JobRunner:
    """At most ``capacity`` deferred jobs at once, each in its own task.

    A slot is reserved with :meth:`try_reserve` *before* answering 202 (so a full runner
    answers 503), then used by :meth:`start`. Sync jobs run in worker threads limited to the
    same capacity, separate from the request threadpool, so long jobs cannot starve handlers.
    ``backlog`` (the outbox's unsent items) is held to the same capacity: when acks go out
    slower than jobs finish (a busy event loop, a distant IronMQ), new work gets 503 instead of
    the outbox growing without bound, each ack later than the one before.
    """

    def __init__(self, capacity: int, backlog: Callable[[], int] | None = None) -> None:
        if capacity < 1:
            raise ValueError("max_deferred must be >= 1")
        self.capacity = capacity
        self.accepting = True
        self.reserved = 0
        self._backlog = backlog or (lambda: 0)
        self.limiter = anyio.CapacityLimiter(capacity)
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def in_flight(self) -> int:
        return self.reserved

    def try_reserve(self) -> bool:
        if not self.accepting or self.reserved >= self.capacity or self._backlog() >= self.capacity:
            return False
        self.reserved += 1
        return True

    def unreserve(self) -> None:
        self.reserved -= 1

    def start(self, job: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(job)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self.reserved -= 1

    async def drain(self, grace: float) -> int:
        """Stop accepting, wait up to ``grace`` seconds, cancel the rest; return how many."""
        self.accepting = False
        with anyio.move_on_after(grace):
            while self._tasks:
                await asyncio.wait(set(self._tasks))
        left = list(self._tasks)
        for task in left:
            task.cancel()
        if left:
            # Let cancelled jobs run their cleanup (releasing their claims) before we go on.
            await asyncio.wait(left, timeout=5.0)
        return len(left)


# =========================================================================== outbox


@dataclass(frozen=True, slots=True)
class OutboxSettings:
    """How the outbox sends: ``concurrency`` senders over batches of ``batch`` items.

    Each sender has one ack in flight at a time, so ``concurrency`` bounds the ack rate at
    ``concurrency / round trip``: 32 senders keep up with ~600 acks/s to an IronMQ 50 ms away,
    and the lean HTTP client keeps their CPU cost low on a busy event loop (the load run: 8
    senders capped a receiver at ~180 accepted jobs/s, 64 at ~390/s).
    """

    concurrency: int = 32
    batch: int = 256
    lease: float = 60.0
    backoff: float = 0.5
    max_backoff: float = 30.0
    give_up_after: float = 86_400.0
    poll_interval: float = 2.0


class AckOutbox:
    """Sends pending acks and dead-letter posts until IronMQ confirms them."""

    def __init__(
        self,
        store: OutboxStore,
        get_client: Callable[[], Awaitable[AsyncIronMQ]],
        counters: Counters,
        settings: OutboxSettings | None = None,
    ) -> None:
        self.store = store
        self.get_client = get_client
        self.counters = counters
        self.settings = settings or OutboxSettings()
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        # Weak: with a store shared by several workers, another worker may send (and finish)
        # an item queued here, so its future is never resolved; a future nobody awaits any
        # more (a job's, a timed-out /_ack's) must then not stay here forever.
        self._waiters: weakref.WeakValueDictionary[str, asyncio.Future[AckResult]] = (
            weakref.WeakValueDictionary()
        )
        #: Unsent items: counted after each batch (the store's depth), plus those added since
        #: and minus those finished since. The job runner's back-pressure reads it.
        self.backlog = 0

    async def _store(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await call_store(self.store.blocking, fn, *args, **kwargs)

    async def put_ack(self, queue: str, delivery_text: str) -> asyncio.Future[AckResult]:
        """Queue an ack (``delivery_text`` from :func:`delivery_json`); the future tells the end."""
        item = OutboxItem("ack", queue, delivery_text)
        future: asyncio.Future[AckResult] = asyncio.get_running_loop().create_future()
        self._waiters[item.id] = future
        await self._store(self.store.add, item)
        self.backlog += 1
        self._wake.set()
        return future

    async def put_post(self, queue: str, body: str) -> None:
        await self._store(self.store.add, OutboxItem("post", queue, body))
        self.backlog += 1
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def _loop(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                await self.drain_due()
                next_due = await self._store(self.store.next_due)
            except Exception:  # a store error must not kill the loop: log and try later
                logger.exception("ack outbox: store error")
                next_due = None
            delay = self.settings.poll_interval
            if next_due is not None:
                delay = min(delay, max(0.01, next_due - time.time()))
            with anyio.move_on_after(delay):
                await self._wake.wait()

    async def drain_due(self) -> None:
        """Send every item that is due now (in batches), then return."""
        while True:
            items = await self._store(
                self.store.take, limit=self.settings.batch, lease=self.settings.lease
            )
            if not items:
                return
            await self._send_batch(items)
            if self._stopping:
                return

    async def _send_batch(self, items: list[OutboxItem]) -> None:
        # A few senders, each sending one item at a time over the client's keep-alive pool:
        # measured to beat both one sender and many in-flight requests on one pool.
        pending = deque(items)
        sending: set[OutboxItem] = set()
        finished: list[tuple[str, AckResult]] = []

        async def sender() -> None:
            while pending:
                item = pending.popleft()
                sending.add(item)
                result = await self._send(item)
                sending.discard(item)
                if result is not None:
                    finished.append((item.id, result))
                    self.backlog = max(0, self.backlog - 1)

        try:
            async with anyio.create_task_group() as tg:
                for _ in range(min(self.settings.concurrency, len(items))):
                    tg.start_soon(sender)
        except BaseException:
            # Cancelled mid-batch: hand the unsent items back now rather than leaving them
            # leased (a restarted process would wait for the lease to run out).
            with anyio.CancelScope(shield=True):
                for item in [*pending, *sending]:
                    await self._store(self.store.retry, item.id, attempts=item.attempts, next_at=0)
            raise
        if finished:
            await self._store(self.store.finish, [item_id for item_id, _ in finished])
        # Recount: the store also holds items of other processes (SQLite) and rescheduled ones.
        self.backlog = await self._store(self.store.depth)
        for item_id, result in finished:
            future = self._waiters.pop(item_id, None)
            if future is not None and not future.done():
                future.set_result(result)

    async def _send(self, item: OutboxItem) -> AckResult | None:
        """Send one item; the final result, or None when it was rescheduled."""
        try:
            client = await self.get_client()
            if item.kind == "ack":
                await client.acknowledge(item.queue, parse_delivery_json(item.payload))
            else:
                await client.queue(item.queue).post(item.payload)
        except APIError as exc:
            if item.kind == "ack" and exc.status_code in (403, 404):
                self.counters.add("late_acks")
                logger.warning(
                    "late ack on queue %s (%s): the reservation expired; redelivery + dedupe "
                    "will finish the message",
                    item.queue,
                    exc.status_code,
                )
                return "late"
            if 400 <= exc.status_code < 500 and exc.status_code not in (401, 408, 429):
                return self._give_up(item, f"refused with {exc.status_code}")
            return await self._reschedule(item, f"{exc.status_code}")
        except (ValidationError, ValueError) as exc:
            return self._give_up(item, str(exc))
        except Exception as exc:  # transport errors, missing configuration, ...
            return await self._reschedule(item, type(exc).__name__)
        if item.kind == "ack":
            self.counters.add("acked")
        return "acked"

    def _give_up(self, item: OutboxItem, why: str) -> AckResult:
        self.counters.add("ack_failures")
        logger.error("ack outbox: giving up %s on queue %s: %s", item.kind, item.queue, why)
        return "failed"

    async def _reschedule(self, item: OutboxItem, why: str) -> AckResult | None:
        if time.time() - item.created_at > self.settings.give_up_after:
            return self._give_up(item, f"still failing after {self.settings.give_up_after:.0f}s")
        attempts = item.attempts + 1
        delay = backoff_delay(attempts, base=self.settings.backoff, cap=self.settings.max_backoff)
        logger.warning(
            "ack outbox: %s on queue %s failed (%s); retry %d in %.1fs",
            item.kind,
            item.queue,
            why,
            attempts,
            delay,
        )
        await self._store(self.store.retry, item.id, attempts=attempts, next_at=time.time() + delay)
        return None

    async def close(self, flush_timeout: float) -> None:
        """Stop the loop and send what is due, for at most ``flush_timeout`` seconds."""
        with anyio.move_on_after(flush_timeout):
            if self._task is not None:
                # Let the batch in flight finish (cancelling it would strand leased items).
                self._stopping = True
                self._wake.set()
                await asyncio.shield(self._task)
            await self.drain_due()
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task])
            self._task = None


# =========================================================================== runtime


class Runtime:
    """The router's background machinery on one event loop: jobs, outbox, lease heartbeat."""

    def __init__(
        self,
        *,
        store: DedupeStore,
        outbox_store: OutboxStore,
        counters: Counters,
        get_client: Callable[[], Awaitable[AsyncIronMQ]],
        capacity: int,
        lease: float,
        outbox_settings: OutboxSettings | None = None,
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.store = store
        self.counters = counters
        self.lease = lease
        self.outbox = AckOutbox(outbox_store, get_client, counters, outbox_settings)
        self.runner = JobRunner(capacity, backlog=lambda: self.outbox.backlog)
        #: Claim ids whose leases this process keeps alive (running handlers, deferred jobs).
        self.active: set[str] = set()
        self._heartbeat: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.outbox.start()
        self._heartbeat = self.loop.create_task(self._beat())

    async def _beat(self) -> None:
        while True:
            await anyio.sleep(self.lease / 3)
            if self.active:
                try:
                    await call_store(
                        self.store.blocking, self.store.renew, set(self.active), lease=self.lease
                    )
                except Exception:
                    logger.exception("could not renew dedupe claims")

    async def close(self, *, grace: float, flush_timeout: float) -> None:
        """Graceful stop: refuse new jobs, wait ``grace`` s for running ones, flush the outbox."""
        left = await self.runner.drain(grace)
        if left:
            logger.warning("%d deferred job(s) still running at shutdown: left to redelivery", left)
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            await asyncio.wait([self._heartbeat])
        await self.outbox.close(flush_timeout)
