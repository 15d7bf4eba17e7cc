"""A declared route (:class:`Route`), what to register with IronMQ for it
(:func:`route_subscription`), and the check of its retry budget against the claim lease.

::

    route = router.add_route("/jobs", handle, queue="jobs", subscriber="worker", retries_delay=3)
    lease_warning(route, claim_lease=10.0)   # "route /jobs: IronMQ's retry budget ..."
    sub = route_subscription(route, "https://api.example.com/ironmq", keys=router.keys)
    sub.subscriber   # Subscriber(name='worker', url='https://.../ironmq/jobs', headers=...)
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from inspect import CO_COROUTINE
from types import FunctionType
from typing import Any, Literal, Protocol, TypedDict, TypeVar
from urllib.parse import urlencode

from .._protocol import DEFAULT_RETRIES, DEFAULT_RETRIES_DELAY
from .._signing import DEFAULT_SECRET_HEADER, DEFAULT_SECRET_PARAM, Keys, push_secret
from ..client._models import Subscriber
from ._outcomes import Handler, Outcome, PushMessage
from ._payloads import Decoder

#: What the router does with a body that does not fit the route's model: ``"drop"`` (200,
#: recorded as dropped and posted to the dead-letter queue with the error), ``"reject"``
#: (400 with the error: IronMQ retries, then the error queue) or ``"retry"`` (503).
OnInvalid = Literal["drop", "reject", "retry"]
ON_INVALID: tuple[OnInvalid, ...] = ("drop", "reject", "retry")

M = TypeVar("M")
R = TypeVar("R", bound="Outcome | Awaitable[Outcome]")


class TypedRoute(Protocol[M]):
    """What ``router.route(..., model=Order)`` returns: a decorator for a handler of
    ``PushMessage[Order]`` (mypy checks the handler's annotation against the model)."""

    def __call__(self, handler: Callable[[PushMessage[M]], R], /) -> Callable[[PushMessage[M]], R]:
        """Declare ``handler``; it is returned unchanged."""
        ...


class RouteOptions(TypedDict, total=False):
    """The optional keyword arguments of ``PushRouter.route`` (those of ``add_route``)."""

    json: bool
    push_type: Literal["multicast", "unicast"] | None
    retries: int | None
    retries_delay: float | None
    error_queue: str | None
    dead_letter_queue: str | None
    on_invalid: OnInvalid


@dataclass(frozen=True, slots=True)
class Route:
    """One declared route: a path, the queue and subscriber it serves, and its handler.

    ``push_type``, ``retries``, ``retries_delay`` and ``error_queue`` are what ``ironpush
    subscribe`` registers on the queue (``None``: leave the queue's setting alone).
    ``model`` is the type the body is decoded into (``msg.payload``), by ``decode``;
    ``on_invalid`` says what a body that does not fit it gets.
    """

    path: str
    queue: str
    subscriber: str
    handler: Handler
    json: bool = False
    push_type: str | None = None
    retries: int | None = None
    retries_delay: float | None = None
    error_queue: str | None = None
    dead_letter_queue: str | None = None
    model: Any = None
    on_invalid: OnInvalid = "drop"
    is_async: bool = field(default=False, repr=False)
    secrets: tuple[bytes, ...] = field(default=(), repr=False)
    decode: Decoder | None = field(default=None, repr=False)


def is_async(fn: Any) -> bool:
    """Whether calling ``fn`` returns a coroutine (async functions, partials of them, and
    instances with an async ``__call__``)::

        async def job() -> None: ...
        is_async(job)  # True
    """
    # A plain ``async def`` (asked once per deferred job): its code's flag, without
    # inspect's unwrapping. Anything else, a sync function marked with
    # inspect.markcoroutinefunction included, takes the whole check.
    if type(fn) is FunctionType and fn.__code__.co_flags & CO_COROUTINE:
        return True
    while isinstance(fn, functools.partial):
        fn = fn.func
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - an instance with an async __call__
    )


def retry_budget(route: Route) -> float:
    """How long IronMQ keeps pushing a message: ``(retries + 1) * retries_delay`` seconds, with
    IronMQ's defaults (3 retries, 60 s) for what the route leaves to the queue."""
    retries = DEFAULT_RETRIES if route.retries is None else route.retries
    delay = DEFAULT_RETRIES_DELAY if route.retries_delay is None else route.retries_delay
    return (retries + 1) * delay


def lease_warning(route: Route, claim_lease: float) -> str | None:
    """A warning when ``route``'s retry budget is not at least twice ``claim_lease``, else None.

    After a crash, a redelivery that arrives while the dead process's claim is still leased is
    answered 202 ("in progress") and uses up one of IronMQ's retries; the budget must leave
    room for the lease to run out and a later redelivery to take the message over::

        for route in router.routes:
            if (warning := lease_warning(route, router.claim_lease)) is not None:
                print(warning)
    """
    budget = retry_budget(route)
    if budget >= 2 * claim_lease:
        return None
    return (
        f"route {route.path} (queue {route.queue!r}, subscriber {route.subscriber!r}): IronMQ's "
        f"retry budget (retries + 1) x retries_delay = {budget:g}s is not at least twice "
        f"claim_lease = {claim_lease:g}s; after a crash its redeliveries may all be answered "
        f"202 until the error queue. Use claim_lease <= {budget / 2:g}s, or more retries or a "
        f"longer retries_delay."
    )


@dataclass(frozen=True, slots=True)
class Subscription:
    """What to register with IronMQ for one route (see :func:`route_subscription`).

    ``subscriber`` carries the URL and the secret header (masked in ``repr``); the other
    fields are the route's push settings (``None`` = leave the queue's setting alone)::

        for sub in router.subscriptions("https://api.example.com/ironmq"):
            mq.queue(sub.queue).update(subscribers=[sub.subscriber], **sub.push_settings)
    """

    queue: str
    subscriber: Subscriber
    push_type: str | None = None
    retries: int | None = None
    retries_delay: float | None = None
    error_queue: str | None = None

    @property
    def push_settings(self) -> dict[str, Any]:
        """The push settings that are set, as keyword arguments of ``Queue.update``."""
        settings = {
            "push_type": self.push_type,
            "retries": self.retries,
            "retries_delay": self.retries_delay,
            "error_queue": self.error_queue,
        }
        return {k: v for k, v in settings.items() if v is not None}


def route_subscription(
    route: Route,
    base_url: str,
    *,
    keys: Keys,
    secret_header: str = DEFAULT_SECRET_HEADER,
    secret_param: str = DEFAULT_SECRET_PARAM,
    secret_in: Literal["header", "query"] = "header",  # noqa: S107 - a place, not a secret
) -> Subscription:
    """The subscriber to register for ``route`` with the router mounted at ``base_url``.

    Its name is the route's subscriber, its URL ``base_url`` + the route's path, and with
    ``keys`` its push secret (signed for the route's queue and subscriber by the newest key)
    goes in the ``secret_header`` header, or with ``secret_in="query"`` in the URL. Pure: no
    I/O, the same for ``subscribe --app`` and anything else that registers a route::

        sub = route_subscription(route, "https://api.example.com/ironmq", keys=router.keys)
        mq.queue(sub.queue).add_subscribers(sub.subscriber)
    """
    url, headers = base_url.rstrip("/") + route.path, {}
    if keys:
        secret = push_secret(route.queue, route.subscriber, keys)
        if secret_in == "header":
            headers[secret_header] = secret
        else:
            url += ("&" if "?" in url else "?") + urlencode({secret_param: secret})
    return Subscription(
        queue=route.queue,
        subscriber=Subscriber(name=route.subscriber, url=url, headers=headers),
        push_type=route.push_type,
        retries=route.retries,
        retries_delay=route.retries_delay,
        error_queue=route.error_queue,
    )
