"""A declared route (:class:`Route`) and the check of its retry budget against the claim lease.

::

    route = router.add_route("/jobs", handle, queue="jobs", subscriber="worker", retries_delay=3)
    lease_warning(route, claim_lease=10.0)   # "route /jobs: IronMQ's retry budget ..."
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass, field
from typing import Any, Literal, TypedDict

from .._protocol import DEFAULT_RETRIES, DEFAULT_RETRIES_DELAY
from ._outcomes import Handler

__all__ = ["Route", "RouteOptions", "is_async", "lease_warning", "retry_budget"]


class RouteOptions(TypedDict, total=False):
    """The optional keyword arguments of ``PushRouter.route`` (those of ``add_route``)."""

    json: bool
    push_type: Literal["multicast", "unicast"] | None
    retries: int | None
    retries_delay: float | None
    error_queue: str | None
    dead_letter_queue: str | None


@dataclass(frozen=True, slots=True)
class Route:
    """One declared route: a path, the queue and subscriber it serves, and its handler.

    ``push_type``, ``retries``, ``retries_delay`` and ``error_queue`` are what ``ironpush
    subscribe`` registers on the queue (``None``: leave the queue's setting alone).
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
    is_async: bool = field(default=False, repr=False)
    secrets: tuple[bytes, ...] = field(default=(), repr=False)


def is_async(fn: Any) -> bool:
    """Whether calling ``fn`` returns a coroutine (async functions, partials of them, and
    instances with an async ``__call__``)."""
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
