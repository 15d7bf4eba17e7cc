"""The dev server's state: projects, queues, messages, reservations (memory, optionally SQLite).

Everything runs on the server's event loop, so no locks are needed. Delays, reservation
expiry and message expiration are ``loop.call_later`` timers computed from wall-clock
deadlines (the loop's timer heap is the scheduler); nothing polls. With ``db=PATH`` every change
is written through to SQLite (see :mod:`ironpush.devserver._persistence`) and the state is
rebuilt from it at startup.

Semantics where IronMQ's documentation is silent:

- ``size`` counts every message still in the queue (ready, delayed, reserved, being pushed);
  ``total_messages`` every message ever posted.
- A reserved message deleted without its ``reservation_id`` gets 403; deleting with a stale one
  gets 403 ``Reservation timed out``.
- ``delete_multiple`` is all-or-nothing: the first bad id fails the call and nothing is deleted.
- ``message_expiration`` applies to pull messages; push messages live until delivered or failed.

Every operation costs the same at 1,000 or 100,000 messages: each queue keeps its ready ids in
delivery order (deleting one removes it at once), running counts of its messages by state, and
the store a running count of messages being pushed, so reserve, peek, ``/_dev/state`` and the
idle waiters never scan the messages (``benchmarks/bench_devserver_scaling.py``). Every change
of a live message's state goes through :meth:`Store._set_state` to keep those counts exact.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._errors import APIError
from ._activity import Activity
from ._entities import IdGenerator, MessageState, QueueState, new_reservation_id
from ._options import DevConfig
from ._persistence import Persistence
from ._queues import QueueAdmin, not_found, timed_out
from ._validation import NewMessage

if TYPE_CHECKING:
    from ._pusher import Pusher

__all__ = ["Store"]


class Store(QueueAdmin):
    """Queues and messages of every project; see the module docstring."""

    pusher: Pusher

    def __init__(self, config: DevConfig, db: Persistence | None = None) -> None:
        self.config = config
        self.db = db
        self.projects: dict[str, dict[str, QueueState]] = {}
        self.live: dict[str, MessageState] = {}
        self.finished: OrderedDict[str, MessageState] = OrderedDict()
        self.ids = IdGenerator()
        self._front = 0
        self._back = 0
        self.loop = asyncio.get_running_loop()
        self.pushing = 0  # messages being pushed, every queue (a running count)
        self.activity = Activity(self)

    # ------------------------------------------------------------------ helpers

    def at(self, when: float, callback: Callable[..., None], *args: Any) -> asyncio.TimerHandle:
        """Run ``callback`` at wall-clock time ``when`` (now if it has passed)."""
        return self.loop.call_later(max(0.0, when - time.time()), callback, *args)

    def save(self, m: MessageState) -> None:
        if self.db is not None:
            self.db.put_message(m.id, m.project, m.queue, m.to_row())

    async def durable(self) -> None:
        """Wait until every change made so far is committed (no-op in memory)."""
        if self.db is not None:
            await self.db.barrier()

    def alive(self, m: MessageState) -> QueueState | None:
        """The queue of a message that is still live, or None if it was deleted meanwhile."""
        if self.live.get(m.id) is not m:
            return None
        return self.projects.get(m.project, {}).get(m.queue)

    # ------------------------------------------------------------------ bookkeeping

    def _count(self, q: QueueState, state: str, delta: int) -> None:
        q.counts[state] += delta
        if state == "pushing":
            self.pushing += delta

    def _add(self, q: QueueState, m: MessageState) -> None:
        q.messages[m.id] = m
        self.live[m.id] = m
        self._count(q, m.state, 1)

    def _set_state(self, q: QueueState, m: MessageState, state: str) -> None:
        if m.state != state:
            self._count(q, m.state, -1)
            self._count(q, state, 1)
            m.state = state

    def _drop(self, q: QueueState, m: MessageState) -> None:
        if q.messages.pop(m.id, None) is not None:
            self._count(q, m.state, -1)
        self.live.pop(m.id, None)
        q.ready.pop(m.id, None)

    def revive(self, q: QueueState, m: MessageState) -> None:
        """A finished push message back in its queue, being pushed again (a replay)."""
        self.finished.pop(m.id, None)
        m.state, m.finished_at = "pushing", None
        self._add(q, m)

    # ------------------------------------------------------------------ queues

    def delete_queue(self, project: str, name: str) -> None:
        q = self.queue(project, name)
        for m in q.messages.values():
            m.cancel_timers()
            self.live.pop(m.id, None)
        self.pushing -= q.counts["pushing"]
        q.messages.clear()
        q.ready.clear()
        q.counts.clear()
        del self.projects[project][name]
        for mid in [k for k, m in self.finished.items() if (m.project, m.queue) == (project, name)]:
            del self.finished[mid]
        self._wake(q)
        self.check_idle()
        if self.db is not None:
            self.db.delete_queue(project, name)

    # ------------------------------------------------------------------ posting

    def post(self, project: str, name: str, items: list[NewMessage]) -> list[str]:
        """Put messages on a queue (a missing queue is created as a pull queue, as v3 does)."""
        q = self.projects.get(project, {}).get(name)
        if q is None:
            q = QueueState(project, name)
            self.projects.setdefault(project, {})[name] = q
        now = time.time()
        ids = []
        for item in items:
            m = MessageState(
                self.ids.next(), project, name, item.body, item.push_headers, posted_at=now
            )
            q.total_messages += 1
            ids.append(m.id)
            if q.is_push and q.subscribers:
                # Only subscribers present now get this message (as the hosted service).
                self.pusher.start(m, q, now + item.delay)  # state "pushing", counted below
                self._add(q, m)
            else:
                self._add(q, m)
                m.expires_at = now + q.message_expiration
                m.expiry_timer = self.at(m.expires_at, self._expire, m)
                if item.delay:
                    self._delay(m, q, now + item.delay, front=False)
                else:
                    self._make_ready(m, q, front=False)
            self.save(m)
        self.save_queue(q)
        return ids

    def post_internal(self, project: str, name: str, body: str, headers: dict[str, str]) -> str:
        """Post one message from inside the server (error queues, ironmq:/// subscribers)."""
        return self.post(project, name, [NewMessage(body, 0.0, headers)])[0]

    def _make_ready(self, m: MessageState, q: QueueState, *, front: bool) -> None:
        self._set_state(q, m, "ready")
        m.available_at, m.front = None, False
        m.reservation_id = m.reserved_until = None
        q.ready[m.id] = None
        if front:
            self._front -= 1
            m.seq = self._front
            q.ready.move_to_end(m.id, last=False)
        else:
            self._back += 1
            m.seq = self._back
        self._wake(q)

    def _delay(self, m: MessageState, q: QueueState, until: float, *, front: bool) -> None:
        self._set_state(q, m, "delayed")
        m.available_at, m.front = until, front
        m.reservation_id = m.reserved_until = None
        m.timer = self.at(until, self._delay_over, m)

    def _delay_over(self, m: MessageState) -> None:
        q = self.alive(m)
        if q is not None and m.state == "delayed":
            m.timer = None
            self._make_ready(m, q, front=m.front)
            self.save(m)

    @staticmethod
    def _wake(q: QueueState) -> None:
        for fut in q.waiters:
            if not fut.done():
                fut.set_result(None)
        q.waiters.clear()

    def waiter(self, q: QueueState) -> asyncio.Future[None]:
        """A future set when a message becomes ready on ``q`` (long-poll reservations)."""
        fut: asyncio.Future[None] = self.loop.create_future()
        q.waiters.append(fut)
        return fut

    def _expire(self, m: MessageState) -> None:
        q = self.alive(m)
        if q is not None:
            self.remove(m, q)

    # ------------------------------------------------------------------ pull operations

    def reserve(
        self, q: QueueState, *, n: int, timeout: float | None, delete: bool
    ) -> list[MessageState]:
        out: list[MessageState] = []
        now = time.time()
        while q.ready and len(out) < n:
            m = q.messages.get(q.ready.popitem(last=False)[0])
            if m is None or m.state != "ready":
                continue  # cannot happen (the ids leave with their message); be safe
            m.reserved_count += 1
            out.append(m)
            if delete:
                self.remove(m, q)
                continue
            self._set_state(q, m, "reserved")
            m.reservation_id = new_reservation_id()
            m.reserved_until = now + (timeout if timeout is not None else q.message_timeout)
            m.timer = self.at(m.reserved_until, self._reservation_over, m, m.reservation_id)
            self.save(m)
        return out

    def _reservation_over(self, m: MessageState, reservation_id: str) -> None:
        q = self.alive(m)
        if q is None or m.state != "reserved" or m.reservation_id != reservation_id:
            return
        m.timer = None
        if not self._dead_lettered(m, q):
            self._make_ready(m, q, front=True)  # v3: timed-out messages go to the front
            self.save(m)

    def expire_reservation(self, m: MessageState) -> str | None:
        """End a pull reservation now (``POST /_dev/expire``); the expired id, or None."""
        rid = m.reservation_id
        if m.state != "reserved" or rid is None:
            return None
        if m.timer is not None:
            m.timer.cancel()
        self._reservation_over(m, rid)
        return rid

    def _dead_lettered(self, m: MessageState, q: QueueState) -> bool:
        dead = q.dead_letter
        if not dead or m.reserved_count < dead["max_reservations"]:
            return False
        self.remove(m, q)
        self.post_internal(q.project, dead["queue_name"], m.body, m.push_headers)
        return True

    def peek(self, q: QueueState, n: int) -> list[MessageState]:
        """The first ``n`` ready (pull) or pushing (push) messages, in order: O(n)."""
        if q.is_push:
            pushing = (m for m in q.messages.values() if m.state == "pushing")
            return list(itertools.islice(pushing, n))
        return [q.messages[mid] for mid in itertools.islice(q.ready, n)]

    def message(self, q: QueueState, mid: str, *, finished: bool = False) -> MessageState:
        m = self.live.get(mid)
        if m is None and finished:
            m = self.finished.get(mid)
        if m is None or (m.project, m.queue) != (q.project, q.name):
            raise not_found()
        return m

    def _reserved(self, q: QueueState, mid: str, reservation_id: str) -> MessageState:
        m = self.message(q, mid)
        if m.state != "reserved" or m.reservation_id != reservation_id:
            raise timed_out()
        return m

    def touch(self, q: QueueState, mid: str, reservation_id: str, timeout: float | None) -> str:
        m = self._reserved(q, mid, reservation_id)
        if m.timer is not None:
            m.timer.cancel()
        m.reservation_id = new_reservation_id()
        m.reserved_until = time.time() + (timeout if timeout is not None else q.message_timeout)
        m.timer = self.at(m.reserved_until, self._reservation_over, m, m.reservation_id)
        self.save(m)
        return m.reservation_id

    def release(self, q: QueueState, mid: str, reservation_id: str, delay: float) -> None:
        m = self._reserved(q, mid, reservation_id)
        if m.timer is not None:
            m.timer.cancel()
            m.timer = None
        if self._dead_lettered(m, q):
            return
        if delay:
            self._delay(m, q, time.time() + delay, front=True)
        else:
            self._make_ready(m, q, front=True)
        self.save(m)

    def check_delete(self, q: QueueState, mid: str, reservation_id: str | None) -> MessageState:
        m = self.message(q, mid)
        if m.state == "reserved":
            if reservation_id is None:
                raise APIError(403, "Message is reserved: give its reservation_id to delete it")
            if reservation_id != m.reservation_id:
                raise timed_out()
        elif reservation_id is not None and m.state != "pushing":
            raise timed_out()  # the reservation ran out and the message went back
        return m

    def delete(self, q: QueueState, mid: str, reservation_id: str | None) -> None:
        self.remove(self.check_delete(q, mid, reservation_id), q)

    def delete_many(self, q: QueueState, items: list[tuple[str, str | None]]) -> None:
        victims = [self.check_delete(q, mid, rid) for mid, rid in items]
        for m in victims:
            if self.live.get(m.id) is m:
                self.remove(m, q)

    def clear(self, q: QueueState) -> None:
        for m in list(q.messages.values()):
            self.remove(m, q)

    def remove(self, m: MessageState, q: QueueState) -> None:
        m.cancel_timers()
        self._drop(q, m)
        if self.db is not None:
            self.db.delete_message(m.id)
        if m.state == "pushing":
            self.check_idle()

    # ------------------------------------------------------------------ finished push messages

    def finish(self, m: MessageState, q: QueueState) -> None:
        """A push message every subscriber is done with leaves the queue; its statuses stay."""
        m.cancel_timers()
        self._drop(q, m)
        m.state, m.finished_at = "finished", time.time()
        self.finished[m.id] = m
        self.save(m)
        self._evict(m.finished_at)
        self.check_idle()

    def _evict(self, now: float) -> None:
        horizon = now - self.config.finished_retention
        while self.finished:
            mid, oldest = next(iter(self.finished.items()))
            stale = oldest.finished_at is not None and oldest.finished_at < horizon
            if len(self.finished) <= self.config.max_finished and not stale:
                break
            del self.finished[mid]
            if self.db is not None:
                self.db.delete_message(mid)

    # ------------------------------------------------------------------ control plane

    def check_idle(self) -> None:
        self.activity.check_idle()

    def reset(self) -> None:
        for m in self.live.values():
            m.cancel_timers()
        for queues in self.projects.values():
            for q in queues.values():
                self._wake(q)
        self.projects.clear()
        self.live.clear()
        self.finished.clear()
        self.pushing = 0
        if self.db is not None:
            self.db.reset()
        self.check_idle()

    # ------------------------------------------------------------------ restart

    def load(self) -> None:
        """Rebuild the state from the database (at startup, before serving)."""
        assert self.db is not None
        for project, name, row in self.db.load_queues():
            self.projects.setdefault(project, {})[name] = QueueState.from_row(project, name, row)
        now = time.time()
        messages = [MessageState.from_row(*r) for r in self.db.load_messages()]
        messages.sort(key=lambda m: m.seq)
        finished = []
        for m in messages:
            self.ids.seen(m.id)
            self._front, self._back = min(self._front, m.seq), max(self._back, m.seq)
            q = self.projects.get(m.project, {}).get(m.queue)
            if m.state == "finished":
                finished.append(m)
            elif q is None or (m.expires_at is not None and m.expires_at <= now):
                self.db.delete_message(m.id)
            else:
                self._restore(m, q, now)
        for m in sorted(finished, key=lambda m: m.finished_at or 0):
            self.finished[m.id] = m
        self._evict(now)

    def _restore(self, m: MessageState, q: QueueState, now: float) -> None:
        self._add(q, m)
        if m.expires_at is not None:
            m.expiry_timer = self.at(m.expires_at, self._expire, m)
        if m.state == "ready":
            q.ready[m.id] = None
        elif m.state == "delayed" and m.available_at is not None:
            m.timer = self.at(m.available_at, self._delay_over, m)
        elif m.state == "reserved" and m.reservation_id and m.reserved_until is not None:
            m.timer = self.at(m.reserved_until, self._reservation_over, m, m.reservation_id)
        elif m.state == "pushing":
            self.pusher.restore(m, q)
        else:
            self._make_ready(m, q, front=True)


def error_report(m: MessageState, failures: list[dict[str, Any]], headers: dict[str, str]) -> str:
    """The v3 error-queue body for a message that failed for ``failures`` subscribers."""
    return json.dumps(
        {"source_msg_id": m.id, "body": m.body, "headers": headers, "subscribers": failures}
    )
