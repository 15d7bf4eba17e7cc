"""The dev server's data: every project's queues and messages, and their bookkeeping.

The ledger owns data and nothing else: no event loop, no timer, no reference to the pusher.
Every change of a message's state goes through :meth:`Ledger.move` (the table of
:mod:`._transitions`), which keeps the running counts exact and notes the message in the
pending :class:`Changes`; each state operation hands those back to its caller
(:meth:`Ledger.take`), and the pusher turns them into timers, tries and wake-ups. With
``db=PATH`` every change is written through to SQLite (:mod:`._persistence`) and the state is
rebuilt from it at startup.

Semantics where IronMQ's documentation is silent:

- ``size`` counts every message still in the queue (ready, delayed, reserved, being pushed);
  ``total_messages`` every message ever posted.
- ``message_expiration`` applies to pull messages; push messages live until delivered or failed.

Every operation costs the same at 1,000 or 100,000 messages: each queue keeps its ready ids in
delivery order (deleting one removes it at once) and running counts of its messages by state,
and the ledger a running count of messages being pushed, so reserve, peek, ``/_dev/state`` and
the idle waiters never scan the messages (``benchmarks/bench_devserver_scaling.py``).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .._devserver_settings import Retention
from .._errors import APIError
from ._persistence import Persistence
from ._records import IdGenerator, MessageRecord, PushRecord, QueueRecord
from ._transitions import COUNTED, MESSAGE_MOVES, MessageEvent, MessageState, move
from ._validation import NewMessage

log = logging.getLogger("ironpush.devserver")

QUEUE_NOT_FOUND = "Queue not found"
MESSAGE_NOT_FOUND = "Message not found"
RESERVATION_TIMED_OUT = "Reservation timed out"


def not_found(what: str = MESSAGE_NOT_FOUND) -> APIError:
    return APIError(404, what)


def timed_out() -> APIError:
    return APIError(403, RESERVATION_TIMED_OUT)


@dataclass(frozen=True, slots=True)
class Report:
    """An error-queue report the state posted for pushes that failed for good."""

    message: MessageRecord
    queue: QueueRecord
    failed: list[PushRecord]
    report_id: str


@dataclass(slots=True)
class Changes:
    """What a state operation did that the engine must act on (the state calls no one).

    ``messages``: records whose deadlines may have moved (the pusher re-times each one: a
    new push is due, a reservation ends later, a deleted message needs no timer any more);
    ``ready``: queues with a newly ready message (long-polling reservations wake up);
    ``reports``: error-queue reports posted; ``pushing_ended``: a message stopped being pushed
    (the idle waiters look again).
    """

    messages: dict[str, MessageRecord] = field(default_factory=dict)
    ready: set[tuple[str, str]] = field(default_factory=set)
    reports: list[Report] = field(default_factory=list)
    pushing_ended: bool = False


class Ledger:
    """Queues and messages of every project; see the module docstring."""

    def __init__(
        self,
        retention: Retention,
        db: Persistence | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.retention = retention
        self.db = db
        self.clock = clock
        self.projects: dict[str, dict[str, QueueRecord]] = {}
        self.live: dict[str, MessageRecord] = {}
        self.finished: OrderedDict[str, MessageRecord] = OrderedDict()
        self.ids = IdGenerator()
        self.pushing = 0  # messages being pushed, every queue (a running count)
        self._front = 0
        self._back = 0
        self._changes = Changes()

    def take(self) -> Changes:
        """What changed since the last ``take()``, for the engine to act on."""
        changes, self._changes = self._changes, Changes()
        return changes

    # ------------------------------------------------------------------ lookups

    def find_queue(self, project: str, name: str) -> QueueRecord | None:
        return self.projects.get(project, {}).get(name)

    def queue(self, project: str, name: str) -> QueueRecord:
        q = self.find_queue(project, name)
        if q is None:
            raise not_found(QUEUE_NOT_FOUND)
        return q

    def queues(self, project: str | None = None) -> Iterator[QueueRecord]:
        """Every queue (of ``project``), by project then name."""
        for p, queues in sorted(self.projects.items()):
            if project is None or p == project:
                yield from (queues[name] for name in sorted(queues))

    def message(self, q: QueueRecord, mid: str, *, finished: bool = False) -> MessageRecord:
        """A live message of ``q`` (or a finished one, with ``finished``); 404 otherwise."""
        m = self.kept(q, mid) if finished else self.live.get(mid)
        if m is None or (m.project, m.queue) != (q.project, q.name):
            raise not_found()
        return m

    def kept(self, q: QueueRecord, mid: str) -> MessageRecord | None:
        """A message of ``q`` still kept, live or finished (None when forgotten)."""
        m = self.live.get(mid) or self.finished.get(mid)
        return m if m is not None and (m.project, m.queue) == (q.project, q.name) else None

    def alive(self, m: MessageRecord) -> QueueRecord | None:
        """The queue of a message that is still live, or None if it left meanwhile."""
        if self.live.get(m.id) is not m:
            return None
        return self.find_queue(m.project, m.queue)

    def busy(self, project: str | None, queue: str | None) -> int:
        """Messages being pushed (of one project and/or queue when given)."""
        if project is None and queue is None:
            return self.pushing
        if project is not None and queue is not None:
            q = self.find_queue(project, queue)
            return q.counts[MessageState.PUSHING] if q is not None else 0
        return sum(
            q.counts[MessageState.PUSHING]
            for q in self.queues(project)
            if queue is None or q.name == queue
        )

    def summary(self) -> dict[str, Any]:
        """Counts per project and queue (``GET /_dev/state``), from running counts."""
        projects: dict[str, Any] = {}
        for q in self.queues():
            projects.setdefault(q.project, {})[q.name] = {
                "type": q.type,
                "size": len(q.messages),
                "total_messages": q.total_messages,
                **{state: q.counts[state] for state in _COUNTS_SHOWN},
                "subscribers": len(q.subscribers),
            }
        return {"projects": projects, "finished": len(self.finished), "live": len(self.live)}

    # ------------------------------------------------------------------ moves and saving

    def move(self, q: QueueRecord | None, m: MessageRecord, event: MessageEvent) -> None:
        """Change ``m``'s state by its table; counts follow, the change is noted."""
        old = m.state
        new = move(MESSAGE_MOVES, old, event)
        if new is not old:
            if q is not None:
                if old in COUNTED:
                    q.counts[old] -= 1
                if new in COUNTED:
                    q.counts[new] += 1
            self.pushing += (new is MessageState.PUSHING) - (old is MessageState.PUSHING)
            if old is MessageState.PUSHING:
                self._changes.pushing_ended = True
            m.state = new
        self._changes.messages[m.id] = m

    def touched(self, m: MessageRecord) -> None:
        """Note a change that is not a move (a push status, a deadline)."""
        self._changes.messages[m.id] = m

    def save(self, m: MessageRecord) -> None:
        if self.db is not None:
            self.db.put_message(m.id, m.project, m.queue, m.to_row())

    def save_queue(self, q: QueueRecord) -> None:
        if self.db is not None:
            self.db.put_queue(q.project, q.name, q.to_row())

    def reported(self, report: Report) -> None:
        self._changes.reports.append(report)

    # ------------------------------------------------------------------ posting

    def post(self, project: str, name: str, items: list[NewMessage]) -> list[str]:
        """Put messages on a queue (a missing queue is created as a pull queue, as v3 does)."""
        q = self.find_queue(project, name)
        if q is None:
            q = QueueRecord(project, name)
            self.projects.setdefault(project, {})[name] = q
        now = self.clock()
        ids = []
        for item in items:
            m = MessageRecord(
                self.ids.next(), project, name, item.body, item.push_headers, posted_at=now
            )
            q.total_messages += 1
            ids.append(m.id)
            q.messages[m.id] = self.live[m.id] = m
            if q.is_push and q.subscribers:
                # Only subscribers present now get this message (as the hosted service).
                self._start_pushes(m, q, now + item.delay)
            else:
                m.expires_at = now + q.message_expiration
                if item.delay:
                    self.delay(
                        m, q, now + item.delay, front=False, event=MessageEvent.POSTED_DELAYED
                    )
                else:
                    self.make_ready(m, q, front=False, event=MessageEvent.POSTED)
            self.save(m)
        self.save_queue(q)
        return ids

    def post_internal(self, project: str, name: str, body: str, headers: dict[str, str]) -> str:
        """Post one message from inside the server (error reports, dead letters, ironmq:///)."""
        return self.post(project, name, [NewMessage(body, 0.0, headers)])[0]

    def _start_pushes(self, m: MessageRecord, q: QueueRecord, at: float) -> None:
        self.move(q, m, MessageEvent.POSTED_FOR_PUSH)
        subs = q.subscribers
        if q.unicast:
            m.push = [PushRecord(s.name, s.url, retries_remaining=q.retries) for s in subs]
            m.push_due_at = at
        else:
            m.push = [PushRecord(s.name, s.url, q.retries, due_at=at) for s in subs]

    def make_ready(
        self, m: MessageRecord, q: QueueRecord, *, front: bool, event: MessageEvent
    ) -> None:
        self.move(q, m, event)
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
        self._changes.ready.add((q.project, q.name))

    def delay(
        self, m: MessageRecord, q: QueueRecord, until: float, *, front: bool, event: MessageEvent
    ) -> None:
        self.move(q, m, event)
        m.available_at, m.front = until, front
        m.reservation_id = m.reserved_until = None

    # ------------------------------------------------------------------ leaving a queue

    def remove(self, m: MessageRecord, q: QueueRecord, event: MessageEvent) -> None:
        """``m`` leaves its queue for good (deleted, expired, dead-lettered)."""
        self.move(q, m, event)
        q.messages.pop(m.id, None)
        q.ready.pop(m.id, None)
        self.live.pop(m.id, None)
        if self.db is not None:
            self.db.delete_message(m.id)

    def finish(self, m: MessageRecord, q: QueueRecord) -> None:
        """A push message every subscriber is done with leaves the queue; its statuses stay."""
        self.move(q, m, MessageEvent.FINISHED)
        q.messages.pop(m.id, None)
        self.live.pop(m.id, None)
        m.finished_at = self.clock()
        self.finished[m.id] = m
        self.save(m)
        self._evict(m.finished_at)

    def revive(self, m: MessageRecord, q: QueueRecord) -> None:
        """A finished push message back in its queue, being pushed again (a replay)."""
        self.finished.pop(m.id, None)
        self.move(q, m, MessageEvent.REPLAYED)
        m.finished_at = None
        q.messages[m.id] = self.live[m.id] = m

    def _evict(self, now: float) -> None:
        horizon = now - self.retention.finished
        while self.finished:
            oldest = next(iter(self.finished.values()))
            stale = oldest.finished_at is not None and oldest.finished_at < horizon
            if len(self.finished) <= self.retention.max_finished and not stale:
                break
            self._forget(oldest)

    def _forget(self, m: MessageRecord) -> None:
        del self.finished[m.id]
        self.move(None, m, MessageEvent.FORGOTTEN)
        if self.db is not None:
            self.db.delete_message(m.id)

    def delete_queue(self, project: str, name: str) -> None:
        q = self.queue(project, name)
        for m in list(q.messages.values()):
            self.move(q, m, MessageEvent.DELETED)
            self.live.pop(m.id, None)
        q.messages.clear()
        q.ready.clear()
        del self.projects[project][name]
        for m in [m for m in self.finished.values() if (m.project, m.queue) == (project, name)]:
            self._forget(m)
        self._changes.ready.add((project, name))  # long-polling reservations end (empty)
        if self.db is not None:
            self.db.delete_queue(project, name)

    def reset(self) -> None:
        """Forget every queue and message (and wipe the database)."""
        for project, name in [(q.project, q.name) for q in self.queues()]:
            self.delete_queue(project, name)
        for m in list(self.finished.values()):
            self._forget(m)
        self.projects.clear()
        if self.db is not None:
            self.db.reset()

    # ------------------------------------------------------------------ restart

    def load(self) -> list[tuple[MessageRecord, QueueRecord]]:
        """Rebuild the state from the database (at startup); the messages being pushed."""
        assert self.db is not None
        for project, name, row in self.db.load_queues():
            self.projects.setdefault(project, {})[name] = QueueRecord.from_row(project, name, row)
        now = self.clock()
        messages = sorted(_records(self.db.load_messages()), key=lambda m: m.seq)
        finished, pushing = [], []
        for m in messages:
            self.ids.seen(m.id)
            self._front, self._back = min(self._front, m.seq), max(self._back, m.seq)
            q = self.find_queue(m.project, m.queue)
            if m.state is MessageState.FINISHED:
                finished.append(m)
            elif q is None or m.state not in COUNTED or _expired(m, now):
                self.db.delete_message(m.id)
            else:
                self._restore(m, q)
                if m.state is MessageState.PUSHING:
                    pushing.append((m, q))
        for m in sorted(finished, key=lambda m: m.finished_at or 0):
            self.finished[m.id] = m
        self._evict(now)
        return pushing

    def _restore(self, m: MessageRecord, q: QueueRecord) -> None:
        q.messages[m.id] = self.live[m.id] = m
        q.counts[m.state] += 1
        self.pushing += m.state is MessageState.PUSHING
        self._changes.messages[m.id] = m
        if m.state is MessageState.READY:
            q.ready[m.id] = None
        elif m.state is MessageState.DELAYED and m.available_at is None:
            self.make_ready(m, q, front=True, event=MessageEvent.DELAY_OVER)
        elif m.state is MessageState.RESERVED and not (m.reservation_id and m.reserved_until):
            self.make_ready(m, q, front=True, event=MessageEvent.TIMED_OUT)


_COUNTS_SHOWN = ("ready", "delayed", "reserved", "pushing")


def _expired(m: MessageRecord, now: float) -> bool:
    return m.expires_at is not None and m.expires_at <= now


def _records(rows: Iterator[tuple[str, str, str, dict[str, Any]]]) -> Iterator[MessageRecord]:
    for mid, project, queue, row in rows:
        try:
            yield MessageRecord.from_row(mid, project, queue, row)
        except (TypeError, ValueError) as exc:  # written by another version: skip, say so
            log.warning("dev server: skipping stored message %s: %s", mid, exc)
