"""The job runner behind ``Defer(job)``: bounded background tasks, drained at shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import anyio


class JobRunner:
    """At most ``capacity`` deferred jobs at once, each in its own task.

    A slot is reserved with :meth:`try_reserve` *before* answering 202 (so a full runner
    answers 503), then used by :meth:`start` or given back by :meth:`unreserve`. Sync jobs run
    in worker threads of :attr:`limiter` (the same capacity, apart from the request
    threadpool, so long jobs cannot starve handlers). ``backlog`` (the outbox's unsent items)
    has its own bound, ``max_backlog``: when acks go out slower than jobs finish (IronMQ slow
    or down), new work gets 503 instead of the outbox growing without bound. It is a memory
    bound, not a throughput one: a healthy outbox sends in batches, so a few hundred unsent
    acks are normal at full speed::

        runner = JobRunner(32, backlog=lambda: outbox.backlog, max_backlog=10_000)
        if runner.try_reserve():
            runner.start(job())
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
        self.max_backlog = capacity if max_backlog is None else max_backlog
        self.accepting = True
        self.reserved = 0
        self._backlog = backlog or (lambda: 0)
        self.limiter = anyio.CapacityLimiter(capacity)
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def in_flight(self) -> int:
        """Reserved slots: jobs running or about to start."""
        return self.reserved

    def try_reserve(self) -> bool:
        """Take a slot; False when full, draining, or the outbox is behind."""
        if not self.accepting or self.reserved >= self.capacity:
            return False
        if self._backlog() >= self.max_backlog:
            return False
        self.reserved += 1
        return True

    def unreserve(self) -> None:
        """Give back a slot that :meth:`start` will not use."""
        self.reserved -= 1

    def start(self, job: Coroutine[Any, Any, None]) -> None:
        """Run ``job`` in a task on a reserved slot (given back when it ends)."""
        task = asyncio.get_running_loop().create_task(job)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def release(self) -> None:
        """Give back the running job's slot; a job calls it last, so that the slot is free now
        rather than one event-loop turn later (when the task's done callback runs), while
        new pushes may already be asking for one."""
        task = asyncio.current_task()
        if task in self._tasks:
            self._tasks.discard(task)
            self.reserved -= 1

    def _done(self, task: asyncio.Task[None]) -> None:
        if task in self._tasks:  # ended without release(): cancelled before it ran, or raised
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
