"""An existing Starlette service that also receives IronMQ pushes.

The service already has its own routes (``/`` and ``/orders``); mounting a ``PushRouter`` at
``/ironmq`` adds the push endpoint without touching them. Run it against a local dev server,
from the repository root, in one shell::

    ironpush dev --port 8080 &
    export IRONMQ_EMULATOR_HOST=127.0.0.1:8080
    export IRONPUSH_SECRET_KEYS=$(ironpush keygen)   # serve and subscribe share this key
    ironpush serve examples.starlette_service:app --port 8000 &
    ironpush subscribe --app examples.starlette_service:router \\
        --base-url http://127.0.0.1:8000/ironmq
    ironpush post orders '{"id": 1, "total": 25}' '{"total": 3}'
    curl -s http://127.0.0.1:8000/orders             # -> [{"id": 1, "total": 25}]

The second message has no id: the handler drops it (answered 200, logged and counted, never
retried), so only the first one is listed.
"""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Mount, Route

from ironpush import Drop, PushMessage, PushRouter

router = PushRouter()  # keys from IRONPUSH_SECRET_KEYS
processed: list[dict[str, Any]] = []


@router.route(
    "/orders",
    queue="orders",
    subscriber="order-service",
    json=True,
    retries=5,
    retries_delay=10,
    error_queue="orders-errors",
)
async def receive_order(msg: PushMessage) -> Drop | None:
    order = msg.json()
    if not isinstance(order, dict) or "id" not in order:
        return Drop("an order needs an id")  # poison: 200, logged and counted, no retries
    processed.append(order)  # a real service would write to its database here
    return None  # 200: IronMQ deletes the message


async def home(request: Request) -> PlainTextResponse:
    return PlainTextResponse("order service")


async def list_orders(request: Request) -> JSONResponse:
    return JSONResponse(processed)


app = Starlette(
    routes=[
        Route("/", home),
        Route("/orders", list_orders),
        Mount("/ironmq", app=router),
    ],
    lifespan=router.lifespan,  # drains deferred work and flushes acks on shutdown
)
