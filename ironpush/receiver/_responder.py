"""How a push is answered: counted, logged, reported to its observation, sent and timed.

Every answer of the pipeline but the quick 200 and a job's 202 (which ``_pipeline.py`` and
``_deferrals.py`` send inline, with the same effects) goes through :meth:`Responder.answer`; the
status, body, counter and outcome come from the answer table (:mod:`._answers`)::

    responder = Responder(shared)
    await responder.answer(send, route, delivery, "duplicate", started)
"""

from __future__ import annotations

import logging
import time

from .._errors import StoreUnavailable
from .._logfields import fields
from .._protocol import Delivery
from ._answers import ANSWERS, Situation, json_body, reply
from ._asgi import Send
from ._observe import current_push
from ._push_log import log_delivery
from ._routes import Route
from ._runtime import Shared

logger = logging.getLogger("ironpush.receiver")


class Responder:
    """Sends a push's answer by the situation's row of the answer table."""

    def __init__(self, shared: Shared) -> None:
        self.counters = shared.counters
        self.timings = shared.counters.timings
        self.refusals = shared.refusals
        self.store_kind = shared.store.kind

    async def answer(
        self,
        send: Send,
        route: Route,
        delivery: Delivery | None,
        situation: Situation,
        started: float,
        why: str | None = None,
        attempt: int | None = None,
    ) -> None:
        """Count, log one line for the delivery, send the situation's answer, and time it."""
        answer = ANSWERS[situation]
        counters = self.counters
        if (observation := current_push()) is not None:
            observation.answered(answer.outcome or situation, answer.status)
        if answer.counter is not None:
            counters.totals[answer.counter] += 1
        outcome = answer.outcome or situation
        counters.by_route[(route.queue, route.subscriber, outcome)] += 1
        if answer.refusal is not None:
            self.refusals.record(started, answer.refusal)
        level = logging.WARNING if 400 <= answer.status < 500 else logging.INFO
        if logger.isEnabledFor(level):
            log_delivery(level, route, delivery, outcome, answer.status, started, why, attempt)
        await reply(send, situation, None if why is None else json_body(error=why))
        if (timings := self.timings) is not None:
            seconds = time.perf_counter() - started
            timings.push.observe((route.queue, route.subscriber, outcome), seconds)

    async def store_failed(
        self, send: Send, route: Route, delivery: Delivery, started: float, exc: Exception
    ) -> None:
        """The store failed for this push: logged, answered 503 (IronMQ retries later)."""
        extra = fields(route.queue, route.subscriber, delivery.message_id, store=self.store_kind)
        if isinstance(exc, StoreUnavailable):
            logger.warning(
                "store unavailable for message %s: %s", delivery.message_id, exc, extra=extra
            )
        else:
            logger.exception("store failed for message %s", delivery.message_id, extra=extra)
        await self.answer(send, route, delivery, "store_unavailable", started)
