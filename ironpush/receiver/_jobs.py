"""The job runner behind ``Defer(job)``: bounded background tasks, drained at shutdown."""

from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

import anyio


class JobRunner:
    """At most ``capacity`` deferred jobs at once, each in its own task.

    A slot is taken with :meth:`try_reserve` *before* answering 202 (so a full runner answers
    503; :meth:`has_room` says so before any store call, and :meth:`wait_for_room` waits a
    moment for a slot first), then used by :meth:`start` or given back by :meth:`unreserve`.
    The slot bounds the job's own work: the job gives it back with :meth:`release` as soon as
    its code returns, and its task goes on *finishing* (recording the completion in the
    store, queuing the ack) without holding a slot, so a slow store round trip does not turn
    pushes away. Sync jobs run in worker threads of :attr:`limiter` (the same capacity, apart
    from the request threadpool, so long jobs cannot starve handlers). ``backlog`` (the
    outbox's unsent items and pending completions) and the finishing jobs have their own
    bound, ``max_backlog``: when acks go out slower than jobs finish (IronMQ slow or down, the
    store slow), new work gets 503 instead of the backlog growing without bound. It is a
    memory bound, not a throughput one: a healthy outbox sends in batches, so a few hundred
    unsent acks are normal at full speed::

        runner = JobRunner(32, backlog=lambda: outbox.backlog, max_backlog=10_000)
        if runner.has_room() or await runner.wait_for_room(0.25):
            if runner.try_reserve():
                runner.start(job())      # the job calls runner.release() when its work is done
    """

    def __init__(
        self,
        capacity: int,
        backlog: Callable[[], int] | None = None,
        *,
        max_backlog: int | None = None,
    ) -> None:
        if capacity < 1:
            raise ValueError("max_deferred must be >= 1")
        self.capacity = capacity
        # None: no bound (the router passes Limits.max_unsent_acks).
        self.max_backlog = math.inf if max_backlog is None else max_backlog
        self.accepting = True
        self.reserved = 0
        self._backlog = backlog or (lambda: 0)
        self.limiter = anyio.CapacityLimiter(capacity)
        self._tasks: set[asyncio.Task[None]] = set()  # every job task that has not ended
        self._running: set[asyncio.Task[None]] = set()  # those still holding their slot
        # Pushes waiting for a slot, oldest first: (deadline, future); one timer for all.
        self._room: deque[tuple[float, asyncio.Future[None]]] = deque()
        self._room_timer: asyncio.TimerHandle | None = None

    @property
    def in_flight(self) -> int:
        """Reserved slots: jobs running or about to start."""
        return self.reserved

    @property
    def finishing(self) -> int:
        """Jobs whose work is done, their completion not recorded and queued yet."""
        return len(self._tasks) - len(self._running)

    def has_room(self) -> bool:
        """Whether :meth:`try_reserve` would succeed now (without taking the slot)."""
        if not self.accepting or self.reserved >= self.capacity:
            return False
        finishing = len(self._tasks) - len(self._running)
        return self._backlog() + finishing < self.max_backlog

    async def wait_for_room(self, timeout: float) -> bool:
        """When every slot is taken, wait up to ``timeout`` s for one to be given back;
        whether there is room (False at once when draining or the backlog is full).

        Pushes answered in one event-loop turn start their jobs in the next: a burst of more
        pushes than slots would otherwise get 503 while every job is about to end. A slot
        taken by a long job is not given back in time, and the push gets 503 as before."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self.has_room():
            if not self.accepting or self.reserved < self.capacity or loop.time() >= deadline:
                return False  # draining, the backlog is full, or no slot came in time
            # One future per waiting push, woken by a slot given back (:meth:`_freed`) or at
            # its deadline, by one timer for all of them (they wait in arrival order).
            waiter: asyncio.Future[None] = loop.create_future()
            self._room.append((deadline, waiter))
            if self._room_timer is None:
                self._room_timer = loop.call_at(deadline, self._expire_room)
            try:
                await waiter
            finally:
                if not waiter.done():
                    waiter.cancel()
        return True

    def try_reserve(self) -> bool:
        """Take a slot; False when full, draining, or the outbox is behind."""
        if not self.has_room():
            return False
        self.reserved += 1
        return True

    def unreserve(self) -> None:
        """Give back a slot that :meth:`start` will not use."""
        self.reserved -= 1
        self._freed()

    def start(self, job: Coroutine[Any, Any, None], *, ends_itself: bool = False) -> None:
        """Run ``job`` in a task on a reserved slot (given back by :meth:`release`, or when
        the task ends). ``ends_itself``: the job calls :meth:`ended` with its task as its last
        step (in a ``finally``), so the task needs no done callback (one event-loop callback
        less per job: the router's deferred jobs)."""
        task = asyncio.get_running_loop().create_task(job)
        self._tasks.add(task)
        self._running.add(task)
        if not ends_itself:
            task.add_done_callback(self.ended)

    def release(self, task: asyncio.Task[Any] | None = None) -> None:
        """The running job's work is done: its slot is free now (not one event-loop turn
        later, when the task's done callback runs, nor after the store calls that record it,
        while new pushes may already be asking for one). Calling it again does nothing.
        ``task``: the job's (the current task's when not given)."""
        if task is None:
            task = asyncio.current_task()
        if task in self._running:
            self._running.discard(task)
            self.reserved -= 1
            self._freed()

    def ended(self, task: asyncio.Task[Any]) -> None:
        """``task``'s job ended: it no longer counts, and its slot is given back if
        :meth:`release` did not (it raised, or was cancelled). Calling it again does nothing."""
        self._tasks.discard(task)
        if task in self._running:  # ended without release(): cancelled before it ran, or raised
            self._running.discard(task)
            self.reserved -= 1
            self._freed()

    def _freed(self) -> None:
        """A slot was given back: the oldest push waiting for one looks again."""
        while self._room:
            waiter = self._room.popleft()[1]
            if not waiter.done():
                waiter.set_result(None)
                return

    def _expire_room(self) -> None:
        """Wake the waiting pushes whose deadline passed (they answer 503); then wait for the
        next deadline."""
        self._room_timer = None
        room = self._room
        loop = asyncio.get_running_loop()
        now = loop.time()
        while room and (room[0][1].done() or room[0][0] <= now):
            waiter = room.popleft()[1]
            if not waiter.done():
                waiter.set_result(None)
        if room:
            self._room_timer = loop.call_at(room[0][0], self._expire_room)

    async def drain(self, grace: float) -> int:
        """Stop accepting, wait up to ``grace`` seconds, cancel the rest; return how many.

        Finishing jobs are waited for too: their completions are recorded before shutdown
        goes on to flush the outbox."""
        self.accepting = False
        with anyio.move_on_after(grace):
            while self._tasks:
                await asyncio.wait(set(self._tasks))
                self._forget_ended()
        left = list(self._tasks)
        for task in left:
            task.cancel()
        if left:
            # Let cancelled jobs run their cleanup (releasing their claims) before we go on.
            await asyncio.wait(left, timeout=5.0)
            self._forget_ended()
        return len(left)

    def _forget_ended(self) -> None:
        # A job that ends itself but was cancelled before its first step never ran its
        # ``finally``: its task ended all the same.
        for task in [task for task in self._tasks if task.done()]:
            self.ended(task)
