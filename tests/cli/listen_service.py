"""The local service of the ``ironpush listen`` tests, run by uvicorn in its own process.

It is an ordinary ironpush service configured for the dev server (``IRONMQ_EMULATOR_HOST``,
``IRONPUSH_SECRET_KEYS``): nothing in it knows about ``listen``. Its routes:

- ``/quick``: 200;
- ``/defer``: ``Defer(job)``: 202, the job records the body, the router acks;
- ``/worker``: ``Defer()``: 202, the ack token is kept for an external worker (``GET /state``);
- ``/failing``: raises: 500, every time;
- ``/gated``: waits until ``POST /gate`` opens the gate, then 200.

``GET /state`` says what ran: ``{"calls": {path: [bodies]}, "jobs": [bodies], "tokens":
{body: token}, "ids": {body: message id}, "headers": {body: {...}}}``.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

from listen_routes import QUEUES, SUBSCRIBER
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from ironpush import Defer, PushMessage, PushRouter

router = PushRouter()
calls: dict[str, list[str]] = defaultdict(list)
jobs: list[str] = []
tokens: dict[str, str] = {}
ids: dict[str, str] = {}
headers: dict[str, dict[str, str]] = {}
gate = asyncio.Event()


def _seen(path: str, msg: PushMessage) -> str:
    body = msg.text
    calls[path].append(body)
    ids[body] = msg.id
    headers[body] = {k.lower(): v for k, v in msg.headers.items()}
    return body


@router.route("/quick", queue=QUEUES["/quick"], subscriber=SUBSCRIBER)
async def quick(msg: PushMessage) -> None:
    _seen("/quick", msg)


def job(body: str) -> None:
    jobs.append(body)


@router.route("/defer", queue=QUEUES["/defer"], subscriber=SUBSCRIBER)
async def deferred(msg: PushMessage) -> Defer:
    return Defer(job, _seen("/defer", msg))


@router.route("/worker", queue=QUEUES["/worker"], subscriber=SUBSCRIBER)
async def worker(msg: PushMessage) -> Defer:
    body = _seen("/worker", msg)
    assert msg.ack_token is not None
    tokens[body] = msg.ack_token
    return Defer()


@router.route("/failing", queue=QUEUES["/failing"], subscriber=SUBSCRIBER)
async def failing(msg: PushMessage) -> None:
    _seen("/failing", msg)
    raise RuntimeError("boom")


@router.route("/gated", queue=QUEUES["/gated"], subscriber=SUBSCRIBER)
async def gated(msg: PushMessage) -> None:
    calls["/gated:started"].append(msg.text)
    ids[msg.text] = msg.id
    await gate.wait()
    _seen("/gated", msg)


async def state(request: Request) -> JSONResponse:
    doc: dict[str, Any] = {
        "calls": dict(calls),
        "jobs": jobs,
        "tokens": tokens,
        "ids": ids,
        "headers": headers,
    }
    return JSONResponse(doc)


async def open_gate(request: Request) -> JSONResponse:
    gate.set()
    return JSONResponse({"open": True})


app = Starlette(
    routes=[
        Route("/state", state),
        Route("/gate", open_gate, methods=["POST"]),
        Mount("/ironmq", app=router),
    ],
    lifespan=router.lifespan,
)
