"""Push-queue operations on the :class:`~._ledger.Ledger`: what each push answer does.

The pusher makes the tries (:mod:`._pusher`); this module decides what each answer means, as
IronMQ v3's pusher does, by moving the push's status through :data:`~._transitions.PUSH_MOVES`:

**200** → ``deleted``. **202** → ``reserved`` for ``retries_delay`` seconds; an ack (``DELETE
…/messages/{id}`` with ``reservation_id`` + ``subscriber_name``, or the ack URL) makes it
``deleted``; otherwise it is pushed again at once, counting as a try. **Anything else** (other
2xx, 3xx — redirects are not followed —, 4xx, 5xx), a connection error or no answer within the
push timeout → ``retrying`` after ``retries_delay``; after ``retries + 1`` tries → ``error``, and
with ``error_queue`` set a v3 error report is posted there.

multicast: subscribers are independent; one report per failed subscriber. unicast: subscribers
are tried **in list order**; a failure moves to the next one at once; when all failed the round
is repeated after ``retries_delay`` (``retries + 1`` rounds); the first success ends the message
(subscribers tried and failed show ``error``, ones never tried are dropped from the statuses); if
every round fails, one report lists all subscribers. A 202 that expires on a unicast queue starts
the next round at once. The hosted service's minimum ``retries_delay`` is 3 s; the dev server
takes any value >= 0 (e.g. 0.05) so tests run fast.
"""

from __future__ import annotations

import json

from .._protocol import PUSH_CONTENT_TYPE, PUSHER_USER_AGENT
from ..client._models import Subscriber
from ._ledger import Changes, Ledger, Report, not_found, timed_out
from ._masking import shown_url
from ._records import MessageRecord, Outcome, PushRecord, QueueRecord, new_reservation_id
from ._transitions import PENDING, PUSH_MOVES, MessageState, PushEvent, PushState, move
from ._validation import bad

NOT_ACKNOWLEDGED = "not acknowledged within retries_delay"


def remaining(retries: int, tries: int) -> int:
    """``retries_remaining`` after ``tries`` tries (or unicast rounds).

    The first try is not a retry: it stays ``retries`` until a retry is used.
    """
    return max(0, min(retries, retries + 1 - tries))


def _step(p: PushRecord, event: PushEvent) -> None:
    p.status = move(PUSH_MOVES, p.status, event)


class Pushes:
    """The push side of the state (see the module docstring)."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    # ------------------------------------------------------------------ one try

    def begin_try(
        self, m: MessageRecord, p: PushRecord
    ) -> tuple[tuple[QueueRecord, Subscriber] | None, Changes]:
        """A try of ``p`` starts: its new reservation id, and the queue and subscriber to POST
        to; None when the message or the subscriber went away meanwhile."""
        ledger = self.ledger
        q = ledger.alive(m)
        if q is None or not _holds(m, p):
            return None, ledger.take()
        sub = q.subscriber_for(p)
        if sub is None:
            self.drop_subscribers(m, q, {p.name})
            return None, ledger.take()
        p.url = sub.url
        p.reservation_id = new_reservation_id()
        p.tries += 1
        if not q.unicast:
            p.retries_remaining = remaining(q.retries, p.tries)
        p.last_try_at = ledger.clock()
        p.in_flight = True
        return (q, sub), ledger.take()

    def answered(self, m: MessageRecord, p: PushRecord, outcome: Outcome) -> Changes:
        """The subscriber answered the try of ``p`` (or did not: ``outcome.code`` None)."""
        p.in_flight = False
        q = self.ledger.alive(m)
        if q is None or not _holds(m, p):
            return self.ledger.take()  # deleted, replayed or unsubscribed meanwhile
        acked_in_flight = p.status is PushState.DELETED
        _step(p, self._answer_event(q, p, outcome))
        if p.status is PushState.DELETED:
            if not acked_in_flight:
                p.status_code, p.msg = outcome.code, outcome.msg
            p.due_at = None
            self._done(m, q, p)
        elif p.status is PushState.RESERVED:
            p.status_code, p.msg = 202, None
            p.due_at = self.ledger.clock() + q.retries_delay
        else:
            self._failed(m, q, p, outcome.code, outcome.msg, q.retries_delay)
        self._save(m)
        return self.ledger.take()

    @staticmethod
    def _answer_event(q: QueueRecord, p: PushRecord, outcome: Outcome) -> PushEvent:
        if outcome.code == 200:
            return PushEvent.DELIVERED
        if outcome.code == 202:
            return PushEvent.DEFERRED
        # unicast: the round decides when no try is left (round_failed)
        if q.unicast or p.tries < q.retries + 1:
            return PushEvent.FAILED
        return PushEvent.EXHAUSTED

    def _failed(
        self,
        m: MessageRecord,
        q: QueueRecord,
        p: PushRecord,
        code: int | None,
        msg: str | None,
        delay: float,
    ) -> None:
        """``p`` is ``retrying`` or ``error`` now (a failed try, or an expired 202)."""
        p.status_code, p.msg = code, msg
        if q.unicast:
            return  # the next subscriber is tried at once; the round ends in round_failed
        p.retries_remaining = remaining(q.retries, p.tries)
        if p.status is PushState.RETRYING:
            p.due_at = self.ledger.clock() + delay
            return
        p.due_at = None
        self._report(m, q, [p])
        self._check_done(m, q)

    def _done(self, m: MessageRecord, q: QueueRecord, winner: PushRecord) -> None:
        if not q.unicast:
            self._check_done(m, q)
            return
        kept = []
        for p in m.push or ():
            if p is not winner:
                if p.tries == 0:
                    continue  # never tried: not one of its statuses
                _step(p, PushEvent.OUTRUN)
                p.retries_remaining, p.due_at = 0, None
            kept.append(p)
        m.push = kept
        self.ledger.finish(m, q)

    def _check_done(self, m: MessageRecord, q: QueueRecord) -> None:
        if not any(p.status in PENDING for p in m.push or ()):
            self.ledger.finish(m, q)

    def _save(self, m: MessageRecord) -> None:
        self.ledger.touched(m)
        if m.state is MessageState.PUSHING:  # a finished one was saved by finish()
            self.ledger.save(m)

    def _report(self, m: MessageRecord, q: QueueRecord, failed: list[PushRecord]) -> None:
        if q.error_queue:
            body = error_report(m, failed)
            report_id = self.ledger.post_internal(q.project, q.error_queue, body, {})
            self.ledger.reported(Report(m, q, failed, report_id))

    # ------------------------------------------------------------------ unicast rounds

    def start_round(self, m: MessageRecord) -> list[PushRecord] | None:
        """A unicast round of ``m`` starts: the pushes to try, in order (None: it left)."""
        q = self.ledger.alive(m)
        if q is None:
            return None
        m.push_round += 1
        for p in m.push or ():
            p.retries_remaining = remaining(q.retries, m.push_round)
        return list(m.push or ())

    def round_failed(self, m: MessageRecord) -> Changes:
        """Every subscriber of a unicast round failed: another round later, or ``error``."""
        q = self.ledger.alive(m)
        if q is not None:
            self._round_failed(m, q, delay=q.retries_delay)
            self._save(m)
        return self.ledger.take()

    def _round_failed(self, m: MessageRecord, q: QueueRecord, *, delay: float) -> None:
        for p in m.push or ():
            p.retries_remaining = remaining(q.retries, m.push_round)
        if m.push_round < q.retries + 1 and m.push:
            m.push_due_at = self.ledger.clock() + delay
            self.ledger.touched(m)
            return
        for p in m.push or ():
            _step(p, PushEvent.EXHAUSTED)
            p.due_at = None
        self._report(m, q, list(m.push or ()))
        self.ledger.finish(m, q)

    # ------------------------------------------------------------------ 202s

    def expired(self, m: MessageRecord, p: PushRecord, reservation_id: str) -> Changes:
        """The 202 of ``p`` was not acknowledged within ``retries_delay``: pushed again at once
        (the expiry counts as a try), or ``error`` when no try is left."""
        q = self.ledger.alive(m)
        current = p.status is PushState.RESERVED and p.reservation_id == reservation_id
        if q is None or not _holds(m, p) or not current:
            return self.ledger.take()
        last = not q.unicast and p.tries >= q.retries + 1
        _step(p, PushEvent.EXHAUSTED if last else PushEvent.EXPIRED)
        if q.unicast:
            p.msg = NOT_ACKNOWLEDGED
            self._round_failed(m, q, delay=0)
        else:
            self._failed(m, q, p, 202, NOT_ACKNOWLEDGED, 0)
        self._save(m)
        return self.ledger.take()

    def reservation_of(self, m: MessageRecord, name: str) -> str:
        """The one live 202 reservation of subscriber ``name`` (an ack by name alone)."""
        named = [p for p in m.push or () if p.name == name]
        if named and all(p.status is PushState.DELETED for p in named):
            return named[0].reservation_id or ""  # already acknowledged: the repeat is harmless
        live = [
            p.reservation_id
            for p in named
            if p.status is PushState.RESERVED and not p.in_flight and p.reservation_id
        ]
        if len(live) > 1:
            raise bad(
                f"subscriber {name!r} holds {len(live)} reservations of this message "
                "(subscribers share the name): give reservation_id"
            )
        if live:
            return live[0]
        if named:
            raise timed_out()
        return ""  # no push to that subscriber: the ack answers 404

    def ack(self, m: MessageRecord, q: QueueRecord, reservation_id: str, name: str) -> Changes:
        """Acknowledge the 202 of subscriber ``name`` (names may repeat: the id picks)."""
        named = [p for p in m.push or () if p.name == name]
        p = next((x for x in named if x.reservation_id == reservation_id), None)
        p = p or (named[0] if named else None)
        if p is None:
            raise not_found(f"Subscriber {name!r} has no push of this message")
        if p.reservation_id != reservation_id:
            raise timed_out()
        if p.status is PushState.DELETED:
            return self.ledger.take()  # a repeated ack of the same reservation: already done
        if p.in_flight:  # acked before the 202 reached us; the try's answer completes it
            _step(p, PushEvent.ACKED_IN_FLIGHT)
            return self.ledger.take()
        if p.status is not PushState.RESERVED or self.ledger.alive(m) is None:
            raise timed_out()
        _step(p, PushEvent.ACKED)
        p.due_at = None
        self._done(m, q, p)
        self._save(m)
        return self.ledger.take()

    # ------------------------------------------------------------------ subscribers, replays

    def drop_subscribers(self, m: MessageRecord, q: QueueRecord, names: set[str]) -> None:
        """Forget pending pushes of ``m`` to removed subscribers; finish it if none is left."""
        if m.push is None or self.ledger.alive(m) is None:
            return
        keep = [p for p in m.push if p.name not in names or p.status not in PENDING]
        if len(keep) != len(m.push):
            m.push = keep
            self.ledger.touched(m)
            if not any(p.status in PENDING for p in keep):
                self.ledger.finish(m, q)
            else:
                self.ledger.save(m)

    def restore(self, m: MessageRecord, q: QueueRecord) -> None:
        """Resume a push after a restart; one that was in flight at a crash is tried again."""
        now = self.ledger.clock()
        pushes = m.push or []
        for p in pushes:
            if p.status is PushState.RESERVED or (p.status in PENDING and not q.unicast):
                p.due_at = p.due_at or now
        if not any(p.status in PENDING for p in pushes):
            self.ledger.finish(m, q)
        elif q.unicast and not any(p.status is PushState.RESERVED for p in pushes):
            m.push_due_at = m.push_due_at or now

    def repush(self, m: MessageRecord, q: QueueRecord, names: list[str]) -> None:
        """Push ``m`` again to ``names`` now, their statuses starting over (a replay)."""
        if self.ledger.alive(m) is None:
            self.ledger.revive(m, q)  # a finished message comes back to its queue
        now = self.ledger.clock()
        fresh = [PushRecord(n, _url(q, n), retries_remaining=q.retries) for n in names]
        if q.unicast:
            m.push, m.push_round, m.push_due_at = fresh, 0, now
        else:
            for p in fresh:
                p.due_at = now
            m.push = [p for p in m.push or () if p.name not in names] + fresh
        self.ledger.touched(m)
        self.ledger.save(m)

    def post_here(self, project: str, queue: str, m: MessageRecord) -> Changes:
        """Deliver ``m`` to an ``ironmq:///`` subscriber of this server: post it there."""
        self.ledger.post_internal(project, queue, m.body, dict(m.push_headers))
        return self.ledger.take()


def _holds(m: MessageRecord, p: PushRecord) -> bool:
    """Whether ``p`` is still one of ``m``'s pushes (a replay or removal replaces them)."""
    return any(x is p for x in m.push or ())


def _url(q: QueueRecord, name: str) -> str:
    sub = q.subscriber(name)
    return sub.url if sub is not None else ""


def error_report(m: MessageRecord, failed: list[PushRecord]) -> str:
    """The v3 error-queue body for ``m``, which failed for good for the ``failed`` pushes."""
    headers = {"User-Agent": PUSHER_USER_AGENT, "Content-Type": PUSH_CONTENT_TYPE}
    headers.update(m.push_headers)
    failures = [
        {"name": p.name, "url": shown_url(p.url), "code": p.status_code, "msg": p.msg}
        for p in failed
    ]
    return json.dumps(
        {"source_msg_id": m.id, "body": m.body, "headers": headers, "subscribers": failures}
    )
