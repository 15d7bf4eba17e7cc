"""The relay engine: long-poll each relay queue, push each message to the local service as
IronMQ's pusher would, and settle it the way IronMQ settles a push.

Per message (one :class:`Held` while this process holds its relay reservation):

============================  =================================================================
the service answers           the relay
============================  =================================================================
200                           deletes the relayed message
202                           keeps it reserved; the service's ack (``DELETE`` on the forwarded
                              ``Iron-Subscriber-Message-Url``, served by :mod:`._acks`) deletes
                              it. Not acked within ``retries_delay``: pushed again with a new
                              reservation id, as IronMQ does
anything else, no answer      released with a delay of ``retries_delay`` (it comes back and is
                              pushed again); after ``retries + 1`` tries it failed for good: an
                              error-queue report is printed (and posted with ``--error-queue``)
============================  =================================================================

A relay reservation ends after ``reservation`` seconds, so while a message is held (a push
in flight, a 202 awaiting its ack) it is touched every ``reservation / 2`` seconds; a
reservation that ran out anyway makes the message *lost* here (:mod:`._held`), and IronMQ
hands it out again::

    relayer = Relayer(mq, relays, ListenSettings(), ack_base="http://127.0.0.1:8099",
                      emit=print_event)
    await relayer.run(stop, hurry)
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import httpx

from .._errors import APIError, IronPushError
from .._protocol import Delivery, build_push_headers, message_url
from .._redact import redact_url
from ..client._async_client import AsyncIronMQ
from ..client._models import Message
from ._events import Emit, Event, ms, short
from ._held import Held, Holds
from ._plan import Relay
from ._reports import Answer, error_report, push_text
from ._settings import ListenSettings

_MAX_BACKOFF = 30.0


class Relayer:
    """Relays ``relays`` until :meth:`run`'s ``stop`` is set (see the module docs)."""

    def __init__(
        self,
        mq: AsyncIronMQ,
        relays: Sequence[Relay],
        settings: ListenSettings,
        *,
        ack_base: str,
        emit: Emit,
    ) -> None:
        self.mq = mq
        self.relays = list(relays)
        self.settings = settings
        self.ack_base = ack_base.rstrip("/")
        self.emit = emit
        self.project = mq.settings.project_id or "-"
        self.pending: dict[tuple[str, str], Held] = {}
        self.tries: dict[tuple[str, str], int] = {}
        self.busy: dict[str, int] = {r.relay_queue: 0 for r in self.relays}
        self.changed = asyncio.Condition()
        self.counts: Counter[str] = Counter()
        self.fatal: str | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        self.dropped = 0  # messages still held when the drain ended
        self.holds = Holds(mq, settings, emit, self.counts)
        self.http = httpx.AsyncClient(
            timeout=settings.push_timeout, trust_env=False, follow_redirects=False
        )

    # ------------------------------------------------------------------ the run

    async def run(self, stop: asyncio.Event, hurry: asyncio.Event) -> None:
        """Poll until ``stop``; then wait up to ``drain`` seconds (or until ``hurry``) for the
        messages held, and give up the rest (their relay queue is deleted next)."""
        pollers = [asyncio.create_task(self._poll(relay, stop)) for relay in self.relays]
        try:
            await stop.wait()
        finally:
            for task in pollers:
                task.cancel()
            await asyncio.gather(*pollers, return_exceptions=True)
            await self._drain(hurry)
            await self.http.aclose()

    async def _drain(self, hurry: asyncio.Event) -> None:
        async def idle() -> None:
            async with self.changed:
                await self.changed.wait_for(lambda: not self.tasks)

        waiting = [asyncio.create_task(idle()), asyncio.create_task(hurry.wait())]
        await asyncio.wait(waiting, timeout=self.settings.drain, return_when="FIRST_COMPLETED")
        self.dropped = len(self.tasks)
        for task in [*waiting, *self.tasks]:
            task.cancel()
        await asyncio.gather(*waiting, *self.tasks, return_exceptions=True)

    async def _poll(self, relay: Relay, stop: asyncio.Event) -> None:
        queue, settings, backoff = self.mq.queue(relay.relay_queue), self.settings, 0.5
        cap = settings.max_in_flight
        while True:
            async with self.changed:
                await self.changed.wait_for(lambda: self.busy[relay.relay_queue] < cap)
                room = min(100, cap - self.busy[relay.relay_queue])
            try:
                messages = await queue.reserve(
                    max=room, timeout=settings.reservation, wait=settings.wait
                )
            except APIError as exc:
                if 400 <= exc.status_code < 429:  # refused for good (401, 404, a bad timeout)
                    self.fatal = f"cannot reserve from {relay.relay_queue}: {exc}"
                    stop.set()
                    return
                await self._back_off(relay, exc, backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF)
                continue
            except IronPushError as exc:
                await self._back_off(relay, exc, backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF)
                continue
            backoff = 0.5
            for message in messages:
                if not message.reservation_id:
                    continue
                self.busy[relay.relay_queue] += 1
                task = asyncio.create_task(self._handle(relay, message))
                self.tasks.add(task)

    async def _back_off(self, relay: Relay, exc: Exception, delay: float) -> None:
        self.emit(
            Event(
                "warning",
                f"reserve from {relay.relay_queue} failed ({exc}); trying again in {delay:g}s",
                {"queue": relay.queue, "message_id": None, "error": str(exc)},
            )
        )
        await asyncio.sleep(delay)

    # ------------------------------------------------------------------ one message

    async def _handle(self, relay: Relay, message: Message) -> None:
        assert message.reservation_id is not None
        held = Held(relay, message, message.reservation_id, time.monotonic())
        keeper = asyncio.create_task(self.holds.keep_alive(held))
        try:
            await self._deliver(held)
        except Exception as exc:  # IronMQ refused a delete or release: it comes back later
            self._warn(held, f"{exc}; the message comes back when its reservation ends")
        finally:
            keeper.cancel()
            if self.pending.get(held.key) is held:
                del self.pending[held.key]
            task = asyncio.current_task()
            async with self.changed:
                self.busy[relay.relay_queue] -= 1
                if task is not None:
                    self.tasks.discard(task)
                self.changed.notify_all()

    async def _deliver(self, held: Held) -> None:
        """Push until the message is settled, released for a later try, or lost."""
        first = True
        while first or await self.holds.renew(held):  # a new reservation id for each new try
            first = False
            attempt = self.tries[held.key] = self.tries.get(held.key, 0) + 1
            if not await self._try(held, attempt):
                return

    async def _try(self, held: Held, attempt: int) -> bool:
        """One push and what follows; True when it must be pushed again now (a 202 not acked)."""
        total = held.relay.retries + 1
        held.forwarded, held.acked = held.reservation, asyncio.Event()
        self.pending[held.key] = held
        answer = await self._forward(held)
        if held.state == "done":  # the service acked before its answer came back
            self._pushed(held, attempt, answer, "acked by the service")
        elif answer.status == 200:
            done = await self.holds.delete(held)
            self._pushed(held, attempt, answer, "deleted" if done else "lost", settled=done)
        elif answer.status == 202:
            self._pushed(held, attempt, answer, "deferred", settled=False)
            return await self._after_202(held, attempt, total)
        elif attempt < total:
            await self.holds.release(held)
            self._pushed(held, attempt, answer, "retrying", settled=False)
        else:
            self._pushed(held, attempt, answer, "failed", settled=False)
            await self._fail(held, attempt, answer)
        return False

    async def _after_202(self, held: Held, attempt: int, total: int) -> bool:
        """Wait ``retries_delay`` for the service's ack; True when it must be pushed again."""
        if await self._wait_ack(held):
            self._settled(held.key)
            return False
        self.pending.pop(held.key, None)  # a late ack of this try now gets 403
        if held.state != "held":
            return False
        again = attempt < total
        self._expired(held, again)
        if not again:
            await self._fail(held, attempt, Answer(202, "not acknowledged", 0.0))
        return again

    async def _forward(self, held: Held) -> Answer:
        """POST the message to the local service, as IronMQ's pusher would."""
        relay, m = held.relay, held.message
        assert held.forwarded is not None
        ack_url = message_url(
            self.ack_base, self.project, relay.relay_queue, m.id, relay.subscriber, held.forwarded
        )
        delivery = Delivery(m.id, held.forwarded, relay.subscriber, ack_url)
        headers = build_push_headers(
            delivery, subscriber_headers=relay.target.headers, push_headers=held.push_headers
        )
        started = time.monotonic()
        try:
            response = await self.http.post(
                relay.target.url, content=m.body.encode(), headers=headers
            )
        except httpx.TimeoutException:
            why = f"no answer within {self.settings.push_timeout:g}s"
            return Answer(None, why, time.monotonic() - started)
        except httpx.HTTPError as exc:
            return Answer(None, f"{type(exc).__name__}: {exc}", time.monotonic() - started)
        latency = time.monotonic() - started
        text = response.text.strip()[:200]
        if response.status_code in (200, 202):
            return Answer(response.status_code, None, latency)
        return Answer(response.status_code, text or f"HTTP {response.status_code}", latency)

    async def _wait_ack(self, held: Held) -> bool:
        try:
            async with asyncio.timeout(held.relay.retries_delay):
                await held.acked.wait()
        except TimeoutError:
            pass
        return held.acked.is_set()

    # ------------------------------------------------------------------ the service's ack

    async def ack(self, relay_queue: str, message_id: str, reservation: str | None) -> int:
        """The service acknowledged a 202'd push (``DELETE`` on its message URL): 200 when the
        relayed message is deleted, 403 for a reservation that is not the newest (or ran
        out), 404 for a message this process does not hold."""
        held = self.pending.get((relay_queue, message_id))
        if held is None:
            return 404
        if reservation is not None and reservation != held.forwarded:
            return 403
        if held.state == "done":
            return 200
        if not await self.holds.delete(held):
            return 403
        self.pending.pop(held.key, None)
        held.acked.set()
        self.counts["acked"] += 1
        relay = held.relay
        self.emit(
            Event(
                "ack",
                f"ack  {relay.queue} {message_id} ← {relay.subscriber} via "
                f"Iron-Subscriber-Message-Url, reservation {short(held.forwarded)}: acked",
                {
                    "queue": relay.queue,
                    "message_id": message_id,
                    "subscriber": relay.subscriber,
                    "reservation_id": short(held.forwarded),
                    "result": "acked",
                },
            )
        )
        return 200

    # ------------------------------------------------------------------ the relay reservation

    # ------------------------------------------------------------------ reporting

    def _pushed(
        self, held: Held, attempt: int, answer: Answer, result: str, *, settled: bool = True
    ) -> None:
        relay = held.relay
        total = relay.retries + 1
        self.counts["pushes"] += 1
        fields: dict[str, Any] = {
            "queue": relay.queue,
            "message_id": held.message.id,
            "subscriber": relay.subscriber,
            "url": redact_url(relay.target.url),
            "try": attempt,
            "tries": total,
            "status": answer.status,
            "latency_ms": ms(answer.latency),
            "error": answer.error,
            "result": result,
        }
        text = push_text(relay, held.message.id, attempt, total, answer, result)
        self.emit(Event("push", text, fields))
        if settled:
            self._settled(held.key)

    def _settled(self, key: tuple[str, str]) -> None:
        self.tries.pop(key, None)

    def _expired(self, held: Held, again: bool) -> None:
        relay = held.relay
        after = "pushing it again" if again else "it failed for good"
        self.emit(
            Event(
                "expired",
                f"202  {relay.queue} {held.message.id}: not acknowledged within "
                f"{relay.retries_delay:g}s (retries_delay) → {after}",
                {"queue": relay.queue, "message_id": held.message.id, "again": again},
            )
        )

    async def _fail(self, held: Held, attempt: int, answer: Answer) -> None:
        relay = held.relay
        report = error_report(relay, held.message, held.push_headers, answer)
        posted: str | None = None
        if self.settings.error_queue and relay.error_queue:
            try:
                await self.mq.queue(relay.error_queue).post(json.dumps(report))
                posted = relay.error_queue
            except IronPushError as exc:
                self._warn(held, f"the report could not be posted to {relay.error_queue}: {exc}")
        await self.holds.delete(held)
        self._settled(held.key)
        self.counts["failed"] += 1
        if posted:
            where = f"posted to {posted}"
        elif relay.error_queue:
            where = f"printed only (--error-queue posts it to {relay.error_queue})"
        else:
            where = "printed only (the queue has no error_queue)"
        self.emit(
            Event(
                "failed",
                f"fail {relay.queue} {held.message.id}: failed for good after {attempt} tries; "
                f"report {where}: {json.dumps(report)}",
                {
                    "queue": relay.queue,
                    "message_id": held.message.id,
                    "tries": attempt,
                    "report": report,
                    "posted_to": posted,
                },
            )
        )

    def _warn(self, held: Held, text: str) -> None:
        self.holds.warn(held, text)
