"""The record that carries one claimed push through the pipeline.

Built once the store has given the router the message (a new claim) and the push leaves the
pipeline's quick path (a deferred job, another outcome, a sync handler, a model route; an
``async def`` handler's 200 needs none); every later step (record the outcome, answer, run the
deferred job, ack) reads it. It holds what the router
needs, not the handler's :class:`~._outcomes.PushMessage` (body, parsed JSON, headers): a
deferred job keeps its ``ClaimedPush`` alive until it is acked, and should keep nothing more::

    push = ClaimedPush(route, delivery, key, claim_id, started)
    await store.complete(push.key, outcome="acked", ttl=ttl, delivery=push.delivery)
"""

from __future__ import annotations

from typing import NamedTuple

from .._protocol import Delivery
from ._routes import Route
from .stores._base import Key


class ClaimedPush(NamedTuple):
    """One push this router owns (the store gave it the claim): its ``route``, the
    ``delivery`` (the ``Iron-*`` headers), the store ``key`` and ``claim_id``, when it
    ``started`` (``time.perf_counter()``) and the store's ``attempt`` count (its log lines,
    metrics and error reports carry it).

    Immutable; a named tuple because one is built on every push (a third of the cost of a
    frozen dataclass, and smaller)."""

    route: Route
    delivery: Delivery
    key: Key
    claim_id: str
    started: float
    attempt: int | None = None
