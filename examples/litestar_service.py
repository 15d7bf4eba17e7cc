"""A Litestar service that also receives IronMQ pushes.

Litestar mounts the router with an ASGI route handler (``is_mount=True``: every path under
``/ironmq`` reaches it) and runs its lifespan with the app's (``lifespan=[router.lifespan]``:
the outbox is flushed at startup, deferred jobs drain at shutdown). Run it against a dev server,
from the repository root::

    ironpush dev --port 8080 &
    export IRONMQ_EMULATOR_HOST=127.0.0.1:8080
    export IRONPUSH_SECRET_KEYS=$(ironpush keygen)   # the service and subscribe share this key
    uvicorn examples.litestar_service:app --port 8000 &
    ironpush subscribe --app examples.litestar_service:router \\
        --base-url http://127.0.0.1:8000/ironmq
    ironpush post orders '{"id": 1, "total": 25}'
    curl -s http://127.0.0.1:8000/orders   # -> [{"number": 1, "total": 25, "invoiced": true}]
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from litestar import Litestar, get
from litestar.handlers import asgi
from litestar.types import Receive, Scope, Send

from ironpush import Defer, PushMessage, PushRouter

router = PushRouter()  # keys from IRONPUSH_SECRET_KEYS
orders: dict[int, dict[str, Any]] = {}  # a real service would use its database

# Making an invoice is the slow part (rendering and mailing a PDF): simulated here.
INVOICE_SECONDS = float(os.environ.get("SHOP_INVOICE_SECONDS", "0.5"))


async def make_invoice(number: int) -> None:
    await asyncio.sleep(INVOICE_SECONDS)
    orders[number]["invoiced"] = True


@router.route("/orders", queue="orders", subscriber="litestar-shop", json=True, retries_delay=30)
async def receive_order(msg: PushMessage) -> Defer:
    order = msg.json()
    orders[order["id"]] = {"number": order["id"], "total": order["total"], "invoiced": False}
    return Defer(make_invoice, order["id"])  # 202 now; acknowledged when the invoice is done


@asgi("/ironmq", is_mount=True)
async def ironmq(scope: Scope, receive: Receive, send: Send) -> None:
    await router(scope, receive, send)  # type: ignore[arg-type]


@get("/")
async def home() -> str:
    return "litestar shop"


@get("/orders", sync_to_thread=False)
def list_orders() -> list[dict[str, Any]]:
    return sorted(orders.values(), key=lambda order: order["number"])


app = Litestar(route_handlers=[home, list_orders, ironmq], lifespan=[router.lifespan])
