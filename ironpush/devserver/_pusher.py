"""The delivery engine: POSTs push-queue messages to subscribers as IronMQ v3's pusher does.

How one try goes over the wire (headers, the ack URL, answers) is :mod:`.push_wire`.

Answers: **200** → ``deleted``. **202** → ``reserved`` for ``retries_delay`` seconds; an ack
(``DELETE …/messages/{id}`` with ``reservation_id`` + ``subscriber_name``, or the ack URL) makes it
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

Deliveries of different messages run concurrently (at most ``max_concurrent_pushes`` at once),
on the server's event loop, over a keep-alive HTTP/1.1 client; nothing here blocks the loop.
"""

from __future__ import annotations

import asyncio
import logging
import time

from .._errors import APIError
from .._protocol import PUSH_CONTENT_TYPE, PUSHER_USER_AGENT, message_url
from ..client._lean import LeanHTTPClient
from ._entities import PENDING, MessageState, PushState, QueueState, new_reservation_id
from ._journal import Journal
from ._options import DevConfig
from ._push_wire import Outcome, send_try
from ._queues import not_found, timed_out
from ._state import Store, error_report
from ._tasks import TaskSet

__all__ = ["Pusher"]

log = logging.getLogger("ironpush.devserver")


def _remaining(retries: int, tries: int) -> int:
    # The first try is not a retry: retries_remaining stays `retries` until a retry is used.
    return max(0, min(retries, retries + 1 - tries))


class Pusher:
    """Delivers push messages of a :class:`Store`; see the module docstring."""

    def __init__(
        self, store: Store, config: DevConfig, client: LeanHTTPClient | None = None
    ) -> None:
        self.store = store
        self.config = config
        # As many idle connections as pushes in flight: a burst reuses them, never reconnects.
        self.client = client or LeanHTTPClient(max_idle_per_origin=config.max_concurrent_pushes)
        self.semaphore = asyncio.Semaphore(config.max_concurrent_pushes)
        self.journal = Journal(config.deliveries_log_size)
        self.deliveries = self.journal.deliveries  # GET /_dev/deliveries
        self.events = self.journal.events  # GET /_dev/events, the inspector, the demo
        self.attempts = 0
        self.in_flight = 0
        self._ready = asyncio.Event()
        self._tasks = TaskSet("dev server: delivery task failed")
        self.public_url = config.public_url
        if self.public_url:
            self._ready.set()
        store.pusher = self

    @property
    def backlog(self) -> int:
        """Tries that are due: in flight or waiting for a slot (the API's back-pressure)."""
        return len(self._tasks)

    def activate(self, public_url: str) -> None:
        """Start pushing, with ack URLs under ``public_url`` (known once the socket is bound)."""
        self.public_url = self.public_url or public_url.rstrip("/")
        self._ready.set()

    async def close(self) -> None:
        await self._tasks.cancel_all()
        self.client.close()

    # ------------------------------------------------------------------ scheduling

    def start(self, m: MessageState, q: QueueState, at: float) -> None:
        """A new message on a push queue: one push state per current subscriber."""
        m.state = "pushing"
        m.push = [PushState(s.name, s.url, retries_remaining=q.retries) for s in q.subscribers]
        if q.type == "unicast":
            self._schedule_round(m, at)
        else:
            for ps in m.push:
                self._schedule(m, ps, at)

    def restore(self, m: MessageState, q: QueueState) -> None:
        """Resume a push after a restart; one that was in flight at a crash is tried again."""
        states = m.push or []
        for ps in states:
            if ps.status == "reserved" and ps.reservation_id and ps.due_at is not None:
                ps.timer = self.store.at(ps.due_at, self._expired, m, ps, ps.reservation_id)
        if not any(ps.status in PENDING for ps in states):
            self.store.finish(m, q)
        elif q.type == "unicast":
            if not any(ps.status == "reserved" for ps in states):
                self._schedule_round(m, m.push_due_at or time.time())
        else:
            for ps in states:
                if ps.status in ("queued", "retrying"):
                    self._schedule(m, ps, ps.due_at or time.time())

    def schedule_try(self, m: MessageState, ps: PushState, at: float) -> None:
        """Push ``m`` to one subscriber at ``at`` (multicast; a replay uses it too)."""
        self._schedule(m, ps, at)

    def schedule_round(self, m: MessageState, at: float) -> None:
        """Start a unicast round of ``m`` at ``at`` (a replay uses it too)."""
        self._schedule_round(m, at)

    def _schedule(self, m: MessageState, ps: PushState, at: float) -> None:
        ps.due_at = at
        ps.timer = self.store.at(at, self._spawn_try, m, ps)

    def _schedule_round(self, m: MessageState, at: float) -> None:
        m.push_due_at = at
        m.timer = self.store.at(at, self._spawn_round, m)

    def _spawn_try(self, m: MessageState, ps: PushState) -> None:
        ps.timer = None
        self._tasks.spawn(self.store.loop, self._multicast_try(m, ps))

    def _spawn_round(self, m: MessageState) -> None:
        m.timer = None
        self._tasks.spawn(self.store.loop, self._unicast_round(m))

    # ------------------------------------------------------------------ multicast

    async def _multicast_try(self, m: MessageState, ps: PushState) -> None:
        outcome = await self._try(m, ps)
        q = self.store.alive(m)
        if outcome is None or q is None:
            return
        if outcome.code == 200 or ps.status == "deleted":
            self._deleted(ps, outcome)
            self._check_done(m, q)
        elif outcome.code == 202:
            self._reserve(m, ps, q)
        else:
            self._failed(m, q, ps, outcome, q.retries_delay)
        self.store.save(m)

    def _failed(
        self, m: MessageState, q: QueueState, ps: PushState, outcome: Outcome, delay: float
    ) -> None:
        ps.status_code, ps.msg = outcome.code, outcome.msg
        ps.retries_remaining = _remaining(q.retries, ps.tries)
        if ps.tries < q.retries + 1:
            ps.status = "retrying"
            self._schedule(m, ps, time.time() + delay)
            return
        ps.status, ps.due_at = "error", None
        self._report(m, q, [ps])
        self._check_done(m, q)

    def _check_done(self, m: MessageState, q: QueueState) -> None:
        if not any(ps.status in PENDING for ps in m.push or ()):
            self.store.finish(m, q)

    def _expired(self, m: MessageState, ps: PushState, reservation_id: str) -> None:
        q = self.store.alive(m)
        if q is None or ps.status != "reserved" or ps.reservation_id != reservation_id:
            return
        ps.timer = None
        self.journal.expired(m, q, ps, reservation_id)
        outcome = Outcome(202, "not acknowledged within retries_delay")
        if q.type == "unicast":
            ps.status, ps.msg = "retrying", outcome.msg
            self._round_failed(m, q, delay=0)
        else:
            self._failed(m, q, ps, outcome, delay=0)
        self.store.save(m)

    # ------------------------------------------------------------------ unicast

    async def _unicast_round(self, m: MessageState) -> None:
        q = self.store.alive(m)
        if q is None:
            return
        m.push_round += 1
        for ps in m.push or ():
            ps.retries_remaining = _remaining(q.retries, m.push_round)
        for ps in list(m.push or ()):
            outcome = await self._try(m, ps)
            q = self.store.alive(m)
            if q is None:
                return
            if outcome is None:
                continue  # subscriber removed meanwhile
            if outcome.code == 200 or ps.status == "deleted":
                self._deleted(ps, outcome)
                self._unicast_done(m, q, ps)
                return
            if outcome.code == 202:
                self._reserve(m, ps, q)
                self.store.save(m)
                return
            ps.status, ps.status_code, ps.msg = "retrying", outcome.code, outcome.msg
        q = self.store.alive(m)
        if q is not None:
            self._round_failed(m, q, delay=q.retries_delay)
            self.store.save(m)

    def _round_failed(self, m: MessageState, q: QueueState, *, delay: float) -> None:
        remaining = _remaining(q.retries, m.push_round)
        for ps in m.push or ():
            ps.retries_remaining = remaining
        if m.push_round < q.retries + 1 and m.push:
            self._schedule_round(m, time.time() + delay)
            return
        for ps in m.push or ():
            ps.status, ps.due_at = "error", None
        self._report(m, q, list(m.push or ()))
        self.store.finish(m, q)

    def _unicast_done(self, m: MessageState, q: QueueState, winner: PushState) -> None:
        states = []
        for ps in m.push or ():
            if ps is not winner:
                if ps.tries == 0:
                    continue
                ps.status, ps.retries_remaining, ps.due_at = "error", 0, None
            states.append(ps)
        m.push = states
        self.store.finish(m, q)

    # ------------------------------------------------------------------ shared

    def _deleted(self, ps: PushState, outcome: Outcome) -> None:
        if ps.status != "deleted":  # not acked while the 202 was on its way
            ps.status_code, ps.msg = outcome.code, outcome.msg
        ps.status, ps.due_at = "deleted", None

    def _reserve(self, m: MessageState, ps: PushState, q: QueueState) -> None:
        ps.status, ps.status_code, ps.msg = "reserved", 202, None
        ps.due_at = time.time() + q.retries_delay
        assert ps.reservation_id is not None
        ps.timer = self.store.at(ps.due_at, self._expired, m, ps, ps.reservation_id)

    async def _try(self, m: MessageState, ps: PushState) -> Outcome | None:
        """One POST to one subscriber; None when the message or subscriber went away."""
        await self._ready.wait()
        async with self.semaphore:
            q = self.store.alive(m)
            sub = q.subscriber_for(ps) if q is not None else None
            if q is None or sub is None:
                if q is not None:
                    self.drop_subscribers(m, q, {ps.name})
                return None
            ps.url = sub.url
            ps.reservation_id = new_reservation_id()
            ps.tries += 1
            if q.type != "unicast":
                ps.retries_remaining = _remaining(q.retries, ps.tries)
            ps.last_try_at = time.time()
            ps.in_flight = True
            self.in_flight += 1
            self.attempts += 1
            started = time.perf_counter()
            try:
                outcome = await send_try(
                    m,
                    q,
                    ps,
                    ack_url=self.ack_url(m, ps.name, ps.reservation_id),
                    sub_headers=sub.headers,
                    store=self.store,
                    client=self.client,
                    timeout=self.config.push_timeout,
                )
            except Exception as exc:  # a bug here must not kill the delivery: count a failed try
                log.exception("dev server: push of %s to %s failed unexpectedly", m.id, ps.name)
                outcome = Outcome(None, f"internal error: {type(exc).__name__}")
            finally:
                ps.in_flight = False
                self.in_flight -= 1
        self.journal.attempt(
            m,
            q,
            ps,
            code=outcome.code,
            msg=outcome.msg,
            answer=outcome.answer,
            seconds=time.perf_counter() - started,
            headers=outcome.headers,
        )
        return outcome

    def ack_url(self, m: MessageState, name: str, reservation_id: str) -> str:
        return message_url(self.public_url or "", m.project, m.queue, m.id, name, reservation_id)

    def _report(self, m: MessageState, q: QueueState, failed: list[PushState]) -> None:
        if not q.error_queue:
            return
        headers = {"User-Agent": PUSHER_USER_AGENT, "Content-Type": PUSH_CONTENT_TYPE}
        headers.update(m.push_headers)
        failures = [
            {"name": ps.name, "url": ps.url, "code": ps.status_code, "msg": ps.msg} for ps in failed
        ]
        report = error_report(m, failures, headers)
        report_id = self.store.post_internal(q.project, q.error_queue, report, {})
        self.journal.reported(m, q, failed, report_id)

    # ------------------------------------------------------------------ acks, removals

    def ack(
        self, q: QueueState, mid: str, reservation_id: str, name: str, *, via: str = "api"
    ) -> None:
        """Acknowledge a 202'd push: ``via`` the API delete (with subscriber_name) or ``url``."""
        record = self.journal.ack
        try:
            self._ack(q, mid, reservation_id, name)
        except APIError as exc:
            record(q, mid, name, reservation_id, via=via, error=(exc.status_code, exc.msg))
            raise
        record(q, mid, name, reservation_id, via=via, error=None)

    def _ack(self, q: QueueState, mid: str, reservation_id: str, name: str) -> None:
        m = self.store.message(q, mid, finished=True)
        named = [p for p in m.push or () if p.name == name]  # names may repeat (see api)
        ps = next((p for p in named if p.reservation_id == reservation_id), None)
        ps = ps or (named[0] if named else None)
        if ps is None:
            raise not_found(f"Subscriber {name!r} has no push of this message")
        if ps.reservation_id != reservation_id:
            raise timed_out()
        if ps.status == "deleted":
            return  # a repeated ack of the same reservation: already done
        if ps.in_flight:
            ps.status = "deleted"  # acked before the 202 reached us; the try's end completes it
            return
        if ps.status != "reserved" or self.store.alive(m) is None:
            raise timed_out()
        if ps.timer is not None:
            ps.timer.cancel()
            ps.timer = None
        ps.status, ps.due_at = "deleted", None
        if q.type == "unicast":
            self._unicast_done(m, q, ps)
        else:
            self._check_done(m, q)
        self.store.save(m)

    def expire_now(self, m: MessageState, subscriber: str | None) -> list[dict[str, str]]:
        """End the 202 reservations of ``m`` now (``POST /_dev/expire``): pushed again at once.

        Exactly what ``retries_delay`` running out does (the expiry counts as a try), without
        a test having to race a short window. Returns what was expired.
        """
        expired = []
        for ps in list(m.push or ()):
            if ps.status != "reserved" or ps.reservation_id is None:
                continue
            if subscriber is not None and ps.name != subscriber:
                continue
            if ps.timer is not None:
                ps.timer.cancel()
            expired.append({"subscriber": ps.name, "reservation_id": ps.reservation_id})
            self._expired(m, ps, ps.reservation_id)
        return expired

    def drop_subscribers(self, m: MessageState, q: QueueState, names: set[str]) -> None:
        """Forget pending pushes of ``m`` to removed subscribers; finish it if none is left."""
        if m.push is None or self.store.alive(m) is None:
            return
        keep = []
        for ps in m.push:
            if ps.name in names and ps.status in PENDING:
                if ps.timer is not None:
                    ps.timer.cancel()
                continue
            keep.append(ps)
        if len(keep) != len(m.push):
            m.push = keep
            if not any(ps.status in PENDING for ps in keep):
                self.store.finish(m, q)
            else:
                self.store.save(m)
