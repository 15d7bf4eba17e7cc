"""Pieces every engine-backed store shares: the reconnect breaker, owner checks, row codecs."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable

from ..._errors import StoreUnavailable
from ..._protocol import Delivery, delivery_from_json, delivery_to_json
from ..._redact import redact_text
from ...client._retry import backoff_delay
from ._base import _ACTIVE, OutboxItem, Owner, this_owner

ACTIVE: tuple[str, ...] = _ACTIVE

encode_delivery = delivery_to_json


def decode_delivery(text: str | bytes | None) -> Delivery | None:
    """The delivery a row keeps, or None for an empty or foreign value."""
    if not text:
        return None
    try:
        return delivery_from_json(text)
    except ValueError:
        return None


def takeable_owner(state: str, holder: str | bytes | None) -> bool:
    """Whether an active claim may be taken over before its lease runs out: only in-process
    work (running, deferred) of a dead local owner. An *external* claim is held by a worker
    outside that process (a Celery task, an ack token), which the owner's death does not end.
    """
    return state != "external" and is_dead_owner(holder)


def newest_or(text: str | bytes | None, delivery: Delivery, encoded: str | None = None) -> Delivery:
    """The newest delivery a completed row kept, or ``delivery`` (also when it is the same:
    the usual case, which then costs an encode instead of a parse; ``encoded``: the caller's
    ``encode_delivery(delivery)``, when it made it already)."""
    if not text or text == (encode_delivery(delivery) if encoded is None else encoded):
        return delivery
    return decode_delivery(text) or delivery


def is_dead_owner(text: str | bytes | None) -> bool:
    """Whether the owner recorded with a claim is a dead process on this host."""
    if not text:
        return False
    owner = Owner.parse(text.decode() if isinstance(text, bytes) else text)
    return owner is not None and owner.is_dead_local()


def ack_delivery(item: OutboxItem) -> Delivery:
    """The delivery ``item`` acks; ``ValueError`` for anything else (a store's
    ``complete_ack`` queues acks only)."""
    if item.kind != "ack" or item.delivery is None:
        raise ValueError("complete_ack queues an ack of a delivery")
    return item.delivery


def item_payload(item: OutboxItem) -> str:
    """What a row keeps of an item's content: the delivery JSON (ack) or the body (post)."""
    if item.kind == "ack":
        if item.delivery is None:
            raise ValueError("an ack outbox item needs a delivery")
        return encode_delivery(item.delivery)
    return item.body or ""


def item_from_payload(
    *,
    id: str,
    kind: str,
    queue: str,
    payload: str,
    attempts: int,
    created_at: float,
    next_at: float,
) -> OutboxItem:
    """Rebuild an :class:`OutboxItem` from the columns of a stored row."""
    if kind == "ack":
        return OutboxItem(
            "ack",
            queue,
            delivery=decode_delivery(payload),
            id=id,
            attempts=attempts,
            created_at=created_at,
            next_at=next_at,
        )
    return OutboxItem(
        "post",
        queue,
        body=payload,
        id=id,
        attempts=attempts,
        created_at=created_at,
        next_at=next_at,
    )


class ClaimTokens:
    """Claim ids unique across processes and hosts, and this process's owner text.

    A token is this process's pid and random start id plus a counter (no ``uuid4`` per claim:
    one random read per process instead of one per push); both are renewed after a fork::

        token, owner = tokens.next()     # ("1092-ab3c4d5e-0", "host:4242:ab3c4d5e")
    """

    def __init__(self) -> None:
        self._owner: Owner | None = None
        self._owner_text = ""
        self._prefix = ""

    def next(self) -> tuple[str, str]:
        """A new claim token (hex digits and dashes, no dot) and ``str(this_owner())``."""
        owner = this_owner()
        if owner is not self._owner:  # first use, or a forked child
            self._owner, self._owner_text = owner, str(owner)
            self._prefix = f"{owner.pid:x}-{owner.start}-"  # unambiguous: no two alike
        # One counter for the whole process: several stores in one process never share a token.
        return f"{self._prefix}{next(_TOKEN_COUNTER):x}", self._owner_text


_TOKEN_COUNTER = itertools.count()


class Breaker:
    """Fail fast for a short, growing while after the engine failed, then try again.

    Every failure opens the breaker for a jittered, doubling delay (``base`` up to ``cap``);
    while it is open, calls raise :class:`StoreUnavailable` at once instead of piling up on a
    dead engine. The first call after the delay tries the engine again; a success closes it::

        breaker.guard()              # raises while open
        try: ... except OSError as exc: raise breaker.trip(exc) from exc
        breaker.reset()
    """

    def __init__(
        self,
        engine: str,
        *,
        base: float = 0.05,
        cap: float = 1.0,
        secrets: Iterable[str | None] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.secrets = tuple(secrets)
        self.base = base
        self.cap = cap
        self._clock = clock
        self._failures = 0
        self._until = 0.0
        self.reason: str | None = None

    def guard(self) -> None:
        """Raise :class:`StoreUnavailable` while the breaker is open."""
        if self.reason is not None and self._clock() < self._until:
            raise StoreUnavailable(
                f"{self.engine} store unavailable: {self.reason}", store=self.engine
            )

    def trip(self, exc: BaseException | str) -> StoreUnavailable:
        """Record a failure; return the error to raise (``raise breaker.trip(exc) from exc``)."""
        self._failures += 1
        self.reason = exc if isinstance(exc, str) else describe(exc, self.secrets)
        self._until = self._clock() + backoff_delay(self._failures, base=self.base, cap=self.cap)
        return StoreUnavailable(
            f"{self.engine} store unavailable: {self.reason}", store=self.engine
        )

    def reset(self) -> None:
        """The engine answered: close the breaker."""
        if self.reason is not None:
            self._failures = 0
            self.reason = None


def describe(exc: BaseException, secrets: Iterable[str | None] = ()) -> str:
    """A one-line reason for an engine error: its type and first line, ``secrets`` masked."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    name = type(exc).__name__
    return redact_text(f"{name}: {text}"[:200], secrets) if text else name
