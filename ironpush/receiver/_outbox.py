"""The ack outbox: acknowledgements (and dead-letter posts) kept in the store until IronMQ
confirms them.

:class:`AckOutbox` sends through :class:`~ironpush.AsyncIronMQ`, retrying with backoff; a
403/404 on an ack means the reservation expired, counted as a *late ack* and left to
redelivery + dedupe. With a durable store the outbox survives a crash and is flushed when the
router starts again::

    outbox = AckOutbox(store, get_client, counters, OutboxSettings(concurrency=8))
    outbox.start()
    result = await outbox.ack_and_wait("orders", delivery, wait=5)  # "acked", "late", "failed"
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
import uuid
import weakref
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal, cast

import anyio

from .._defaults import Checked, setting
from .._errors import APIError, ValidationError
from .._logfields import LEVEL_NAMES, FallbackHandler, fields, sole_fallback
from .._protocol import Delivery
from ..client._retry import backoff_delay
from ._metrics import Counters
from ._observe import acknowledge, settles_in_span
from ._timed_store import TimedStore
from .stores._base import Key, OutboxItem, Store, sync_twin

if TYPE_CHECKING:
    from ..client._async_client import AsyncIronMQ
    from ._timings import Timings

logger = logging.getLogger("ironpush.receiver.outbox")
#: How an item ended: confirmed, refused as late (403/404: the reservation ran out), given up.
SendResult = Literal["acked", "late", "failed"]
#: Batched acks go out in this many chunks at a time (``OutboxSettings.concurrency`` acks in
#: all), so that the wire is not idle while one chunk waits for its answers.
_ACKERS = 4
#: A store's synchronous ``complete_ack`` (:meth:`AckOutbox.complete_and_queue`).
CompleteAckNow = Callable[[Key, float, OutboxItem], Delivery]
#: The line an item that reached its end logs (its values are also the record's fields).
_LINE = "%s %s queue=%s reservation=%s result=%s%s"


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboxSettings(Checked):
    """How the outbox sends: batches of ``batch`` items, ``concurrency`` calls in flight.

    Acks go out in chunks of a quarter of ``concurrency``, one
    :meth:`~ironpush.AsyncIronMQ.acknowledge_all` call each, four chunks at a time; posts (and
    acks in a tracing span) one call each by ``concurrency`` senders. So ``concurrency``
    bounds the ack rate at ``concurrency / round trip`` (a bound, not a measurement: 128 over
    a 20 ms round trip to IronMQ is at most 6,400 acks/s per process; the lean client
    pipelines them, 8 per connection).
    Items are taken with a ``lease`` (s) so that one sender of one process sends each; a
    failed call is retried after ``backoff`` doubling up to ``max_backoff`` (s), and given up
    after ``give_up_after`` (s). An idle outbox looks for items of other processes every
    ``poll_interval`` (s)::

        PushRouter(outbox=OutboxSettings(concurrency=8, give_up_after=3600))
    """

    # 128, not 32: a busy receiver's outbox then keeps up with its pushes in fewer, larger
    # chunks (benchmarks/README.md, bench_deferred and the receiver harness).
    concurrency: int = setting(128, "Acks (or posts) in flight at once.", ge=1)
    batch: int = setting(256, "Items taken from the store at once.", ge=1)
    lease: float = setting(60.0, "Seconds a taken item is left to its sender.", gt=0)
    backoff: float = setting(0.5, "Seconds before the first retry (then doubling).", ge=0)
    max_backoff: float = setting(30.0, "Longest wait between retries, in seconds.", ge=0)
    give_up_after: float = setting(86_400.0, "Seconds after which a failing item ends.", gt=0)
    poll_interval: float = setting(2.0, "Seconds between looks when idle.", gt=0)


class AckOutbox:
    """Sends pending acks and dead-letter posts until IronMQ confirms them."""

    def __init__(
        self,
        store: Store,
        get_client: Callable[[], Awaitable[AsyncIronMQ]],
        counters: Counters,
        settings: OutboxSettings | None = None,
    ) -> None:
        self.store = store
        # A deferred job's end in one store call (complete_ack), called on the store itself and
        # timed here (a timed store's wrapper was a coroutine more per call); the memory
        # store's synchronous twin, when neither it nor the steps it folds are overridden
        # (sync_twin): no coroutine at all.
        inner = store.inner if isinstance(store, TimedStore) else store
        self._fold: Callable[..., Awaitable[Delivery]] | None = getattr(inner, "complete_ack", None)
        self._fold_now: CompleteAckNow | None = None
        if sync_twin(inner, "complete") and sync_twin(inner, "add"):
            self._fold_now = sync_twin(inner, "complete_ack")
        self._fold_series = (
            counters.timings.store.labels(inner.kind, "complete_ack")
            if inner is not store and counters.timings is not None  # a timed store
            else None
        )
        self.get_client = get_client
        self.counters = counters
        self.timings = counters.timings  # ack latency and outbox wait (None: metrics off)
        self.settings = settings or OutboxSettings()
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        # Weak: with a store shared by several workers, another worker may send (and finish)
        # an item queued here, so its future is never resolved; a future nobody awaits any
        # more (a job's, a timed-out /_ack's) must then not stay here forever.
        self._waiters: weakref.WeakValueDictionary[str, asyncio.Future[SendResult]] = (
            weakref.WeakValueDictionary()
        )
        # Pushes waiting for the backlog to go below their limit, oldest first (wait_below):
        # (limit, deadline, future), and one timer for the oldest deadline.
        self._below: deque[tuple[int, float, asyncio.Future[None]]] = deque()
        self._below_timer: asyncio.TimerHandle | None = None
        # The acks sent at once for a waiting caller (ack_and_wait), as many at a time as
        # the batch senders.
        self._sending_now: set[asyncio.Task[None]] = set()
        self._now_slots = asyncio.Semaphore(self.settings.concurrency)
        self._id_prefix = uuid.uuid4().hex + "-"
        self._ids = itertools.count(1)
        #: Unsent items: counted after each batch (the store's depth), plus those added since
        #: and minus those finished since. The job runner's back-pressure reads it.
        self.backlog = 0

    @property
    def waiting(self) -> int:
        """How many queued acks still have someone waiting for their result."""
        return len(self._waiters)

    async def put_ack(self, queue: str, delivery: Delivery) -> asyncio.Future[SendResult]:
        """Queue an ack of ``delivery``; the future tells how it ended."""
        item = OutboxItem("ack", queue, delivery=delivery, id=self._new_id())
        future: asyncio.Future[SendResult] = asyncio.get_running_loop().create_future()
        self._waiters[item.id] = future
        await self._add(item)
        return future

    async def ack_and_wait(
        self, queue: str, delivery: Delivery, *, wait: float
    ) -> SendResult | None:
        """Send an ack of ``delivery`` now, kept in the store until IronMQ confirms it, and
        wait up to ``wait`` seconds for how it ended; None when it is still unconfirmed then
        (it stays queued: the outbox keeps sending it).

        The item is stored leased to this process (due only after ``lease``) and this
        process sends it at once: with a store shared by several processes, another one's
        outbox could otherwise take it, and its result would never reach this caller (the
        multi-host ``/_ack`` test answered "queued" that way). Should this process die
        before IronMQ confirms, any outbox sharing the store sends it once the lease is over.
        """
        leased = time.time() + self.settings.lease
        item = OutboxItem("ack", queue, delivery=delivery, id=self._new_id(), next_at=leased)
        future: asyncio.Future[SendResult] = asyncio.get_running_loop().create_future()
        self._waiters[item.id] = future  # a retry, if any, is resolved by the batch path
        await self.store.add(item)
        self.backlog += 1
        task = asyncio.get_running_loop().create_task(self._send_now(item))
        self._sending_now.add(task)
        task.add_done_callback(self._sending_now.discard)
        try:
            with anyio.fail_after(wait):
                # Shielded: giving up waiting must not cancel the future the sender resolves.
                return await asyncio.shield(future)
        except TimeoutError:
            return None

    async def _send_now(self, item: OutboxItem) -> None:
        """Send one leased item outside the batches (:meth:`ack_and_wait`), then finish it; a
        failed send is rescheduled like any other and left to the loop."""
        try:
            async with self._now_slots:
                result = await self._send(item)
        except asyncio.CancelledError:
            # Shutdown mid-send: due again at once rather than after the lease, for this
            # process's next start or another process's outbox.
            with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                await self.store.retry(item.id, attempts=item.attempts, next_at=0)
            raise
        except Exception:  # rescheduling failed (the store): the item is sent after its lease
            logger.exception("ack outbox: store error after sending %s", item.id)
            return
        if result is None:  # rescheduled: due soon, so the loop must look again
            self._wake.set()
            return
        self.backlog = max(0, self.backlog - 1)
        self._shrank()
        self._resolve(item.id, result)
        try:
            await self.store.finish([item.id])
        except Exception as exc:  # sent again after its lease: IronMQ answers it as late
            logger.warning("ack outbox: %s sent but still in the store: %s", item.id, exc)

    def _resolve(self, item_id: str, result: SendResult) -> None:
        """Tell whoever waits for ``item_id`` how it ended."""
        future = self._waiters.pop(item_id, None)
        if future is not None and not future.done():
            future.set_result(result)

    async def queue_ack(self, queue: str, delivery: Delivery) -> None:
        """Queue an ack of ``delivery`` that nobody waits for (a finished deferred job's)."""
        await self._add(OutboxItem("ack", queue, delivery=delivery, id=self._new_id()))

    async def complete_and_queue(
        self, queue: str, key: Key, delivery: Delivery, *, ttl: float
    ) -> Delivery:
        """A deferred job's end: record ``key`` handled (``acked``, for ``ttl`` s), then queue
        the ack of the newest delivery the store kept; that delivery.

        One store call where the store folds both (``complete_ack``: memory, SQLite, Redis;
        the memory store's synchronous twin without a coroutine), else ``complete`` then
        ``add``. The completion is recorded first either way (never an ack the store knows
        nothing about); a store failure raises, with at most the completion recorded (the
        caller retries it: :mod:`._completions`)."""
        item = OutboxItem("ack", queue, delivery=delivery, id=self._new_id())
        newest: Delivery
        if (fold := self._fold) is not None:
            began = time.perf_counter()
            try:
                fold_now = self._fold_now
                newest = (
                    fold_now(key, ttl, item) if fold_now else await fold(key, ttl=ttl, item=item)
                )
            finally:
                if (series := self._fold_series) is not None:  # as the timed store times
                    series.observe(time.perf_counter() - began)
        else:
            newest = await self.store.complete(key, outcome="acked", ttl=ttl, delivery=delivery)
            await self.store.add(item if newest == delivery else replace(item, delivery=newest))
        self.backlog += 1
        self._wake.set()
        return newest

    async def put_post(self, queue: str, body: str) -> None:
        """Queue a post of ``body`` to ``queue`` (a dead-letter report)."""
        await self._add(OutboxItem("post", queue, body=body, id=self._new_id()))

    async def _add(self, item: OutboxItem) -> None:
        await self.store.add(item)
        self.backlog += 1
        self._wake.set()

    def _new_id(self) -> str:
        # Unique across processes sharing a store (a random prefix per outbox) without the cost
        # of a uuid4 per ack: one per deferred job is on the hot path.
        return f"{self._id_prefix}{next(self._ids)}"

    async def wait_below(self, limit: int, *, timeout: float) -> bool:
        """Wait (up to ``timeout`` s) until fewer than ``limit`` items are unsent; whether so.

        The pipeline calls it before taking on more deferred work: while IronMQ confirms acks
        slower than jobs finish, new pushes are answered a little later (the pusher slows to
        the ack rate) rather than the backlog growing to its bound and pushes getting 503."""
        if self.backlog < limit:
            return True
        # One future per waiting push, resolved when the backlog is below its limit
        # (:meth:`_shrank`) or at its deadline, in arrival order, by one timer for all:
        # waking every waiter on each sent ack, or a timer each, cost more than the acks.
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        deadline = loop.time() + timeout
        self._below.append((limit, deadline, future))
        if self._below_timer is None:
            self._below_timer = loop.call_at(deadline, self._expire_below)
        try:
            await future
        finally:
            if not future.done():  # cancelled: it is skipped when its turn comes
                future.cancel()
        return self.backlog < limit

    def _shrank(self) -> None:
        """The backlog went down: let the waiting pushes in while it is below their limit."""
        below = self._below
        while below:
            limit, _, future = below[0]
            if not future.done():
                if self.backlog >= limit:
                    return
                future.set_result(None)
            below.popleft()

    def _expire_below(self) -> None:
        """Let in the waiting pushes whose deadline passed; the timer then waits for the next."""
        self._below_timer = None
        below = self._below
        now = asyncio.get_running_loop().time()
        while below and (below[0][2].done() or below[0][1] <= now):
            future = below.popleft()[2]
            if not future.done():
                future.set_result(None)
        if below:
            self._below_timer = asyncio.get_running_loop().call_at(below[0][1], self._expire_below)

    def start(self) -> None:
        """Send in the background until :meth:`close`."""
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def _loop(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                await self.drain_due()
                next_due = await self.store.next_due()
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
            items = await self.store.take(limit=self.settings.batch, lease=self.settings.lease)
            if not items:
                return
            await self._send_batch(items)
            if self._stopping:
                return

    async def _send_batch(self, items: list[OutboxItem]) -> None:
        # Acks go out in chunks, one call each (acknowledge_all: pipelined, no coroutine per
        # ack), by a few ackers: while one chunk waits for its answers the others' are on the
        # wire, ``concurrency`` acks in flight in all. The rest (posts, acks in a settle span)
        # by a few senders, each sending one item at a time over the client's keep-alive pool.
        acks: deque[OutboxItem] = deque()
        pending: deque[OutboxItem] = deque()
        for item in items:
            (acks if _batched(item) else pending).append(item)
        # By id: hashing an item (a dataclass, its delivery included) cost more than its ack.
        sending: dict[str, OutboxItem] = {}
        finished: list[tuple[str, SendResult]] = []

        def ended(done: list[tuple[str, SendResult]]) -> None:
            finished.extend(done)
            self.backlog = max(0, self.backlog - len(done))
            if self._below:
                self._shrank()

        size = -(-self.settings.concurrency // _ACKERS)  # rounded up

        async def acker() -> None:
            while acks:
                chunk = [acks.popleft() for _ in range(min(size, len(acks)))]
                for item in chunk:
                    sending[item.id] = item
                results = await self._send_acks(chunk)
                for item in chunk:
                    del sending[item.id]
                ended([(i.id, r) for i, r in zip(chunk, results, strict=True) if r is not None])

        async def sender() -> None:
            while pending:
                item = pending.popleft()
                sending[item.id] = item
                result = await self._send(item)
                del sending[item.id]
                if result is not None:
                    ended([(item.id, result)])

        # This task sends the acks, or is the first sender; plain asyncio tasks for the other
        # senders (an anyio task group per batch cost more than the acks with a fast IronMQ).
        loop = asyncio.get_running_loop()
        count = min(self.settings.concurrency, len(pending))
        others = [loop.create_task(sender()) for _ in range(count - (0 if acks else 1))]
        ackers = min(_ACKERS, -(-len(acks) // size))
        others += [loop.create_task(acker()) for _ in range(ackers - 1)]
        try:
            await (acker() if acks else sender())
            if others:
                await asyncio.gather(*others)
        except BaseException:
            # Cancelled mid-batch: hand the unsent items back now rather than leaving them
            # leased (a restarted process would wait for the lease to run out).
            for task in others:
                task.cancel()
            with anyio.CancelScope(shield=True):
                if others:
                    await asyncio.wait(others)
                for item in [*acks, *pending, *sending.values()]:
                    await self.store.retry(item.id, attempts=item.attempts, next_at=0)
            raise
        if finished:
            await self.store.finish([item_id for item_id, _ in finished])
        # Recount: the store also holds items of other processes and rescheduled ones.
        self.backlog = await self.store.depth()
        self._shrank()
        if self._waiters:  # most acks are a job's: nobody waits for them
            for item_id, result in finished:
                self._resolve(item_id, result)

    async def _send(self, item: OutboxItem) -> SendResult | None:
        """Send one item (timed); the final result, or None when it was rescheduled."""
        began = time.perf_counter()
        result = await self._call(item)
        if self.timings is not None:
            self._timed(self.timings, [item], [result], time.perf_counter() - began)
        return result

    async def _send_acks(self, items: list[OutboxItem]) -> list[SendResult | None]:
        """Send the acks of ``items`` in one call (timed alike); their results, as
        :meth:`_send` says for each."""
        began = time.perf_counter()
        try:
            client = await self.get_client()
            errors = await client.acknowledge_all(
                [(item.queue, cast(Delivery, item.delivery)) for item in items]
            )
        except Exception as exc:  # missing configuration, ...: each item fails alike
            errors = [exc] * len(items)
        results: list[SendResult | None] = []
        acked: list[OutboxItem] = []
        for item, error in zip(items, errors, strict=True):
            if error is None:
                acked.append(item)
                results.append("acked")
            else:
                results.append(await self._failed(item, error))
        if acked:
            self.counters.add("acked", len(acked))
            self._ended(acked, "acked")
        if self.timings is not None:
            self._timed(self.timings, items, results, time.perf_counter() - began)
        return results

    @staticmethod
    def _timed(
        timings: Timings, items: list[OutboxItem], results: list[SendResult | None], took: float
    ) -> None:
        """The latency of the acks among ``items`` sent in one call (``took`` s), and how long
        each item that reached its end waited in the outbox."""
        now = time.time()
        waited, subscriber_of = timings.outbox_wait.observe, timings.subscriber
        # Each ack's latency is the call's: counted per label set, observed once each (a
        # chunk's acks are mostly of one queue and subscriber, and all acked).
        acks: dict[tuple[str, str, str], int] = {}
        for item, result in zip(items, results, strict=True):
            queue, delivery = item.queue, item.delivery
            subscriber = subscriber_of(queue, delivery.subscriber_name if delivery else None)
            if item.kind == "ack":
                ack: tuple[str, str, str] = (queue, subscriber, result or "retry")
                acks[ack] = acks.get(ack, 0) + 1
            if result is not None:  # its last send: how long it waited in the outbox
                waited((queue, subscriber, item.kind), max(0.0, now - item.created_at))
        for labels, times in acks.items():
            timings.ack.observe_many(labels, took, times)

    async def _call(self, item: OutboxItem) -> SendResult | None:
        try:
            client = await self.get_client()
            if item.kind == "ack":
                if item.delivery is None:
                    raise ValueError("an ack without a delivery")
                await acknowledge(client, item.queue, item.delivery)  # traced: _observe.py
            else:
                await client.queue(item.queue).post(item.body or "")
        except Exception as exc:
            return await self._failed(item, exc)
        return self._acked(item)

    def _acked(self, item: OutboxItem) -> SendResult:
        if item.kind == "ack":
            self.counters.add("acked")
        return self._finished(item, "acked")

    async def _failed(self, item: OutboxItem, exc: Exception) -> SendResult | None:
        """What a failed send of ``item`` comes to: late, given up, or rescheduled (None)."""
        if isinstance(exc, APIError):
            if item.kind == "ack" and exc.status_code in (403, 404):
                self.counters.add("late_acks")
                return self._finished(item, "late", f"the reservation expired ({exc.status_code})")
            if 400 <= exc.status_code < 500 and exc.status_code not in (401, 408, 429):
                return self._give_up(item, f"refused with {exc.status_code}")
            return await self._reschedule(item, f"{exc.status_code}")
        if isinstance(exc, ValidationError | ValueError):
            return self._give_up(item, str(exc))
        # transport errors, missing configuration, ...
        return await self._reschedule(item, type(exc).__name__)

    def _finished(self, item: OutboxItem, result: SendResult, why: str = "") -> SendResult:
        """``item`` reached its end: its line (:meth:`_ended`); ``result``."""
        self._ended([item], result, why)
        return result

    @staticmethod
    def _ended(items: list[OutboxItem], result: SendResult, why: str = "") -> None:
        """One log line per item that reached its end (no secrets: ids and names only)."""
        level = logging.INFO if result == "acked" else logging.WARNING
        if result == "failed":
            level = logging.ERROR
        if not logger.isEnabledFor(level):
            return
        # One line per ack of a deferred push: when only ironpush's fallback handler would
        # show them (plain uvicorn), a chunk's lines are written at once (one system call),
        # each from the parts of _LINE made once per queue and result, like the delivery
        # line; else a record each.
        why = f" ({why})" if why else ""
        handler = sole_fallback(logger, level)
        if handler is not None:
            lines = []
            for item in items:
                made = _parts.get((item.kind, item.queue, result, level))
                if made is None or made[0] is not LEVEL_NAMES.get(level):
                    made = _line_parts(item, result, level, handler)
                message_id, reservation = _ids(item)
                lines.append(f"{made[1]}{message_id}{made[2]}{reservation}{made[3]}{why}")
            if handler.write_lines(lines):
                return
        for item in items:
            message_id, reservation = _ids(item)
            args = (item.kind, message_id, item.queue, reservation, result, why)
            logger.log(level, _LINE, *args, extra=_fields(item, result=result))

    def _give_up(self, item: OutboxItem, why: str) -> SendResult:
        self.counters.add("ack_failures")
        return self._finished(item, "failed", f"given up: {why}")

    async def _reschedule(self, item: OutboxItem, why: str) -> SendResult | None:
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
            extra=_fields(item, result="retry"),
        )
        await self.store.retry(item.id, attempts=attempts, next_at=time.time() + delay)
        return None

    async def close(self, flush_timeout: float) -> None:
        """Stop the loop and send what is due, for at most ``flush_timeout`` seconds."""
        with anyio.move_on_after(flush_timeout):
            if self._sending_now:
                await asyncio.wait(set(self._sending_now))
            if self._task is not None:
                # Let the batch in flight finish (cancelling it would strand leased items).
                self._stopping = True
                self._wake.set()
                await asyncio.shield(self._task)
            try:
                await self.drain_due()
            except Exception as exc:  # the store is down: its items wait there (durable ones)
                logger.warning("ack outbox: not flushed at shutdown: %s", exc)
        stragglers = [*self._sending_now, *([self._task] if self._task is not None else [])]
        for task in stragglers:
            task.cancel()
        if stragglers:
            await asyncio.wait(stragglers)
        self._task = None


#: _LINE's parts by (kind, queue, result, level): the level's name they were made with
#: (logging.addLevelName may rename it), the text before the message id ("LEVEL   name: ack
#: "), between it and the reservation (" queue=… reservation="), and after it (" result=…").
_parts: dict[tuple[str, str, str, int], tuple[str | None, str, str, str]] = {}


def _line_parts(
    item: OutboxItem, result: str, level: int, handler: FallbackHandler
) -> tuple[str | None, str, str, str]:
    made = (
        LEVEL_NAMES.get(level),
        f"{handler.head(level, logger.name)}{item.kind} ",
        f" queue={item.queue} reservation=",
        f" result={result}",
    )
    if len(_parts) < 4096:  # bounded whatever the queues (an app acks on a few)
        _parts[(item.kind, item.queue, result, level)] = made
    return made


def _ids(item: OutboxItem) -> tuple[str, str]:
    """The message id and reservation id an item's line shows ("-" for none)."""
    delivery = item.delivery
    if delivery is None:
        return "-", "-"
    return delivery.message_id, delivery.reservation_id or "-"


def _batched(item: OutboxItem) -> bool:
    """Whether ``item`` is an ack sent in a batch (:meth:`AckOutbox._send_acks`)."""
    delivery = item.delivery
    return item.kind == "ack" and delivery is not None and not settles_in_span(item.queue, delivery)


def _fields(item: OutboxItem, **more: Any) -> dict[str, Any]:
    """The ``extra=`` of an outbox record: the push it acks (a post names its queue only)."""
    delivery = item.delivery
    if delivery is None:
        return fields(item.queue, None, None, kind=item.kind, **more)
    return fields(
        item.queue,
        delivery.subscriber_name,
        delivery.message_id,
        reservation_id=delivery.reservation_id,
        kind=item.kind,
        **more,
    )
