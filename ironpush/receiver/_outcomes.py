"""What a push handler receives (:class:`PushMessage`) and what it returns (the outcomes).

A handler takes a :class:`PushMessage` and returns one of the outcomes; the router turns the
outcome into the status code IronMQ expects (see ``DESIGN.md``, "Receiver contract")::

    @router.route("/orders", queue="orders", subscriber="billing", json=True)
    async def billing(msg: PushMessage) -> Outcome:
        order = msg.json()
        if order.get("test"):
            return Drop("test order")                  # 200, recorded as dropped
        if order["total"] > 10_000:
            return Defer(review_large_order, order)   # 202 now, job runs, ack when it succeeds
        if not ledger_available():
            return Retry("ledger down")               # 503: IronMQ retries after retries_delay
        charge(order)
        return Ack()                                  # 200 (returning None does the same)
"""

from __future__ import annotations

import json as _json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Literal

from starlette.datastructures import Headers

from .._errors import ConfigError
from .._protocol import Delivery
from ._payloads import decoder_for

if TYPE_CHECKING:
    # A default (PEP 696) keeps a bare ``PushMessage`` meaning ``PushMessage[Any]`` under
    # mypy --strict; typing.TypeVar takes ``default=`` only from Python 3.13.
    from typing_extensions import TypeVar

    P = TypeVar("P", default=Any)
else:
    from typing import TypeVar

    P = TypeVar("P")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Ack:
    """Done: answer 200, IronMQ deletes the message for this subscriber (same as ``None``)."""


@dataclass(frozen=True, slots=True)
class Retry:
    """Not now: answer 503 so IronMQ pushes again after ``retries_delay``.

    ``reason`` is logged (never sent back). Raising an exception has the same effect (500).
    """

    reason: str = ""


@dataclass(frozen=True, slots=True)
class Drop:
    """Give up on a poison message: answer 200 so IronMQ stops retrying, and record it.

    The drop is logged, counted, and posted to the route's dead-letter queue when one is set
    (``PushRouter(dead_letter_queue=...)`` or ``route(..., dead_letter_queue=...)``).
    """

    reason: str = ""


class Defer:
    """Answer 202 now and acknowledge later.

    ``Defer(job, *args, **kwargs)`` runs ``job(*args, **kwargs)`` (sync or async) in this
    process after the response, with bounded concurrency; when it returns, the push is
    acknowledged through the router's outbox with the newest reservation id. When it raises,
    nothing is acknowledged and IronMQ pushes again after ``retries_delay``.

    ``Defer()`` with no job leaves the acknowledgement to an external worker: hand it
    ``msg.ack_token`` and have it ``POST`` the token to ``{mount}/_ack`` (or ack it itself
    with :mod:`ironpush.integrations.acks`)::

        async def handler(msg):
            await work_queue.put(msg.ack_token)
            return Defer()

    A deferred job must finish within ``(retries + 1) * retries_delay`` seconds: each time the
    202 reservation runs out IronMQ pushes again (the router answers 202 and keeps the newest
    reservation), and each such push uses up one retry.
    """

    __slots__ = ("args", "job", "kwargs")

    def __init__(self, job: Callable[..., Any] | None = None, /, *args: Any, **kwargs: Any) -> None:
        if job is None and (args or kwargs):
            raise TypeError("Defer() got arguments but no job")
        if job is not None and not callable(job):
            raise TypeError(f"Defer's job must be callable, not {type(job).__name__}")
        self.job = job
        self.args = args
        self.kwargs = kwargs

    def __repr__(self) -> str:
        name = getattr(self.job, "__qualname__", repr(self.job)) if self.job else "external"
        return f"Defer({name})"


#: What a handler may return.
Outcome = Ack | Defer | Retry | Drop | None

#: A push handler: sync (run in the threadpool) or async.
Handler = Callable[["PushMessage[Any]"], "Outcome | Awaitable[Outcome]"]

_UNSET: Any = object()


class PushHeaders(Headers):
    """A push's request headers without the push secret (case-insensitive, like Starlette's).

    Filtered on first use: most handlers never look at the headers, so a push costs no copy::

        headers = PushHeaders(scope["headers"], b"x-ironpush-secret")
        headers["iron-message-id"]
    """

    # Slots: one is made per push (Headers has no __slots__, so instances keep a __dict__ too).
    __slots__ = ("_hidden", "_kept", "_raw")

    def __init__(self, raw: list[tuple[bytes, bytes]], hidden: bytes) -> None:
        # Headers.__init__ is not called: it would copy, and ``_list`` below is lazy.
        self._raw = raw
        self._hidden = hidden
        self._kept: list[tuple[bytes, bytes]] | None = None

    @property
    def _list(self) -> list[tuple[bytes, bytes]]:
        if self._kept is None:
            hidden = self._hidden
            self._kept = [(name, value) for name, value in self._raw if name.lower() != hidden]
        return self._kept

    @_list.setter
    def _list(self, value: list[tuple[bytes, bytes]]) -> None:
        self._kept = value


@dataclass(eq=False, slots=True)
class PushMessage(Generic[P]):
    """One push, as the handler sees it.

    ``body`` is the raw bytes IronMQ posted; ``text`` decodes it as UTF-8 and ``json()`` parses
    it (on a ``json=True`` route it was parsed, and checked, before the handler ran).
    ``headers`` is case-insensitive. ``id``, ``reservation_id`` and ``subscriber_name`` come
    from the ``Iron-*`` headers; ``flavour`` is ``"v3"`` or ``"legacy"`` (v1/v2 pushes);
    ``attempt`` counts the handler runs the router's dedupe store has seen for this message
    (1 the first time, 2 after a failed attempt, ...; always 1 with dedupe off). ``ack_token``
    is a signed, expiring token an external worker can use to acknowledge the push after
    ``Defer()``::

        async def handler(msg: PushMessage) -> None:
            log.info("got %s (attempt %d): %s", msg.id, msg.attempt, msg.text)

    On a route declared with ``model=Order``, ``msg.payload`` is the body decoded into an
    ``Order`` (annotate the handler's argument ``PushMessage[Order]``)::

        @router.route("/orders", queue="orders", subscriber="billing", model=Order)
        async def billing(msg: PushMessage[Order]) -> None:
            await charge(msg.payload.id, msg.payload.total)
    """

    body: bytes
    headers: Mapping[str, str]
    queue: str
    delivery: Delivery
    attempt: int = 1
    _json: Any = field(default=_UNSET, repr=False)
    _token_factory: Callable[[], str] | None = field(default=None, repr=False)
    _token: str | None = field(default=None, repr=False)
    _payload: Any = field(default=_UNSET, repr=False)
    # The router's signer (queue, delivery) -> token: the token is made on first use only.
    _signer: Callable[[str, Delivery], str] | None = field(default=None, repr=False)

    @property
    def id(self) -> str:
        """The message id (``Iron-Message-Id``)."""
        return self.delivery.message_id

    @property
    def reservation_id(self) -> str | None:
        """The reservation of this push (``Iron-Reservation-Id``; v3 only)."""
        return self.delivery.reservation_id

    @property
    def subscriber_name(self) -> str | None:
        """The subscriber this push was made for (``Iron-Subscriber-Name``, or the route's)."""
        return self.delivery.subscriber_name

    @property
    def idempotency_key(self) -> str:
        """A key naming this message for this subscriber, the same on every redelivery.

        The router already answers redeliveries of handled messages without calling the
        handler; but a crash between your side effect and the router recording the message
        as handled makes the redelivery run the handler again. Keying the side effect on this
        (a unique column, an upsert, a payment provider's idempotency key) makes that re-run a
        no-op::

            db.execute("INSERT OR IGNORE INTO charges (key, amount) VALUES (?, ?)",
                       (msg.idempotency_key, order["total"]))
        """
        return f"{self.queue}/{self.subscriber_name or '-'}/{self.id}"

    @property
    def flavour(self) -> Literal["v3", "legacy"]:
        """``"v3"``, or ``"legacy"`` for a v1/v2 push (acknowledged on its message URL)."""
        return self.delivery.flavour

    @property
    def text(self) -> str:
        """The body decoded as UTF-8 (invalid bytes replaced)."""
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body parsed as JSON (raises ``ValueError`` on a non-JSON route's bad body)."""
        if self._json is _UNSET:
            self._json = _json.loads(self.body)
        return self._json

    @property
    def payload(self) -> P:
        """The body decoded into the route's ``model=`` (checked before the handler ran).

        Raises :class:`~ironpush._errors.ConfigError` on a route without ``model=``
        (``msg.parse(Model)`` decodes on demand there).
        """
        if self._payload is _UNSET:
            raise ConfigError(
                "msg.payload needs a route declared with model=...; use msg.parse(Model) "
                "or msg.json() on this one"
            )
        payload: P = self._payload
        return payload

    def parse(self, model: type[T]) -> T:
        """The body decoded into ``model`` (a pydantic model, msgspec Struct or dataclass).

        Raises :class:`~ironpush._errors.InvalidPayload` when it does not fit; left
        unhandled, the router answers it by the route's ``on_invalid`` (a ``Drop`` by
        default), as for ``model=``::

            order = msg.parse(Order)
        """
        decoded: T = decoder_for(model)(self.body)
        return decoded

    @property
    def ack_token(self) -> str:
        """A signed ack token for this push (see :class:`Defer`); a credential, never log it."""
        if self._token is None:
            if self._token_factory is not None:
                self._token = self._token_factory()
            elif self._signer is not None:
                self._token = self._signer(self.queue, self.delivery)
            else:
                raise ConfigError("ack tokens need secret keys (the router has verify=False)")
        return self._token

    def __repr__(self) -> str:
        return (
            f"PushMessage(id={self.id!r}, queue={self.queue!r}, "
            f"subscriber_name={self.subscriber_name!r}, flavour={self.flavour!r}, "
            f"attempt={self.attempt}, body={len(self.body)} bytes)"
        )
