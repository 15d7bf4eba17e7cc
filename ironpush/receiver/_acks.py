"""The one ack-token path: an external worker says "the job of this push is done" (or failed).

    verify the token → complete the push in the store (its newest reservation) → ack → answer

``POST {mount}/_ack`` and ``/_release`` (:mod:`._endpoints`), :mod:`ironpush.integrations.acks`
(``acknowledge``, ``release``, ``settle`` and the blocking ``PushAcks``), the Celery signals of
:mod:`ironpush.celery` and ``ironpush ack --token`` all go through :class:`TokenAcks`; only
the last step differs: the router queues the ack in its outbox (:func:`outbox_sender`), a
worker sends it with its client (:func:`client_sender`). Each case has one answer,
:class:`AckResult`:

============  ==============================================================  =========
answer        when                                                            ``/_ack``
============  ==============================================================  =========
``done``      the store says the push was handled already: nothing is sent     200
              (a job that ran twice, or a token used twice, acks once)
``acked``     IronMQ confirmed the ack of the newest reservation               200
``late``      IronMQ refused it (403/404): the reservation had run out and     200
              IronMQ pushes again; that push is answered 200 from the store
``queued``    the ack is held and will be sent: the router's outbox has it and    202
              IronMQ did not confirm it within ``AckTokens.wait``, or the
              store did not record the push in that time (the completion is
              retried until it does, then acked: :mod:`._completions`)
``failed``    the router's outbox gave up on it (IronMQ refused it for good)   502
``released``  the claim was given up: IronMQ's next push runs the handler      200
``not_held``  nothing was held to release (handled, released, or unknown)      200
============  ==============================================================  =========

A worker's client sends at once, so ``failed`` never comes from it (an error raises), and
``queued`` only from :class:`~ironpush.integrations.acks.PushAcks`, which keeps completions its
store did not record. Without a store, or with deduplication off, the token's own reservation is
acked (``late`` when IronMQ pushed again meanwhile) and nothing can be released.

The push is recorded handled *before* anything is sent (an ack the store knows nothing about is
never sent). When the store does not answer, the completion is retried with backoff until it is
recorded (:class:`~._completions.Completions`): given ``completions`` (the router's runtime, a
``PushAcks``), it waits there for up to ``wait`` seconds and then answers ``queued`` while the
retries go on in the background; without, the call itself retries for up to ``retry_for``
seconds, then raises :class:`~ironpush._errors.StoreUnavailable` with nothing sent::

    acks = TokenAcks(keys=keys, store=store)
    await acks.ack(token, client_sender(mq))     # AckResult.ACKED, .LATE or .DONE
    await acks.release(token)                    # AckResult.RELEASED or .NOT_HELD
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from .._errors import NotFound, ReservationExpired, StoreUnavailable
from .._logfields import fields
from .._protocol import Delivery
from .._signing import Keys, load_ack_token
from ._completions import PENDING, Completions
from ._settings import DEFAULT_DEDUPE_TTL
from .stores._base import Key, Store

if TYPE_CHECKING:
    from ..client._async_client import AsyncIronMQ
    from ._outbox import AckOutbox

logger = logging.getLogger("ironpush.acks")


class AckResult(StrEnum):
    """What acknowledging or releasing with an ack token did: one answer per case. Each
    equals its text (``POST /_ack`` answers ``{"status": "acked"}``)::

        await acknowledge(token, client=mq, store=store) == "acked"
    """

    #: The store has the push handled already: nothing was sent.
    DONE = "done"
    #: IronMQ confirmed the ack of the newest reservation.
    ACKED = "acked"
    #: IronMQ refused it (403/404): the reservation had run out; its next push gets 200.
    LATE = "late"
    #: Held, to be sent: IronMQ did not confirm the ack in time (the router's outbox keeps
    #: sending it), or the store did not record the push yet (retried until it does, then acked).
    QUEUED = "queued"
    #: The router's outbox gave up on it (``/_ack`` only; a worker's call raises instead).
    FAILED = "failed"
    #: The claim was given up: IronMQ's next push runs the handler again.
    RELEASED = "released"
    #: Nothing was held to release.
    NOT_HELD = "not_held"


#: The last step of the path: send one ack of ``delivery`` on ``queue``, say how it ended.
AckSender = Callable[[str, Delivery], Awaitable[AckResult]]

#: How long a completion is retried in the call itself when nobody keeps it (seconds).
DEFAULT_RETRY_FOR = 30.0
#: How long a kept completion is waited for before the answer is ``queued`` (seconds).
DEFAULT_COMPLETION_WAIT = 5.0


def message_key(delivery: Delivery) -> Key:
    """The store key of a push: ``(message id, subscriber name)``, as the router claims it."""
    return (delivery.message_id, delivery.subscriber_name or "")


@dataclass(frozen=True, slots=True)
class TokenAcks:
    """Acknowledge and release pushes with ack tokens signed by ``keys``, recording them in
    ``store`` (the receivers' store; None: no store) for ``ttl`` seconds (the routers'
    ``Leases.dedupe_ttl``); tokens older than ``max_age`` seconds are refused. ``completions``
    gives the place where a completion the store did not record waits (see the module docs),
    ``wait`` how long a call waits for it there, ``retry_for`` how long a call without one
    retries."""

    keys: Keys = field(repr=False)
    store: Store | None
    ttl: float = DEFAULT_DEDUPE_TTL
    max_age: float | None = None
    completions: Callable[[], Completions] | None = field(default=None, repr=False)
    wait: float = DEFAULT_COMPLETION_WAIT
    retry_for: float = DEFAULT_RETRY_FOR

    def verify(self, token: str | bytes) -> tuple[str, Delivery]:
        """The ``(queue, delivery)`` a token was made for.

        Raises :class:`~ironpush._errors.SignatureError` for a bad or expired token and
        :class:`~ironpush._errors.ConfigError` when there are no keys.
        """
        return load_ack_token(token, self.keys, max_age=self.max_age)

    async def ack(self, token: str | bytes, send: AckSender) -> AckResult:
        """Verify ``token`` and acknowledge its push with ``send``: :meth:`ack_push`."""
        queue, delivery = self.verify(token)
        return await self.ack_push(queue, delivery, send)

    async def release(self, token: str | bytes) -> AckResult:
        """Verify ``token`` and give its push's claim up: :meth:`release_push`."""
        _, delivery = self.verify(token)
        return await self.release_push(delivery)

    async def ack_push(self, queue: str, delivery: Delivery, send: AckSender) -> AckResult:
        """Record the push of a verified token handled, then acknowledge its newest
        reservation with ``send``; ``done`` (nothing sent) when it was handled already,
        ``queued`` when the store has not recorded it yet (see the module docs)."""
        then = functools.partial(self._send, queue, delivery, send)
        store = self.store
        if store is None or not store.dedupes:
            return await then(delivery)
        return await self._complete(store, delivery, then)

    async def _send(
        self, queue: str, delivery: Delivery, send: AckSender, newest: Delivery | None
    ) -> AckResult:
        """The last step, once the push is recorded: ``newest`` is the delivery to ack (None:
        it was handled already, nothing is sent)."""
        if newest is None:
            logger.info(
                "push %s on %s: already handled, no ack sent",
                delivery.message_id,
                queue,
                extra=_fields(queue, delivery, AckResult.DONE),
            )
            return AckResult.DONE
        result = await send(queue, newest)
        if result is AckResult.LATE:
            logger.warning(
                "late ack of push %s on %s: IronMQ already gave it to a redelivery, which the "
                "receivers answer from the store",
                delivery.message_id,
                queue,
                extra=_fields(queue, newest, result),
            )
        else:
            logger.info(
                "push %s on %s: %s",
                delivery.message_id,
                queue,
                result,
                extra=_fields(queue, newest, result),
            )
        return result

    async def release_push(self, delivery: Delivery) -> AckResult:
        """Give up the claim of a verified token's push, so that IronMQ's next push runs the
        handler again; ``not_held`` when nothing was held (or there is no store)."""
        store = self.store
        if store is None or not store.dedupes:
            return AckResult.NOT_HELD
        released = await store.release(message_key(delivery), None)
        logger.info(
            "push %s released%s: the next push runs the handler again",
            delivery.message_id,
            "" if released else " (nothing was held)",
            extra={
                "message_id": delivery.message_id,
                "subscriber": delivery.subscriber_name,
                "result": (AckResult.RELEASED if released else AckResult.NOT_HELD).value,
            },
        )
        return AckResult.RELEASED if released else AckResult.NOT_HELD

    async def _complete(
        self, store: Store, delivery: Delivery, then: Callable[[Delivery | None], Awaitable[Any]]
    ) -> AckResult:
        """Record the token's push handled (once), then ``then`` (the send); the one place a
        token's push is recorded, retried until the store records it (:mod:`._completions`)."""
        key = message_key(delivery)
        what = "the worker's job"
        if self.completions is not None:
            kept = self.completions()
            result = await kept.finish(
                key, delivery, then=then, once=True, wait=self.wait, what=what
            )
            return AckResult.QUEUED if result is PENDING else AckResult(result)
        # Nowhere to keep it beyond this call: retried here, then the caller is told.
        own = Completions(store, ttl=self.ttl)
        result = await own.finish(
            key, delivery, then=then, once=True, wait=self.retry_for, what=what
        )
        if result is PENDING:
            await own.discard()
            raise StoreUnavailable(
                f"the {store.kind} store did not record push {delivery.message_id} within "
                f"{self.retry_for:g}s: nothing was sent (IronMQ pushes it again)",
                store=store.kind,
            )
        return AckResult(result)


def _fields(queue: str, delivery: Delivery, result: AckResult) -> dict[str, Any]:
    """The ``extra=`` of a record of this path (:data:`ironpush._logfields.CONTEXT_KEYS`)."""
    return fields(
        queue,
        delivery.subscriber_name,
        delivery.message_id,
        reservation_id=delivery.reservation_id,
        result=result.value,
    )


def client_sender(client: AsyncIronMQ) -> AckSender:
    """Send acks with ``client`` (a worker's): ``acked``, or ``late`` when IronMQ says the
    reservation is gone (403/404); any other error raises."""

    async def send(queue: str, delivery: Delivery) -> AckResult:
        try:
            await client.acknowledge(queue, delivery)
        except (ReservationExpired, NotFound):
            return AckResult.LATE
        return AckResult.ACKED

    return send


def outbox_sender(outbox: AckOutbox, *, wait: float) -> AckSender:
    """Send acks through a router's ``outbox``, waiting up to ``wait`` seconds for IronMQ:
    ``acked``, ``late``, ``failed``, or ``queued`` when the outbox is still sending it."""

    async def send(queue: str, delivery: Delivery) -> AckResult:
        result = await outbox.ack_and_wait(queue, delivery, wait=wait)
        return AckResult.QUEUED if result is None else AckResult(result)

    return send
