"""The pusher's background tries: tracked, so a stop cancels them and a crash is logged.

::

    tasks = TaskSet("dev server: delivery task failed")
    tasks.spawn(loop, push_once())
    await tasks.cancel_all()
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger("ironpush.devserver")


class TaskSet:
    """Tasks in flight; ``len()`` counts them (the pusher's back-pressure figure)."""

    def __init__(self, failure_message: str) -> None:
        self._tasks: set[asyncio.Task[None]] = set()
        self._failure_message = failure_message

    def __len__(self) -> int:
        return len(self._tasks)

    def spawn(self, loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, None]) -> None:
        task = loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error(self._failure_message, exc_info=task.exception())

    async def cancel_all(self) -> None:
        """Cancel every task and wait until they all ended."""
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
