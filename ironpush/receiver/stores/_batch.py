"""Concurrent calls of one store operation folded into one statement (or script) per batch.

A networked store spends most of a small call's cost on the call, not on its row. PostgreSQL
parses the statement, starts the executor, the transaction and its commit (a WAL flush); Redis
reads, dispatches and answers one command per script run. So, like the SQLite store's writer
(group commit, :mod:`._sqlite_writer`), the PostgreSQL and Redis stores send the quick path's
calls (``claim``, ``complete``) of one process in batches: a call joins the calls waiting for
the same operation, and a batch goes out as soon as fewer than ``max_in_flight`` of that
operation's batches are running. Idle, a call goes out alone in the event-loop turn after it
was made (no timer, no added latency); under load, the calls that arrive while a batch runs
make the next one. Each call's answer is its own row (or reply) of the batch's result; a batch
is one round trip, so it never costs the server more round trips per call than calls one by
one.

Rules a batch keeps:

- one call per key: a second call on the same key waits for the next batch, so the
  statement never touches a row twice and calls on one key keep their order;
- each call has a deadline: a batch runs under the earliest deadline of its calls (one timer
  per batch, not one per call) and a call whose deadline passed before its batch left fails
  with :class:`TimeoutError` unsent, so a call never waits past its deadline (a call
  waits at most for the batch running when it came, then its own);
- a call whose caller gave up (cancelled) before its batch left is not sent; one given up
  while its batch runs is still done by the statement (as a call cut off mid-way always may
  be), its answer dropped;
- a failure of the whole statement fails every call of the batch; a failure that may be one
  call's own (``isolate(exc)``: bad data, a deadlock with another writer) is retried call by
  call, so that only the call at fault fails (a store whose batch cannot be retried, because
  its calls are not undone by a failure, answers each call's own failure in its result
  instead: Redis' scripts);
- the batch runs in a task of its own with an empty context: what it costs is no caller's
  span (each caller's store call is its own span, around its wait).

::

    claims = Batcher(run_claims, max_batch=256, max_in_flight=1, isolate=is_data_error)
    row = await claims.submit(key, args, deadline=time.monotonic() + 2.0)   # its row, or None
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import time
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Any, Generic, TypeVar

A = TypeVar("A")
R = TypeVar("R")

#: Runs one batch before a deadline (``time.monotonic()``): the calls' arguments in, one answer
#: per call out (same order; None when the statement gave that call no row).
Run = Callable[[Sequence[A], float], Awaitable[Sequence[R | None]]]


class _Call(Generic[A, R]):
    __slots__ = ("args", "deadline", "future", "key")

    def __init__(
        self, key: Hashable, args: A, deadline: float, future: asyncio.Future[R | None]
    ) -> None:
        self.key = key
        self.args = args
        self.deadline = deadline
        self.future = future


class Batcher(Generic[A, R]):
    """Folds concurrent :meth:`submit` calls into batches run by ``run``; see the module docs."""

    def __init__(
        self,
        run: Run[A, R],
        *,
        max_batch: int = 256,
        max_in_flight: int = 2,
        isolate: Callable[[BaseException], bool] = lambda exc: False,
    ) -> None:
        self._run = run
        self.max_batch = max(1, max_batch)
        self.max_in_flight = max(1, max_in_flight)
        self._isolate = isolate
        self._waiting: collections.deque[_Call[A, R]] = collections.deque()
        self._in_flight = 0
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()
        self.batches = 0  # statements sent (calls / batches = the mean batch size)
        self.calls = 0

    @property
    def waiting(self) -> int:
        """Calls queued for a batch that has not left yet (what a store bounds)."""
        return len(self._waiting)

    def submit(self, key: Hashable, args: A, *, deadline: float) -> asyncio.Future[R | None]:
        """Queue this call for the next batch that can take it, by ``deadline``
        (``time.monotonic()``, the event loop's clock); await the answer (None: no row) or
        :class:`TimeoutError`. Cancelling the awaiting task cancels the future: the call is
        skipped if its batch has not left yet."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R | None] = loop.create_future()
        self._waiting.append(_Call(key, args, deadline, future))
        self._schedule(loop)
        return future

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        if not self._scheduled and self._in_flight < self.max_in_flight:
            self._scheduled = True
            loop.call_soon(self._start, loop)  # after this turn: its other calls join

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._scheduled = False
        while self._waiting and self._in_flight < self.max_in_flight:
            batch = self._take()
            if not batch:
                return
            self._in_flight += 1
            task = loop.create_task(self._send(batch), context=contextvars.Context())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _take(self) -> list[_Call[A, R]]:
        batch: list[_Call[A, R]] = []
        keys: set[Hashable] = set()
        later: list[_Call[A, R]] = []
        now = time.monotonic()
        while self._waiting and len(batch) < self.max_batch:
            call = self._waiting.popleft()
            if call.future.done():  # its caller gave up
                continue
            if call.deadline <= now:
                _fail(call.future, TimeoutError())
                continue
            if call.key in keys:
                later.append(call)
            else:
                keys.add(call.key)
                batch.append(call)
        self._waiting.extendleft(reversed(later))
        return batch

    async def _send(self, batch: list[_Call[A, R]]) -> None:
        try:
            await self._answer(batch)
        finally:
            self._in_flight -= 1
            if self._waiting:
                self._schedule(asyncio.get_running_loop())

    async def _answer(self, batch: list[_Call[A, R]]) -> None:
        self.batches += 1
        self.calls += len(batch)
        deadline = min(call.deadline for call in batch)
        try:
            answers = await self._run([call.args for call in batch], deadline)
        except asyncio.CancelledError:
            for call in batch:
                call.future.cancel()
            raise
        except BaseException as exc:
            if len(batch) > 1 and self._isolate(exc):
                await self._one_by_one(batch)
                return
            for call in batch:
                _fail(call.future, exc)
            return
        for call, answer in zip(batch, answers, strict=True):
            if not call.future.done():
                call.future.set_result(answer)

    async def _one_by_one(self, batch: list[_Call[A, R]]) -> None:
        for call in batch:
            if call.future.done():
                continue
            try:
                [answer] = await self._run([call.args], call.deadline)
            except asyncio.CancelledError:
                for rest in batch:
                    rest.future.cancel()
                raise
            except BaseException as exc:
                _fail(call.future, exc)
            else:
                if not call.future.done():
                    call.future.set_result(answer)

    async def wait_idle(self) -> None:
        """Wait for the batches running now to end (each is bounded by the store's timeout);
        calls still waiting go out later, on whatever connections the store has then."""
        tasks = list(self._tasks)
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


def _fail(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
