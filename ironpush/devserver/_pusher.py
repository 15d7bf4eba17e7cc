"""The pusher owns time: deadlines become timers, due pushes become tries on the wire.

The state (:mod:`._state`) owns the data and never calls the pusher. After every state
operation the engine hands the pusher what changed (:meth:`Pusher.settle`): each changed
message is **re-timed** from its own deadlines (:meth:`~._records.MessageRecord.deadlines`: a
delay's end, a reservation's end, the message's expiry, a push try, a unicast round, a 202's
expiry), long-polling reservations and idle waiters are woken, and error-queue reports are
recorded. When a timer fires, the pusher calls the matching state operation and settles its
changes the same way; a due push becomes a task that POSTs (:mod:`._push_wire`) and hands the
answer to the state (:meth:`~._pushes.Pushes.answered`).

Deliveries of different messages run concurrently (at most ``PushSettings.max_concurrent`` at
once), on the server's event loop, over a keep-alive HTTP/1.1 client; nothing here blocks the
loop. What each answer means is :mod:`._pushes`; what was done is told by the
:class:`~._journal.Journal` (attempt records, events, log lines).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Mapping

from .._devserver_settings import DevConfig
from .._protocol import message_url
from ..client._lean import LeanHTTPClient
from ._journal import Journal
from ._ledger import Changes
from ._masking import subscriber_secrets
from ._push_wire import post_remote, send_try
from ._queue_targets import NO_IRONWORKER, QueueTarget, parse_queue_url
from ._records import Due, MessageRecord, Outcome, PushRecord, QueueRecord
from ._state import BrokerState
from ._tasks import TaskSet
from ._transitions import PushState
from ._waiters import Waiters

log = logging.getLogger("ironpush.devserver")

Timers = dict[object, tuple[float, Due, asyncio.TimerHandle]]
#: A unicast round ends at the subscriber whose push is in one of these states.
_TAKEN = (PushState.DELETED, PushState.RESERVED)


class Pusher:
    """Drives one :class:`~._state.BrokerState` through time; see the module docstring."""

    def __init__(
        self,
        state: BrokerState,
        config: DevConfig,
        *,
        journal: Journal,
        waiters: Waiters,
        client: LeanHTTPClient | None = None,
    ) -> None:
        self.state = state
        self.config = config
        self.journal = journal
        self.waiters = waiters
        self.loop = waiters.loop
        pushes = config.pushes
        # As many idle connections as pushes in flight: a burst reuses them, never reconnects.
        self.client = client or LeanHTTPClient(max_idle_per_origin=pushes.max_concurrent)
        self.semaphore = asyncio.Semaphore(pushes.max_concurrent)
        self.attempts = 0
        self.in_flight = 0
        self.public_url = config.public_url
        self._ready = asyncio.Event()
        if self.public_url:
            self._ready.set()
        self._tasks = TaskSet("dev server: delivery task failed")
        self._timers: dict[str, Timers] = {}  # message id → its timers, by slot
        self._running: set[object] = set()  # pushes (multicast) and messages (unicast) in a task

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
        for timers in self._timers.values():
            for _at, _what, handle in timers.values():
                handle.cancel()
        self._timers.clear()
        self.client.close()

    # ------------------------------------------------------------------ what changed

    def settle(self, changes: Changes) -> None:
        """Act on what a state operation changed (see the module docstring)."""
        for m in changes.messages.values():
            self.retime(m)
        for r in changes.reports:
            self.journal.reported(r.message, r.queue, r.failed, r.report_id)
        if changes.ready:
            self.waiters.wake(changes.ready)
        if changes.pushing_ended:
            self.waiters.check_idle(self.state.ledger.busy)

    def retime(self, m: MessageRecord) -> None:
        """Give ``m`` exactly the timers its deadlines call for (none once it left)."""
        q = self.state.ledger.alive(m)
        wanted = {} if q is None else self._wanted(m, q)
        timers = self._timers.pop(m.id, {})
        for slot, (at, what, handle) in list(timers.items()):
            if wanted.get(slot, (None, None))[:2] != (at, what):
                handle.cancel()
                del timers[slot]
        now = self.state.ledger.clock()
        for slot, (at, what, p) in wanted.items():
            if slot not in timers:
                delay = max(0.0, at - now)
                handle = self.loop.call_later(delay, self._due, m, slot, at, what, p)
                timers[slot] = (at, what, handle)
        if timers:
            self._timers[m.id] = timers

    def _wanted(
        self, m: MessageRecord, q: QueueRecord
    ) -> dict[object, tuple[float, Due, PushRecord | None]]:
        running = self._running
        return {
            slot: (at, what, p)
            for slot, at, what, p in m.deadlines(unicast=q.unicast)
            if not ((what is Due.TRY and p in running) or (what is Due.ROUND and m in running))
        }

    def _due(
        self, m: MessageRecord, slot: object, at: float, what: Due, p: PushRecord | None
    ) -> None:
        timers = self._timers.get(m.id)
        if timers is not None:
            timers.pop(slot, None)
            if not timers:
                del self._timers[m.id]
        if what is Due.TRY and p is not None:
            self._running.add(p)
            self._tasks.spawn(self.loop, self._multicast(m, p))
        elif what is Due.ROUND:
            self._running.add(m)
            self._tasks.spawn(self.loop, self._unicast(m))
        elif what is Due.PUSH_EXPIRY and p is not None:
            self.expire(m, p)
        else:
            self.settle(self.state.pull.due(m, what, at))

    # ------------------------------------------------------------------ tries

    async def _multicast(self, m: MessageRecord, p: PushRecord) -> None:
        try:
            await self._try(m, p)
        finally:
            self._running.discard(p)
            self.retime(m)

    async def _unicast(self, m: MessageRecord) -> None:
        """One round: subscribers in order until one takes it (200 or 202) or all failed."""
        try:
            await self._ready.wait()
            for p in self.state.push.start_round(m) or ():
                outcome = await self._try(m, p)
                if self.state.ledger.alive(m) is None:
                    return
                if outcome is not None and p.status in _TAKEN:
                    return  # delivered, deferred (or acknowledged while in flight)
            self.settle(self.state.push.round_failed(m))
        finally:
            self._running.discard(m)
            self.retime(m)

    async def _try(self, m: MessageRecord, p: PushRecord) -> Outcome | None:
        """One POST to one subscriber; None when the message or subscriber went away."""
        await self._ready.wait()
        async with self.semaphore:
            began, changes = self.state.push.begin_try(m, p)
            self.settle(changes)
            if began is None:
                return None
            q, sub = began
            self.attempts += 1
            self.in_flight += 1
            started = time.perf_counter()
            try:
                outcome = await self._send(m, q, p, sub.headers)
                # An answer repeating the subscriber's secret must not carry it into push
                # statuses, attempts, events and logs.
                outcome = outcome.masked(subscriber_secrets(p.url, sub.headers))
            except Exception as exc:  # a bug here must not kill the delivery: count a failed try
                log.exception("dev server: push of %s to %s failed unexpectedly", m.id, p.name)
                outcome = Outcome(None, f"internal error: {type(exc).__name__}")
            finally:
                self.in_flight -= 1
        self.journal.attempt(
            m,
            q,
            p,
            code=outcome.code,
            msg=outcome.msg,
            answer=outcome.answer,
            seconds=time.perf_counter() - started,
            headers=outcome.headers,
        )
        self.settle(self.state.push.answered(m, p, outcome))
        return outcome

    async def _send(
        self, m: MessageRecord, q: QueueRecord, p: PushRecord, sub_headers: Mapping[str, str]
    ) -> Outcome:
        timeout = self.config.pushes.timeout
        if p.url.startswith(("http:", "https:")):
            assert p.reservation_id is not None
            ack_url = message_url(
                self.public_url or "", m.project, m.queue, m.id, p.name, p.reservation_id
            )
            return await send_try(
                m, p, ack_url=ack_url, sub_headers=sub_headers, client=self.client, timeout=timeout
            )
        if p.url.startswith("ironworker:"):
            return Outcome(None, NO_IRONWORKER, NO_IRONWORKER)
        target = parse_queue_url(p.url)
        if target.is_local:
            return self._post_here(target, m, q)
        return await post_remote(target, m, q.project, self.client, timeout)

    def _post_here(self, target: QueueTarget, m: MessageRecord, q: QueueRecord) -> Outcome:
        """An ``ironmq:///`` subscriber on this server: the message is posted to that queue."""
        project = target.project or q.project
        if project != q.project:
            config = self.config
            if config.project_id is not None and project != config.project_id:
                return Outcome(404, "Project not found", "Project not found")
            given = (target.token or "").encode()
            if config.token is not None and not hmac.compare_digest(given, config.token.encode()):
                return Outcome(401, "Invalid token", "Invalid token")
        self.settle(self.state.push.post_here(project, target.queue, m))
        return Outcome(200, None)

    # ------------------------------------------------------------------ 202s

    def expire(self, m: MessageRecord, p: PushRecord) -> bool:
        """End the 202 reservation of ``p`` now, as ``retries_delay`` running out does."""
        rid = p.reservation_id
        q = self.state.ledger.alive(m)
        if q is None or p.status is not PushState.RESERVED or rid is None:
            return False
        self.journal.expired(m, q, p, rid)
        self.settle(self.state.push.expired(m, p, rid))
        return True
