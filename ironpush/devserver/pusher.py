"""The delivery engine: POSTs push-queue messages to subscribers as IronMQ v3's pusher does.

Per try, the subscriber receives the message body as posted, with ``User-Agent: IronMQ Pusherd``
and ``Content-Type: text/plain; encoding=utf-8`` (both overridable by the subscriber's
``headers``), then the subscriber's headers, the message's ``push_headers`` (these win over
subscriber headers of the same name) and last the pusher's own ``Iron-Message-Id``,
``Iron-Reservation-Id`` (new on every try), ``Iron-Subscriber-Name`` and
``Iron-Subscriber-Message-Url``. The ack URL is
``{base}/3/projects/{p}/queues/{q}/messages/{id}/subscribers/{name}?reservation_id={rid}``;
``DELETE`` on it acknowledges a 202 with no body and no token (the reservation id, unguessable and
valid for ``retries_delay`` seconds, is the credential).

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
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..client.lean import HTTPFailure, LeanHTTPClient
from ..protocol import (
    PUSH_CONTENT_TYPE,
    PUSHER_USER_AGENT,
    Delivery,
    build_push_headers,
    message_url,
)
from ..redact import redact_url
from .entities import PENDING, MessageState, PushState, QueueState, iso, new_reservation_id
from .options import DevConfig
from .queues import not_found, timed_out
from .state import Store, error_report

__all__ = ["Pusher"]

log = logging.getLogger("ironpush.devserver")

# Only the start of a subscriber's answer is kept (it becomes the push status' message).
PUSH_ERROR_BODY = 1024


@dataclass(frozen=True, slots=True)
class Outcome:
    code: int | None  # None: no HTTP answer (connection error, timeout)
    msg: str | None


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
        self.client = client or LeanHTTPClient()
        self.semaphore = asyncio.Semaphore(config.max_concurrent_pushes)
        self.deliveries: deque[dict[str, Any]] = deque(maxlen=config.deliveries_log_size)
        self.attempts = 0
        self.in_flight = 0
        self._ready = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self.public_url = config.public_url
        if self.public_url:
            self._ready.set()
        store.pusher = self

    def activate(self, public_url: str) -> None:
        """Start pushing, with ack URLs under ``public_url`` (known once the socket is bound)."""
        self.public_url = self.public_url or public_url.rstrip("/")
        self._ready.set()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
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

    def _schedule(self, m: MessageState, ps: PushState, at: float) -> None:
        ps.due_at = at
        ps.timer = self.store.at(at, self._spawn_try, m, ps)

    def _schedule_round(self, m: MessageState, at: float) -> None:
        m.push_due_at = at
        m.timer = self.store.at(at, self._spawn_round, m)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = self.store.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("dev server: delivery task failed", exc_info=task.exception())

    def _spawn_try(self, m: MessageState, ps: PushState) -> None:
        ps.timer = None
        self._spawn(self._multicast_try(m, ps))

    def _spawn_round(self, m: MessageState) -> None:
        m.timer = None
        self._spawn(self._unicast_round(m))

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
            sub = q.subscriber(ps.name) if q is not None else None
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
                outcome = await self._send(m, q, ps, sub.headers)
            except Exception as exc:  # a bug here must not kill the delivery: count a failed try
                log.exception("dev server: push of %s to %s failed unexpectedly", m.id, ps.name)
                outcome = Outcome(None, f"internal error: {type(exc).__name__}")
            finally:
                ps.in_flight = False
                self.in_flight -= 1
        self._record(m, ps, outcome, time.perf_counter() - started)
        return outcome

    async def _send(
        self, m: MessageState, q: QueueState, ps: PushState, sub_headers: dict[str, str]
    ) -> Outcome:
        if ps.url.startswith("ironmq:"):
            target = urlsplit(ps.url).path.strip("/")
            self.store.post_internal(q.project, target, m.body, dict(m.push_headers))
            return Outcome(200, None)
        assert ps.reservation_id is not None
        delivery = Delivery(
            m.id, ps.reservation_id, ps.name, self.ack_url(m, ps.name, ps.reservation_id)
        )
        headers = build_push_headers(
            delivery, subscriber_headers=sub_headers, push_headers=m.push_headers
        )
        try:
            response = await self.client.request(
                "POST",
                ps.url,
                headers=list(headers.items()),
                body=m.body.encode(),
                timeout=self.config.push_timeout,
                max_body=PUSH_ERROR_BODY,
                truncate=True,
            )
        except HTTPFailure as exc:
            return Outcome(None, str(exc))
        if response.status in (200, 202):
            return Outcome(response.status, None)
        text = response.body.decode("utf-8", "replace").strip()[:200]
        return Outcome(response.status, text or f"HTTP {response.status}")

    def ack_url(self, m: MessageState, name: str, reservation_id: str) -> str:
        return message_url(self.public_url or "", m.project, m.queue, m.id, name, reservation_id)

    def _record(self, m: MessageState, ps: PushState, outcome: Outcome, seconds: float) -> None:
        entry = {
            "project": m.project,
            "queue": m.queue,
            "message_id": m.id,
            "subscriber": ps.name,
            "url": redact_url(ps.url),
            "try": ps.tries,
            "reservation_id": ps.reservation_id,
            "status_code": outcome.code,
            "msg": outcome.msg,
            "at": iso(ps.last_try_at),
            "duration_ms": round(seconds * 1000, 2),
        }
        self.deliveries.append(entry)
        if log.isEnabledFor(logging.INFO):
            log.info(
                "push %s queue=%s subscriber=%s try=%d -> %s in %.1f ms%s",
                m.id,
                m.queue,
                ps.name,
                ps.tries,
                outcome.code if outcome.code is not None else "no answer",
                seconds * 1000,
                f" ({outcome.msg})" if outcome.msg else "",
            )

    def _report(self, m: MessageState, q: QueueState, failed: list[PushState]) -> None:
        if not q.error_queue:
            return
        headers = {"User-Agent": PUSHER_USER_AGENT, "Content-Type": PUSH_CONTENT_TYPE}
        headers.update(m.push_headers)
        failures = [
            {"name": ps.name, "url": ps.url, "code": ps.status_code, "msg": ps.msg} for ps in failed
        ]
        self.store.post_internal(q.project, q.error_queue, error_report(m, failures, headers), {})

    # ------------------------------------------------------------------ acks, removals

    def ack(self, q: QueueState, mid: str, reservation_id: str, name: str) -> None:
        """Acknowledge a 202'd push (API delete with subscriber_name, or the ack URL)."""
        m = self.store.message(q, mid, finished=True)
        ps = next((p for p in m.push or () if p.name == name), None)
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
