"""How busy the dev server is, from running counts: ``/_dev/state`` and ``/_dev/idle``.

Nothing here looks at messages one by one: the queues keep counts of their messages by state
and the store a count of messages being pushed (:mod:`.state`), so a pending ``/_dev/idle``
costs nothing per finished push and ``/_dev/state`` costs the same at any queue size. ::

    await asyncio.wait_for(store.activity.idle_waiter("dev", "jobs"), 10)
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._state import Store

__all__ = ["Activity"]


class Activity:
    """Counts of a :class:`~ironpush.devserver._state.Store` and the waiters for idleness."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.held_posts = 0  # posts waiting for the pusher's backlog to shrink (api)
        self._idle_waiters: list[tuple[str | None, str | None, asyncio.Future[None]]] = []

    def busy(self, project: str | None, queue: str | None) -> int:
        """Messages being pushed (of one project and/or queue when given)."""
        projects = self.store.projects
        if project is None and queue is None:
            return self.store.pushing
        if project is not None and queue is not None:
            q = projects.get(project, {}).get(queue)
            return q.counts["pushing"] if q is not None else 0
        chosen = projects.values() if project is None else [projects.get(project, {})]
        return sum(
            q.counts["pushing"]
            for queues in chosen
            for name, q in queues.items()
            if queue is None or name == queue
        )

    def idle_waiter(self, project: str | None, queue: str | None) -> asyncio.Future[None]:
        """A future set once nothing (of that project/queue) is being pushed."""
        fut: asyncio.Future[None] = self.store.loop.create_future()
        self._idle_waiters.append((project, queue, fut))
        self.check_idle()
        return fut

    def check_idle(self) -> None:
        """Wake the waiters whose messages are all pushed (after a push finished)."""
        if not self._idle_waiters:
            return
        waiting = []
        for project, queue, fut in self._idle_waiters:
            if fut.done():
                continue
            if self.busy(project, queue) == 0:
                fut.set_result(None)
            else:
                waiting.append((project, queue, fut))
        self._idle_waiters = waiting

    def summary(self) -> dict[str, Any]:
        """Counts per project and queue (``GET /_dev/state``)."""
        store = self.store
        projects: dict[str, Any] = {}
        for project, queues in sorted(store.projects.items()):
            projects[project] = {
                name: {
                    "type": q.type,
                    "size": len(q.messages),
                    "total_messages": q.total_messages,
                    "ready": q.counts["ready"],
                    "delayed": q.counts["delayed"],
                    "reserved": q.counts["reserved"],
                    "pushing": q.counts["pushing"],
                    "subscribers": len(q.subscribers),
                }
                for name, q in sorted(queues.items())
            }
        return {"projects": projects, "finished": len(store.finished), "live": len(store.live)}
