"""Requests that wait on the state: long-polling reservations and ``/_dev/idle``.

Both are futures on the server's event loop, woken by the pusher when a state operation says
what changed (a queue got a ready message, a message stopped being pushed): nothing polls, and
an idle check costs a running count, not a scan (:meth:`~._ledger.Ledger.busy`). ::

    await asyncio.wait_for(waiters.idle("dev", "jobs", ledger.busy), 10)
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

#: How many messages are being pushed, of one project and/or queue (None: any).
Busy = Callable[[str | None, str | None], int]


class Waiters:
    """The futures of one dev server (see the module docstring)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._ready: dict[tuple[str, str], list[asyncio.Future[None]]] = {}
        self._idle: list[tuple[str | None, str | None, asyncio.Future[None]]] = []

    # ------------------------------------------------------------------ long-polling reservations

    def ready(self, project: str, queue: str) -> asyncio.Future[None]:
        """A future set when a message becomes ready on that queue (or the queue is deleted)."""
        fut: asyncio.Future[None] = self.loop.create_future()
        waiting = [f for f in self._ready.get((project, queue), ()) if not f.done()]
        self._ready[(project, queue)] = [*waiting, fut]
        return fut

    def waiting(self, project: str, queue: str) -> int:
        """Reservations long-polling that queue now."""
        return sum(not f.done() for f in self._ready.get((project, queue), ()))

    def wake(self, queues: Iterable[tuple[str, str]]) -> None:
        for key in queues:
            for fut in self._ready.pop(key, ()):
                if not fut.done():
                    fut.set_result(None)

    def wake_all(self) -> None:
        self.wake(list(self._ready))

    # ------------------------------------------------------------------ idleness

    def idle(self, project: str | None, queue: str | None, busy: Busy) -> asyncio.Future[None]:
        """A future set once nothing (of that project/queue) is being pushed."""
        fut: asyncio.Future[None] = self.loop.create_future()
        self._idle.append((project, queue, fut))
        self.check_idle(busy)
        return fut

    def check_idle(self, busy: Busy) -> None:
        """Wake the idle waiters whose messages are all pushed (after a push finished)."""
        waiting = []
        for project, queue, fut in self._idle:
            if fut.done():
                continue
            if busy(project, queue) == 0:
                fut.set_result(None)
            else:
                waiting.append((project, queue, fut))
        self._idle = waiting
