"""Completions the store has not recorded yet: retried until it does, never forgotten.

A deferred job (or an external worker's job, through its ack token) finished: its message is
recorded handled in the store, *then* acknowledged (an ack the store knows nothing about is
never sent: if IronMQ refused it as late, the redelivery that follows must be answered from the
store). When the store does not answer at that moment (down, restarting, paused, a terminated
connection), the completion is not lost: :class:`Completions` keeps it and retries with a short
doubling delay (``backoff`` up to ``max_backoff`` s) until the store records it, then runs what
follows (queue the ack in the outbox, or send it). Meanwhile:

- a redelivery of that message reaching this process is answered 202 without running anything
  (:meth:`Completions.holds`; its reservation becomes the one acknowledged);
- the claim stays in the set whose leases the heartbeat renews (:meth:`Completions.claim_ids`);
- ``count`` is the ``pending_completions`` gauge, :meth:`Completions.problems` the health reason,
  and the runner's back-pressure counts them with the unsent acks (a bound: new deferred work
  gets 503 past ``Limits.max_unsent_acks``);
- the first failure of each completion is logged (a line per message that a repeat limiter
  never drops) and counted (``completions_retried``).

At graceful shutdown :meth:`Completions.close` retries what is left for up to its timeout;
a completion the store still cannot take then is logged as lost (IronMQ's redelivery runs the
job again once the claim's lease runs out): the residual window is a store that stays down for
the whole shutdown, or a crash while completions are pending (RELIABILITY.md)::

    completions = Completions(store, ttl=86_400)
    result = await completions.finish(key, delivery, then=queue_ack)   # PENDING if not yet
    await completions.close(timeout=5)
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, Final

import anyio

from .._errors import StoreUnavailable
from .._protocol import Delivery
from ..client._retry import backoff_delay
from ._metrics import Counters
from .stores._base import Key, Outcome, Store, StoreProblem
from .stores._redis_watch import EVERY_TIME

logger = logging.getLogger("ironpush.receiver.completions")

#: What follows the record: given the delivery to acknowledge (None: ``once`` and the message
#: was handled already), it queues or sends the ack and returns how that went.
Then = Callable[[Delivery | None], Awaitable[Any]]
#: A failure the completion is retried after (anything else is the caller's to handle).
RETRIED: Final = (StoreUnavailable, TimeoutError)
#: Completions retried at once when the store answers again.
_BATCH = 32


class _Pending:
    """The answer of :meth:`Completions.finish` for a completion still being retried."""

    def __repr__(self) -> str:
        return "PENDING"


PENDING: Final = _Pending()


@dataclass(eq=False, slots=True)
class Pending:
    """One completion waiting for the store: recorded (``recorded``) then followed up."""

    key: Key
    delivery: Delivery
    outcome: Outcome
    once: bool
    then: Then
    what: str
    claim_id: str | None
    since: float = field(default_factory=time.monotonic)
    attempts: int = 1
    recorded: bool = False
    newest: Delivery | None = None  # what the store answered once it recorded the completion
    seen: Delivery | None = None  # the newest redelivery answered 202 here meanwhile
    future: asyncio.Future[Any] | None = None

    def to_ack(self) -> Delivery | None:
        """The delivery to acknowledge: a redelivery answered here while the store was away
        is IronMQ's newest reservation as far as this process knows."""
        return self.seen or self.newest


@dataclass(eq=False, repr=False)
class Completions:
    """Record completions in ``store`` (handled for ``ttl`` seconds), retrying what fails;
    ``counters`` (a router's) counts each completion that had to wait. ``serves_pushes``: this
    process receives the pushes (a router: their redeliveries get 202 here), not a worker."""

    store: Store
    _: KW_ONLY
    ttl: float
    counters: Counters | None = None
    serves_pushes: bool = False
    backoff: float = 0.1
    max_backoff: float = 1.0
    retried: int = field(default=0, init=False)  # completions that went pending, ever (logged)
    #: The pending completions by key (read by the pipeline: a dict check is cheaper than a call).
    pending: dict[Key, Pending] = field(default_factory=dict, init=False)
    _task: asyncio.Task[None] | None = field(default=None, init=False)
    _wake: asyncio.Event | None = field(default=None, init=False)

    @property
    def count(self) -> int:
        """Completions not recorded (or not followed up) yet."""
        return len(self.pending)

    def claim_ids(self) -> set[str]:
        """The claims of pending completions: their leases are kept alive meanwhile."""
        return {p.claim_id for p in self.pending.values() if p.claim_id}

    def holds(self, key: Key, delivery: Delivery) -> bool:
        """True when ``key``'s completion is pending here: the caller answers the push 202
        (its ``delivery`` becomes the one acknowledged) and the store is tried again now."""
        pending = self.pending.get(key)
        if pending is None:
            return False
        pending.seen = delivery
        self._poke()
        return True

    def problems(self) -> list[StoreProblem]:
        """A health warning while completions are pending (the store probe says if it is down)."""
        if not self.pending:
            return []
        oldest = time.monotonic() - min(p.since for p in self.pending.values())
        return [
            StoreProblem(
                "degraded",
                f"{len(self.pending)} finished job(s) not recorded in the {self.store.kind} store "
                f"yet (the oldest for {oldest:.0f}s): retried until it records them; their "
                "redeliveries are answered 202 here",
            )
        ]

    async def finish(
        self,
        key: Key,
        delivery: Delivery,
        *,
        then: Then,
        outcome: Outcome = "acked",
        once: bool = False,
        claim_id: str | None = None,
        wait: float = 0.0,
        what: str = "the deferred job",
    ) -> Any:
        """Record ``key`` handled (``once``: unless it was already), then ``then(delivery to
        ack)``; its result. When the store fails, the completion is kept and retried in the
        background: the result if it is done within ``wait`` seconds, else :data:`PENDING`.

        Errors of ``then`` other than a store failure propagate (the record stays)."""
        pending = self.pending.get(key)
        if pending is None:
            try:
                newest = await self._record(key, delivery, outcome, once)
            except RETRIED as exc:
                pending = self._hold(key, delivery, outcome, once, then, what, claim_id, exc)
            else:
                try:
                    return await then(newest)
                except RETRIED as exc:
                    pending = self._hold(key, delivery, outcome, once, then, what, claim_id, exc)
                    pending.recorded, pending.newest = True, newest
        return await self._wait(pending, wait)

    async def flush(self, timeout: float) -> int:
        """Retry every pending completion now, for up to ``timeout`` s; how many are left."""
        self._poke()
        deadline = time.monotonic() + timeout
        while self.pending and time.monotonic() < deadline:
            futures = [p.future for p in self.pending.values() if p.future is not None]
            await asyncio.wait(futures, timeout=max(0.0, deadline - time.monotonic()))
        return len(self.pending)

    async def close(self, timeout: float) -> int:
        """Graceful stop: :meth:`flush` for up to ``timeout`` s, then stop retrying and log
        every completion left (lost: IronMQ's redelivery runs its job again); how many."""
        left = await self.flush(timeout)
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        for pending in list(self.pending.values()):
            logger.error(
                "%s of message %s finished %.0fs ago but the %s store never recorded it: lost "
                "at shutdown, so IronMQ's redelivery runs it again once its claim's lease ends",
                pending.what,
                pending.key[0],
                time.monotonic() - pending.since,
                self.store.kind,
                extra={**EVERY_TIME, "message_id": pending.key[0]},
            )
            self._settle(pending, PENDING)
        return left

    async def discard(self) -> None:
        """Stop retrying and forget every pending completion, silently (its caller reports)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        for pending in list(self.pending.values()):
            self._settle(pending, PENDING)

    # --- the retries ----------------------------------------------------------------------

    async def _record(
        self, key: Key, delivery: Delivery, outcome: Outcome, once: bool
    ) -> Delivery | None:
        if once:
            return await self.store.complete_once(
                key, outcome=outcome, ttl=self.ttl, delivery=delivery
            )
        return await self.store.complete(key, outcome=outcome, ttl=self.ttl, delivery=delivery)

    def _hold(
        self,
        key: Key,
        delivery: Delivery,
        outcome: Outcome,
        once: bool,
        then: Then,
        what: str,
        claim_id: str | None,
        exc: BaseException,
    ) -> Pending:
        pending = Pending(key, delivery, outcome, once, then, what, claim_id)
        pending.future = asyncio.get_running_loop().create_future()
        self.pending[key] = pending
        self.retried += 1
        if self.counters is not None:
            self.counters.add("completions_retried")
        logger.warning(
            "could not record %s of message %s (%s): retrying until the %s store records it%s "
            "(%d pending)",
            what,
            key[0],
            exc,
            self.store.kind,
            "; a redelivery meanwhile gets 202 here" if self.serves_pushes else "",
            len(self.pending),
            extra={**EVERY_TIME, "message_id": key[0]},
        )
        self._poke()
        return pending

    async def _wait(self, pending: Pending, wait: float) -> Any:
        future = pending.future
        if future is None or wait <= 0:
            return PENDING
        done, _ = await asyncio.wait([future], timeout=wait)
        return future.result() if done else PENDING

    def _poke(self) -> None:
        if self._wake is None:
            self._wake = asyncio.Event()
        self._wake.set()
        task = self._task
        if self.pending and (task is None or task.done()):
            self._task = asyncio.get_running_loop().create_task(self._loop())

    async def _loop(self) -> None:
        failures = 0
        while self.pending:
            assert self._wake is not None
            self._wake.clear()
            batch = sorted(self.pending.values(), key=lambda p: p.since)[:_BATCH]
            outcomes = await asyncio.gather(*(self._advance(p) for p in batch))
            if any(outcomes):  # the store answers: go on at once
                failures = 0
                continue
            failures += 1
            delay = backoff_delay(failures, base=self.backoff, cap=self.max_backoff)
            with anyio.move_on_after(delay):
                await self._wake.wait()

    async def _advance(self, pending: Pending) -> bool:
        """One more try of ``pending``; False when the store failed again."""
        try:
            if not pending.recorded:
                answer = await self._record(
                    pending.key, pending.delivery, pending.outcome, pending.once
                )
                # ``once`` and "handled already" after a failed try: that try may be what
                # recorded it (its answer lost), so the ack is sent anyway (at worst IronMQ
                # answers it 404, counted as a late ack).
                pending.newest = answer or pending.delivery
                pending.recorded = True
                logger.info(
                    "%s of message %s recorded after %.1fs (try %d)",
                    pending.what,
                    pending.key[0],
                    time.monotonic() - pending.since,
                    pending.attempts + 1,
                    extra={"message_id": pending.key[0]},
                )
            result = await pending.then(pending.to_ack())
        except RETRIED:
            pending.attempts += 1
            return False
        except Exception as exc:  # the follow-up failed for good: the record stays
            logger.exception(
                "%s of message %s is recorded handled, but acknowledging it failed",
                pending.what,
                pending.key[0],
            )
            self._settle(pending, exc)
            return True
        self._settle(pending, result)
        return True

    def _settle(self, pending: Pending, result: Any) -> None:
        if self.pending.get(pending.key) is pending:
            del self.pending[pending.key]
        future = pending.future
        if future is not None and not future.done():
            if isinstance(result, BaseException):
                future.set_exception(result)
                future.exception()  # retrieved: nobody may be waiting any more
            else:
                future.set_result(result)
