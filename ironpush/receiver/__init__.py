"""The receiver: :class:`PushRouter`, an ASGI app that answers IronMQ pushes by the contract.

::

    from ironpush import PushRouter, PushMessage

    router = PushRouter()

    @router.route("/orders", queue="orders", subscriber="billing")
    async def billing(msg: PushMessage) -> None: ...
"""

from __future__ import annotations

from ._outcomes import Ack, Defer, Drop, PushMessage, Retry
from ._router import PushRouter

__all__ = ["Ack", "Defer", "Drop", "PushMessage", "PushRouter", "Retry"]
