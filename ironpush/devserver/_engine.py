"""The running dev server: the one object the API, the control plane and the inspector talk to.

Each operation is a state operation (:mod:`._state`, data only) whose changes go to the pusher
(:mod:`._pusher`, which owns time); the ones that change something wait for the database
before returning, so **a 2xx means the change is committed** (with ``db=PATH``). Nothing
outside this module reaches into the state's or the pusher's parts. ::

    engine = Engine(DevConfig())            # on the server's event loop (the app's lifespan)
    ids = await engine.post("dev", "jobs", [NewMessage("hello")])
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from typing import Any

from .._devserver_settings import DevConfig
from .._errors import APIError
from ..client._models import Subscriber
from ._events import EventHub
from ._journal import Journal
from ._ledger import Changes, Ledger
from ._limits import Limits
from ._persistence import Persistence
from ._pusher import Pusher
from ._records import MessageRecord, QueueRecord
from ._replay import Replay, replay
from ._state import BrokerState
from ._transitions import PushState
from ._validation import NewMessage, QueuePatch
from ._waiters import Waiters


class Engine:
    """The state, the pusher and what they tell people; built by the app's lifespan."""

    def __init__(self, config: DevConfig) -> None:
        self.config = config
        self.loop = asyncio.get_running_loop()
        self.limits = Limits.of(strict=config.strict, max_message_size=config.max_message_size)
        self.db = Persistence(config.db) if config.db else None
        self.state = BrokerState(Ledger(config.retention, self.db))
        self.journal = Journal(config.retention.attempts)
        self.waiters = Waiters(self.loop)
        self.pusher = Pusher(self.state, config, journal=self.journal, waiters=self.waiters)
        self.held_posts = 0  # posts waiting for the pusher's backlog to shrink
        if self.db is not None:
            self.pusher.settle(self.state.load())
            self.db.start(self.loop)

    @property
    def events(self) -> EventHub:
        """Every push, ack, expiry, report and replay (``/_dev/events``, the inspector)."""
        return self.journal.events

    def activate(self, public_url: str) -> None:
        """Start pushing, with ack URLs under ``public_url`` (known once the socket is bound)."""
        self.pusher.activate(public_url)

    async def close(self) -> None:
        await self.pusher.close()
        if self.db is not None:
            await asyncio.to_thread(self.db.close)

    async def _done(self, changes: Changes) -> None:
        """Hand ``changes`` to the pusher and wait until they are committed."""
        self.pusher.settle(changes)
        await self._durable()

    async def _durable(self) -> None:
        """Wait until every change made so far is committed (no-op in memory)."""
        if self.db is not None:
            await self.db.barrier()

    # ------------------------------------------------------------------ reading

    def queue(self, project: str, name: str) -> QueueRecord:
        return self.state.ledger.queue(project, name)

    def queues(self, project: str | None = None) -> Iterator[QueueRecord]:
        return self.state.ledger.queues(project)

    def list_queues(
        self, project: str, *, prefix: str | None, previous: str | None, per_page: int
    ) -> list[QueueRecord]:
        return self.state.admin.list_queues(
            project, prefix=prefix, previous=previous, per_page=per_page
        )

    def message(self, q: QueueRecord, mid: str, *, finished: bool = False) -> MessageRecord:
        return self.state.ledger.message(q, mid, finished=finished)

    def kept(self, q: QueueRecord, mid: str) -> MessageRecord | None:
        return self.state.ledger.kept(q, mid)

    def finished_of(self, q: QueueRecord, limit: int) -> list[MessageRecord]:
        """The latest finished push messages of ``q``, newest first."""
        finished = reversed(self.state.ledger.finished.values())
        mine = (m for m in finished if (m.project, m.queue) == (q.project, q.name))
        return list(itertools.islice(mine, limit))

    def peek(self, q: QueueRecord, n: int) -> list[MessageRecord]:
        return self.state.pull.peek(q, n)

    def attempts(self, message_id: str) -> list[dict[str, Any]]:
        return self.journal.attempts(message_id)

    def deliveries(self, wanted: Mapping[str, str], limit: int) -> list[dict[str, Any]]:
        found = [e for e in self.journal.deliveries if all(e[k] == v for k, v in wanted.items())]
        return found[-limit:] if limit else []

    # ------------------------------------------------------------------ queues

    def push_queue(self, project: str, name: str) -> QueueRecord:
        return self.state.admin.push_queue(project, name)

    async def put_queue(self, project: str, name: str, patch: QueuePatch) -> QueueRecord:
        q = self.state.admin.put_queue(project, name, patch)
        await self._durable()
        return q

    async def update_queue(self, project: str, name: str, patch: QueuePatch) -> QueueRecord:
        q = self.state.admin.update_queue(project, name, patch)
        await self._durable()
        return q

    async def delete_queue(self, project: str, name: str) -> None:
        await self._done(self.state.delete_queue(project, name))

    async def add_subscribers(self, project: str, name: str, subs: list[Subscriber]) -> None:
        self.state.admin.add_subscribers(project, name, subs)
        await self._durable()

    async def replace_subscribers(self, project: str, name: str, subs: list[Subscriber]) -> None:
        await self._done(self.state.replace_subscribers(project, name, subs))

    async def remove_subscribers(self, project: str, name: str, subs: list[Subscriber]) -> None:
        await self._done(self.state.remove_subscribers(project, name, subs))

    async def replace_alerts(self, project: str, name: str, alerts: list[dict[str, Any]]) -> None:
        self.state.admin.replace_alerts(project, name, alerts)
        await self._durable()

    async def remove_alerts(self, project: str, name: str, ids: Sequence[str]) -> None:
        self.state.admin.remove_alerts(project, name, ids)
        await self._durable()

    # ------------------------------------------------------------------ messages

    async def post(self, project: str, name: str, items: list[NewMessage]) -> list[str]:
        """Post (after the back-pressure wait, for a push queue); the new ids."""
        await self._room_to_push(project, name)
        ids, changes = self.state.post(project, name, items)
        await self._done(changes)
        return ids

    async def _room_to_push(self, project: str, name: str) -> None:
        """Back-pressure: hold a post to a push queue while the pusher's backlog is over its bound.

        The answer waits (the client slows to the push rate) up to ``backlog_wait`` seconds, then
        is 503 ``Retry-After: 1`` with nothing stored. A short poll: it runs only while over the
        bound.
        """
        settings, pusher = self.config.pushes, self.pusher
        q = self.state.ledger.find_queue(project, name)
        bound = settings.max_backlog
        if q is None or not q.is_push or not bound or pusher.backlog < bound:
            return
        deadline = self.loop.time() + settings.backlog_wait
        self.held_posts += 1
        try:
            while pusher.backlog >= bound:
                if self.loop.time() >= deadline:
                    raise APIError(
                        503,
                        f"the dev server's pusher is {pusher.backlog} pushes behind "
                        f"(max_push_backlog={bound}): retry later",
                    )
                await asyncio.sleep(0.005)
        finally:
            self.held_posts -= 1

    async def reserve(
        self,
        q: QueueRecord,
        *,
        n: int,
        timeout: float | None,
        delete: bool,
        wait: float,
        gone: Callable[[], Awaitable[None]] | None = None,
    ) -> list[MessageRecord]:
        """Reserve up to ``n``; with ``wait``, long-poll until one is ready (or ``wait`` ends).

        ``gone`` returns when the client has disconnected: a long poll nobody reads any more
        stops at once, so no message is reserved for a caller that left (and a shutdown does
        not wait for it).
        """
        messages, changes = self.state.pull.reserve(q, n=n, timeout=timeout, delete=delete)
        deadline = self.loop.time() + wait
        left_us = asyncio.ensure_future(gone()) if gone is not None and not messages else None
        try:
            while not messages and (left := deadline - self.loop.time()) > 0:
                ready = self.waiters.ready(q.project, q.name)
                await asyncio.wait(
                    {ready, *([left_us] if left_us else [])},
                    timeout=left,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if not ready.done() or (left_us is not None and left_us.done()):
                    ready.cancel()  # no longer counted as a waiting reservation
                    break
                self.pusher.settle(changes)
                messages, changes = self.state.pull.reserve(q, n=n, timeout=timeout, delete=delete)
        finally:
            if left_us is not None:
                left_us.cancel()
        await self._done(changes)
        return messages

    async def delete(self, q: QueueRecord, mid: str, reservation_id: str | None) -> None:
        await self._done(self.state.pull.delete(q, mid, reservation_id))

    async def delete_many(self, q: QueueRecord, items: list[tuple[str, str | None]]) -> None:
        await self._done(self.state.pull.delete_many(q, items))

    async def clear(self, q: QueueRecord) -> None:
        await self._done(self.state.pull.clear(q))

    async def touch(
        self, q: QueueRecord, mid: str, reservation_id: str, timeout: float | None
    ) -> str:
        new, changes = self.state.pull.touch(q, mid, reservation_id, timeout)
        await self._done(changes)
        return new

    async def release(self, q: QueueRecord, mid: str, reservation_id: str, delay: float) -> None:
        await self._done(self.state.pull.release(q, mid, reservation_id, delay))

    async def ack(
        self, q: QueueRecord, mid: str, name: str, reservation_id: str | None, *, via: str
    ) -> None:
        """Acknowledge a 202'd push: ``via`` the API delete (``subscriber_name``) or the ack URL.

        ``reservation_id`` None (the API delete with a name alone) acknowledges the one live
        reservation of that subscriber. The message is looked up once; every refusal is
        recorded as a ``refused`` ack event.
        """
        rid = reservation_id
        try:
            m = self.state.ledger.message(q, mid, finished=True)
            rid = rid or self.state.push.reservation_of(m, name)
            changes = self.state.push.ack(m, q, rid, name)
        except APIError as exc:
            self.journal.ack(q, mid, name, rid, via=via, error=(exc.status_code, exc.msg))
            raise
        self.journal.ack(q, mid, name, rid, via=via, error=None)
        await self._done(changes)

    # ------------------------------------------------------------------ control plane

    def summary(self) -> dict[str, Any]:
        """``GET /_dev/state``: counts per queue and the pusher's, all running counts."""
        pusher = self.pusher
        data = self.state.ledger.summary()
        data["pusher"] = {
            "attempts": pusher.attempts,
            "in_flight": pusher.in_flight,
            "pushing": self.state.ledger.pushing,
            "backlog": pusher.backlog,
            "held_posts": self.held_posts,
        }
        data["db"] = self.config.db
        return data

    async def reset(self) -> None:
        """Forget every queue, message and attempt record (and wipe the database)."""
        changes = self.state.reset()
        self.journal.deliveries.clear()
        self.waiters.wake_all()
        await self._done(changes)

    async def wait_idle(self, project: str | None, queue: str | None, timeout: float) -> int:
        """Wait until nothing (of that project/queue) is being pushed; how many still are."""
        busy = self.state.ledger.busy
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.waiters.idle(project, queue, busy), timeout)
        return busy(project, queue)

    async def expire(
        self, project: str, queue: str, mid: str, subscriber: str | None, *, wait: float
    ) -> list[dict[str, Any]]:
        """End a message's reservations now (``POST /_dev/expire``); what was expired.

        Waits up to ``wait`` seconds for a reservation to exist (a 202 still on its way).
        """
        deadline = self.loop.time() + wait
        while True:
            m = self.message(self.queue(project, queue), mid, finished=True)
            expired = self._expire(m, subscriber)
            if expired or self.loop.time() >= deadline:
                break
            await asyncio.sleep(0.002)  # dev-only control: a short poll while a 202 is on its way
        await self._durable()
        return expired

    def _expire(self, m: MessageRecord, subscriber: str | None) -> list[dict[str, Any]]:
        if self.state.ledger.alive(m) is None:
            return []
        if m.push is not None:
            expired = []
            for p in list(m.push):
                rid = p.reservation_id
                wanted = p.status is PushState.RESERVED and subscriber in (None, p.name)
                if wanted and self.pusher.expire(m, p):
                    expired.append({"subscriber": p.name, "reservation_id": rid})
            return expired
        if subscriber is not None:
            return []
        rid, changes = self.state.pull.expire_reservation(m)
        self.pusher.settle(changes)
        return [{"subscriber": None, "reservation_id": rid}] if rid else []

    async def replay(self, ask: Replay) -> dict[str, Any]:
        """Push a message again (see :mod:`._replay`); what was done."""
        done, changes = replay(self.state, ask)
        m = self.state.ledger.live.get(done["message_id"])
        if m is not None and done["how"] != "already being pushed":
            source = ask.message_id if done["how"] == "new message" else None
            self.journal.replayed(m, done["subscribers"], how=done["how"], source_id=source)
        await self._done(changes)
        return done
