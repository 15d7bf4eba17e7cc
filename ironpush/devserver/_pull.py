"""Pull-queue operations on the :class:`~._ledger.Ledger`: reserve, touch, release, delete.

Each returns what it changed (:class:`~._ledger.Changes`) for the engine to act on; the
deadlines it sets (a reservation's end, a delay's end) become timers in the pusher, which calls
:meth:`PullQueues.due` when one passes.

Semantics where IronMQ's documentation is silent:

- A reserved message deleted without its ``reservation_id`` gets 403; deleting with a stale one
  gets 403 ``Reservation timed out``.
- ``delete_multiple`` is all-or-nothing: the first bad id fails the call and nothing is deleted.
- A reservation that times out, or a release, puts the message at the **front** (v3 rule); a
  queue's ``dead_letter`` takes it after ``max_reservations`` reservations instead.
"""

from __future__ import annotations

import itertools

from .._errors import APIError
from ._ledger import Changes, Ledger, timed_out
from ._records import Due, MessageRecord, QueueRecord, new_reservation_id
from ._transitions import PULL_LIVE, MessageEvent, MessageState


class PullQueues:
    """The consumer side of the queues (see the module docstring)."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def reserve(
        self, q: QueueRecord, *, n: int, timeout: float | None, delete: bool
    ) -> tuple[list[MessageRecord], Changes]:
        ledger = self.ledger
        out: list[MessageRecord] = []
        now = ledger.clock()
        while q.ready and len(out) < n:
            m = q.messages[q.ready.popitem(last=False)[0]]  # ready ids leave with their message
            m.reserved_count += 1
            out.append(m)
            if delete:
                ledger.remove(m, q, MessageEvent.DELETED)
                continue
            ledger.move(q, m, MessageEvent.RESERVED)
            m.reservation_id = new_reservation_id()
            m.reserved_until = now + (timeout if timeout is not None else q.message_timeout)
            ledger.save(m)
        return out, ledger.take()

    def peek(self, q: QueueRecord, n: int) -> list[MessageRecord]:
        """The first ``n`` ready (pull) or pushing (push) messages, in order: O(n)."""
        if q.is_push:
            pushing = (m for m in q.messages.values() if m.state is MessageState.PUSHING)
            return list(itertools.islice(pushing, n))
        return [q.messages[mid] for mid in itertools.islice(q.ready, n)]

    def _reserved(self, q: QueueRecord, mid: str, reservation_id: str) -> MessageRecord:
        m = self.ledger.message(q, mid)
        if m.state is not MessageState.RESERVED or m.reservation_id != reservation_id:
            raise timed_out()
        return m

    def touch(
        self, q: QueueRecord, mid: str, reservation_id: str, timeout: float | None
    ) -> tuple[str, Changes]:
        m = self._reserved(q, mid, reservation_id)
        self.ledger.move(q, m, MessageEvent.TOUCHED)
        new = m.reservation_id = new_reservation_id()
        timeout = timeout if timeout is not None else q.message_timeout
        m.reserved_until = self.ledger.clock() + timeout
        self.ledger.save(m)
        return new, self.ledger.take()

    def release(self, q: QueueRecord, mid: str, reservation_id: str, delay: float) -> Changes:
        m = self._reserved(q, mid, reservation_id)
        if not self._dead_lettered(m, q):
            if delay:
                until = self.ledger.clock() + delay
                self.ledger.delay(m, q, until, front=True, event=MessageEvent.RELEASED_DELAYED)
            else:
                self.ledger.make_ready(m, q, front=True, event=MessageEvent.RELEASED)
            self.ledger.save(m)
        return self.ledger.take()

    def _dead_lettered(self, m: MessageRecord, q: QueueRecord) -> bool:
        dead = q.dead_letter
        if not dead or m.reserved_count < dead["max_reservations"]:
            return False
        self.ledger.remove(m, q, MessageEvent.DEAD_LETTERED)
        self.ledger.post_internal(q.project, dead["queue_name"], m.body, m.push_headers)
        return True

    def _deletable(self, q: QueueRecord, mid: str, reservation_id: str | None) -> MessageRecord:
        m = self.ledger.message(q, mid)
        if m.state is MessageState.RESERVED:
            if reservation_id is None:
                raise APIError(403, "Message is reserved: give its reservation_id to delete it")
            if reservation_id != m.reservation_id:
                raise timed_out()
        elif reservation_id is not None and m.state is not MessageState.PUSHING:
            raise timed_out()  # the reservation ran out and the message went back
        return m

    def delete(self, q: QueueRecord, mid: str, reservation_id: str | None) -> Changes:
        self.ledger.remove(self._deletable(q, mid, reservation_id), q, MessageEvent.DELETED)
        return self.ledger.take()

    def delete_many(self, q: QueueRecord, items: list[tuple[str, str | None]]) -> Changes:
        victims = [self._deletable(q, mid, rid) for mid, rid in items]
        for m in victims:
            if self.ledger.live.get(m.id) is m:  # an id may be listed twice
                self.ledger.remove(m, q, MessageEvent.DELETED)
        return self.ledger.take()

    def clear(self, q: QueueRecord) -> Changes:
        for m in list(q.messages.values()):
            self.ledger.remove(m, q, MessageEvent.DELETED)
        return self.ledger.take()

    # ------------------------------------------------------------------ deadlines

    def due(self, m: MessageRecord, what: Due, at: float) -> Changes:
        """The deadline ``at`` of ``m`` for ``what`` has passed (the pusher's timer fired)."""
        q = self.ledger.alive(m)
        if q is not None and at == _deadline(m, what):  # not moved meanwhile
            if what is Due.DELAY_OVER:
                self.ledger.make_ready(m, q, front=m.front, event=MessageEvent.DELAY_OVER)
                self.ledger.save(m)
            elif what is Due.RESERVATION_OVER:
                self._reservation_over(m, q)
            elif what is Due.EXPIRY:
                self.ledger.remove(m, q, MessageEvent.EXPIRED)
        return self.ledger.take()

    def _reservation_over(self, m: MessageRecord, q: QueueRecord) -> None:
        if not self._dead_lettered(m, q):
            self.ledger.make_ready(m, q, front=True, event=MessageEvent.TIMED_OUT)
            self.ledger.save(m)

    def expire_reservation(self, m: MessageRecord) -> tuple[str | None, Changes]:
        """End a pull reservation now (``POST /_dev/expire``): the expired id, or None."""
        q = self.ledger.alive(m)
        rid = m.reservation_id
        if q is None or m.state is not MessageState.RESERVED or rid is None:
            return None, self.ledger.take()
        self._reservation_over(m, q)
        return rid, self.ledger.take()


def _deadline(m: MessageRecord, what: Due) -> float | None:
    if what is Due.DELAY_OVER and m.state is MessageState.DELAYED:
        return m.available_at
    if what is Due.RESERVATION_OVER and m.state is MessageState.RESERVED:
        return m.reserved_until
    if what is Due.EXPIRY and m.state in PULL_LIVE:
        return m.expires_at
    return None
