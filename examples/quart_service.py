"""A Quart service, served by Hypercorn, that also receives IronMQ pushes.

Quart's way to add ASGI middleware is to wrap ``app.asgi_app``: ``PushMount`` hands every
path under ``/ironmq`` to the router before Quart's routing and runs the router's lifespan
after Quart's own startup (and drains it before Quart's shutdown). Run it against a dev server,
from the repository root::

    ironpush dev --port 8080 &
    export IRONMQ_EMULATOR_HOST=127.0.0.1:8080
    export IRONPUSH_SECRET_KEYS=$(ironpush keygen)   # the service and subscribe share this key
    hypercorn examples.quart_service:app --bind 127.0.0.1:8000 &
    ironpush subscribe --app examples.quart_service:router \\
        --base-url http://127.0.0.1:8000/ironmq
    ironpush post orders '{"id": 1, "total": 25}'
    curl -s http://127.0.0.1:8000/orders   # -> [{"number": 1, "total": 25, "invoiced": true}]
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from quart import Quart
from quart.typing import ResponseReturnValue

from ironpush import Defer, PushMessage, PushRouter
from ironpush.receiver.mount import PushMount

router = PushRouter()  # keys from IRONPUSH_SECRET_KEYS
orders: dict[int, dict[str, Any]] = {}  # a real service would use its database

# Making an invoice is the slow part (rendering and mailing a PDF): simulated here.
INVOICE_SECONDS = float(os.environ.get("SHOP_INVOICE_SECONDS", "0.5"))


async def make_invoice(number: int) -> None:
    await asyncio.sleep(INVOICE_SECONDS)
    orders[number]["invoiced"] = True


@router.route("/orders", queue="orders", subscriber="quart-shop", json=True, retries_delay=30)
async def receive_order(msg: PushMessage) -> Defer:
    order = msg.json()
    orders[order["id"]] = {"number": order["id"], "total": order["total"], "invoiced": False}
    return Defer(make_invoice, order["id"])  # 202 now; acknowledged when the invoice is done


app = Quart(__name__)
app.asgi_app = PushMount(app.asgi_app, router=router, path="/ironmq")  # type: ignore[assignment]


@app.get("/")
async def home() -> ResponseReturnValue:
    return "quart shop"


@app.get("/orders")
async def list_orders() -> ResponseReturnValue:
    return sorted(orders.values(), key=lambda order: order["number"])
