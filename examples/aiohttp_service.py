"""An aiohttp service that also receives IronMQ pushes.

aiohttp is not an ASGI framework: ``aiohttp-asgi``'s ``ASGIResource`` serves the router under
``/ironmq`` inside aiohttp's own router, and ``lifespan_mount`` runs the router's lifespan in
aiohttp's startup and cleanup (``web.run_app`` stops gracefully on SIGTERM: deferred jobs
drain, acks are sent). Run it against a dev server, from the repository root::

    pip install aiohttp aiohttp-asgi
    ironpush dev --port 8080 &
    export IRONMQ_EMULATOR_HOST=127.0.0.1:8080
    export IRONPUSH_SECRET_KEYS=$(ironpush keygen)   # the service and subscribe share this key
    python -m examples.aiohttp_service --port 8000 &
    ironpush subscribe --app examples.aiohttp_service:router \\
        --base-url http://127.0.0.1:8000/ironmq
    ironpush post orders '{"id": 1, "total": 25}'
    curl -s http://127.0.0.1:8000/orders   # -> [{"number": 1, "total": 25, "invoiced": true}]
"""

from __future__ import annotations

import argparse
import asyncio
import os
from typing import Any

from aiohttp import web
from aiohttp_asgi import ASGIResource

from ironpush import Defer, PushMessage, PushRouter

router = PushRouter()  # keys from IRONPUSH_SECRET_KEYS
orders: dict[int, dict[str, Any]] = {}  # a real service would use its database

# Making an invoice is the slow part (rendering and mailing a PDF): simulated here.
INVOICE_SECONDS = float(os.environ.get("SHOP_INVOICE_SECONDS", "0.5"))


async def make_invoice(number: int) -> None:
    await asyncio.sleep(INVOICE_SECONDS)
    orders[number]["invoiced"] = True


@router.route("/orders", queue="orders", subscriber="aiohttp-shop", json=True, retries_delay=30)
async def receive_order(msg: PushMessage) -> Defer:
    order = msg.json()
    orders[order["id"]] = {"number": order["id"], "total": order["total"], "invoiced": False}
    return Defer(make_invoice, order["id"])  # 202 now; acknowledged when the invoice is done


async def home(request: web.Request) -> web.Response:
    return web.Response(text="aiohttp shop")


async def list_orders(request: web.Request) -> web.Response:
    return web.json_response(sorted(orders.values(), key=lambda order: order["number"]))


def make_app() -> web.Application:
    app = web.Application()
    app.router.add_get("/", home)
    app.router.add_get("/orders", list_orders)
    pushes = ASGIResource(router, root_path="/ironmq")
    app.router.register_resource(pushes)
    pushes.lifespan_mount(app)  # the router starts and drains with aiohttp
    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    web.run_app(make_app(), host=args.host, port=args.port)
