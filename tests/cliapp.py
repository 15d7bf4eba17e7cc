"""Routers for the CLI's ``subscribe --app`` tests: keys v1 then rotated to v2, and a router
whose routes are renamed and removed (``stale_v1`` then ``stale_v2``), and one whose only route
on a queue is removed (``scan_v1`` then ``scan_v2``: found by ``--scan-all`` only)."""

from __future__ import annotations

from ironpush.receiver._outcomes import PushMessage
from ironpush.receiver._router import PushRouter


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


def _renamed_router() -> PushRouter:
    """``stale-mail``'s subscriber renamed mailer -> mailer2, the ``/audit`` route removed."""
    router = PushRouter(secret_keys=["key-one-0123456789"])
    router.add_route("/orders", _handler, queue="stale-orders", subscriber="billing")
    router.add_route("/mail", _handler, queue="stale-mail", subscriber="mailer2")
    return router


def _first_router() -> PushRouter:
    router = PushRouter(secret_keys=["key-one-0123456789"])
    router.add_route("/orders", _handler, queue="stale-orders", subscriber="billing")
    router.add_route("/audit", _handler, queue="stale-orders", subscriber="audit")
    router.add_route("/mail", _handler, queue="stale-mail", subscriber="mailer")
    return router


stale_v1 = _first_router()
stale_v2 = _renamed_router()

# (1 + 1) x 3 s of retries is less than twice the 10 s claim lease: subscribe warns.
short_budget = PushRouter(secret_keys=["key-one-0123456789"], claim_lease=10.0)
short_budget.add_route(
    "/quick", _handler, queue="budget-q", subscriber="quick", retries=1, retries_delay=3
)


def _scan_router(*, with_mail: bool) -> PushRouter:
    """Routes on ``scan-orders`` and ``scan-mail``; without ``with_mail`` the ``/mail`` route
    is removed, so that no route declares ``scan-mail`` any more (``subscribe --scan-all``)."""
    router = PushRouter(secret_keys=["key-one-0123456789"])
    router.add_route("/orders", _handler, queue="scan-orders", subscriber="billing")
    if with_mail:
        router.add_route("/mail", _handler, queue="scan-mail", subscriber="mailer")
    return router


scan_v1 = _scan_router(with_mail=True)
scan_v2 = _scan_router(with_mail=False)
