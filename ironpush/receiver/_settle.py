"""After the handler: record its outcome in the store, then answer.

The store's action comes first (a completion is recorded before anything else can delay it),
then what follows from it (the newest reservation acked when a redelivery arrived meanwhile,
a dropped message posted to the dead-letter queue), then the answer::

    settler = Settler(shared, store, responder)
    await settler.settle(push, "acked", runtime, send, None, msg)
"""

from __future__ import annotations

import json
import logging
import time

from .._errors import InvalidPayload
from .._protocol import Delivery
from ._answers import ANSWERS, Answer, Situation
from ._asgi import Send
from ._outcomes import Drop, PushMessage
from ._push import ClaimedPush as Push
from ._push_log import push_fields
from ._responder import Responder
from ._runtime import Runtime, Shared
from .stores._base import Store

logger = logging.getLogger("ironpush.receiver")


class Settler:
    """Applies a situation's store action (``ANSWERS[situation].store``) and answers."""

    def __init__(self, shared: Shared, store: Store, responder: Responder) -> None:
        self.settings = shared.settings
        self.store = store  # timed (the histograms), for the rarer actions
        # The completion of every handled push is timed here, on the store itself: the timed
        # wrapper's extra coroutine would cost a push more than the observation.
        self._store = shared.store
        timings = shared.counters.timings
        self._completes = None
        if timings is not None:
            self._completes = timings.store.labels(shared.store.kind, "complete")
        self.responder = responder

    async def settle(
        self,
        push: Push,
        situation: Situation,
        runtime: Runtime,
        send: Send,
        result: object,
        msg: PushMessage | None = None,
        why: str | None = None,
    ) -> None:
        """Apply the situation's store action (first: a completion is recorded before anything
        else can delay it), then what follows from it, then answer."""
        try:
            newest = await self.store_step(push, ANSWERS[situation])
            if newest is not None and newest is not push.delivery and newest != push.delivery:
                await self.redelivered(push, newest, runtime)
            if isinstance(result, Drop) and msg is not None:
                await self.dead_letter(push, result, runtime, msg)
        except Exception as exc:
            route, delivery = push.route, push.delivery
            return await self.responder.store_failed(send, route, delivery, push.started, exc)
        await self.responder.answer(
            send, push.route, push.delivery, situation, push.started, why, push.attempt
        )
        return None

    async def redelivered(self, push: Push, newest: Delivery, runtime: Runtime) -> None:
        """A redelivery arrived (and got 202) while the handler ran: IronMQ now waits for an
        ack of that newest reservation, not for this response."""
        logger.info(
            "message %s was redelivered while handled: acking the newest",
            push.key[0],
            extra=push_fields(push, reservation_id=newest.reservation_id),
        )
        await runtime.outbox.queue_ack(push.route.queue, newest)

    async def store_step(self, push: Push, answer: Answer) -> Delivery | None:
        """Do ``answer.store``; the newest delivery recorded when it completes the message."""
        action, store, settings = answer.store, self.store, self.settings
        if action == "acked" or action == "dropped":
            completes = self._completes
            began = 0.0 if completes is None else time.perf_counter()
            try:
                return await self._store.complete(
                    push.key, outcome=action, ttl=settings.leases.dedupe_ttl, delivery=push.delivery
                )
            finally:
                if completes is not None:
                    completes.observe(time.perf_counter() - began)
        if action == "release":
            await store.release(push.key, push.claim_id)
        elif action == "hand_off":
            lease = settings.leases.external
            await store.hold(push.key, push.claim_id, state="external", lease=lease)
        return None

    async def invalid(
        self, push: Push, exc: InvalidPayload, runtime: Runtime, send: Send, msg: PushMessage
    ) -> None:
        """A body that does not fit the route's model: ``on_invalid`` says drop (200, the
        error in the dead-letter report), reject (400) or retry (503), the error in the body."""
        reason = f"invalid payload: {exc}"
        how = push.route.on_invalid
        if how == "drop":
            await self.settle(push, "dropped", runtime, send, Drop(reason), msg)
        else:
            situation: Situation = "invalid" if how == "reject" else "retry"
            await self.settle(push, situation, runtime, send, None, msg, why=reason)

    async def dead_letter(self, push: Push, drop: Drop, runtime: Runtime, msg: PushMessage) -> None:
        """Log a dropped message, and post it to the dead-letter queue when one is set."""
        route = push.route
        logger.warning(
            "message %s on %s dropped: %s",
            msg.id,
            route.queue,
            drop.reason,
            extra=push_fields(push, outcome="dropped"),
        )
        dlq = route.dead_letter_queue or self.settings.dead_letter_queue
        if dlq:
            report = {
                "source_msg_id": msg.id,
                "queue": route.queue,
                "subscriber_name": msg.subscriber_name,
                "reason": drop.reason,
                "body": msg.text,
            }
            await runtime.outbox.put_post(dlq, json.dumps(report))
