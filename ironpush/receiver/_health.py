"""What ``/_health`` judges by: the store's probe, and how many recent pushes were refused.

:class:`RefusalWindow` counts, per second over the last ``span`` seconds, the verified pushes
and those the router refused with 503 (capacity full, store unavailable). :class:`StoreProbe`
runs ``store.check()`` and ``store.depth()`` under a deadline, one probe at a time, so a hung
store makes health answer 503 in bounded time instead of hanging with it::

    window = RefusalWindow()
    window.record(time.perf_counter(), refused=True)
    window.verdict(time.perf_counter(), threshold=0.9)  # "12 of the last 12 pushes ..." or None
"""

from __future__ import annotations

import asyncio
import time

from .._errors import StoreUnavailable
from .stores._base import Store

__all__ = ["RefusalWindow", "StoreProbe"]

#: Fewer verified pushes than this in the window say nothing about health.
MIN_PUSHES = 10


class RefusalWindow:
    """Pushes and 503 refusals per second, over the last ``span`` seconds (a ring of slots)."""

    __slots__ = ("_pushes", "_refused", "_seconds", "span")

    def __init__(self, span: int = 30) -> None:
        self.span = span
        self._seconds = [-1] * span
        self._pushes = [0] * span
        self._refused = [0] * span

    def record(self, now: float, refused: bool) -> None:
        """Count one verified push answered at ``now`` (``time.perf_counter()`` seconds)."""
        second = int(now)
        i = second % self.span
        if self._seconds[i] != second:
            self._seconds[i], self._pushes[i], self._refused[i] = second, 0, 0
        self._pushes[i] += 1
        if refused:
            self._refused[i] += 1

    def counts(self, now: float) -> tuple[int, int]:
        """(pushes, refused) in the window that ends at ``now``."""
        oldest = int(now) - self.span
        pushes = refused = 0
        for i, second in enumerate(self._seconds):
            if second > oldest:
                pushes += self._pushes[i]
                refused += self._refused[i]
        return pushes, refused

    def verdict(self, now: float, *, threshold: float) -> str | None:
        """Why health fails (more than ``threshold`` of the recent pushes refused), or None."""
        pushes, refused = self.counts(now)
        if pushes < MIN_PUSHES or refused <= threshold * pushes:
            return None
        return f"{refused} of the last {pushes} pushes were refused with 503 (last {self.span}s)"


class StoreProbe:
    """``store.check()`` then ``store.depth()``, bounded by ``timeout`` seconds.

    Concurrent callers share the probe in flight, so a store that hangs costs one pending
    probe, not one per health request.
    """

    def __init__(self, store: Store, *, timeout: float) -> None:
        self.store = store
        self.timeout = timeout
        self._task: asyncio.Future[int] | None = None

    async def run(self) -> tuple[int | None, str | None]:
        """(outbox depth, None) when the store is fine, else (None, why it is not)."""
        task = self._task
        loop = asyncio.get_running_loop()
        if task is None or task.done() or task.get_loop() is not loop:
            task = self._task = loop.create_task(self._probe())
            task.add_done_callback(_retrieve)  # a probe that fails after its deadline is not lost
        started = time.monotonic()
        try:
            return await asyncio.wait_for(asyncio.shield(task), self.timeout), None
        except TimeoutError:
            waited = time.monotonic() - started
            return None, f"store {self.store.kind} did not answer within {waited:.1f}s"
        except StoreUnavailable as exc:
            return None, f"store {self.store.kind} unavailable: {exc}"
        except Exception as exc:  # the message of a foreign error may carry a DSN: the type only
            return None, f"store {self.store.kind} failed: {type(exc).__name__}"

    def cancel(self) -> None:
        """Cancel a probe still in flight on this event loop (at shutdown)."""
        task, self._task = self._task, None
        if task is not None and not task.done() and task.get_loop() is asyncio.get_running_loop():
            task.cancel()

    async def _probe(self) -> int:
        await self.store.check()
        return await self.store.depth()


def _retrieve(task: asyncio.Future[int]) -> None:
    if not task.cancelled():
        task.exception()
