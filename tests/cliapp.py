"""Routers for the CLI's ``subscribe --app`` tests (keys v1, then rotated to v2)."""

from __future__ import annotations

from ironpush.receiver.outcomes import PushMessage
from ironpush.receiver.router import PushRouter


def _handler(msg: PushMessage) -> None:
    return None


def _router(keys: list[str]) -> PushRouter:
    router = PushRouter(secret_keys=keys)
    router.add_route(
        "/orders", _handler, queue="cli-orders", subscriber="billing", retries=2, retries_delay=0.5
    )
    router.add_route("/orders-audit", _handler, queue="cli-orders", subscriber="audit")
    router.add_route(
        "/mail",
        _handler,
        queue="cli-mail",
        subscriber="mailer",
        push_type="unicast",
        error_queue="cli-mail-errors",
    )
    return router


router_v1 = _router(["key-one-0123456789"])
router_v2 = _router(["key-one-0123456789", "key-two-0123456789"])  # rotated: signs with key two
not_a_router = object()
empty_router = PushRouter(secret_keys=["key-one-0123456789"])
