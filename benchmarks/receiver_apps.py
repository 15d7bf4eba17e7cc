"""The apps that ``bench_receiver.py`` serves, one uvicorn process each (``--factory``).

Anchors (every one reads the request body, as any push endpoint must):

- ``bare``: a Starlette ``Route`` answering an empty 200;
- ``bare_json``: the same, answering the router's JSON reply ``{"status":"acked"}``;
- ``raw``: a raw ASGI app answering an empty 200;
- ``fastapi``: a FastAPI path operation answering an empty 200.

Contestants: ``router`` (``PushRouter``, verification + memory dedupe, ``json=True``, an async
no-op handler), ``mounted`` (the same under ``Mount("/ironmq", router)``), ``defer_external``
(``Defer()``, 202), ``mounted_fast`` / ``mounted_middleware`` (the same route served by
``ironpush.receiver.mount.PushMount`` around, or as middleware of, a Starlette app that also
has a plain route), ``defer_job`` (``Defer(job)`` with a no-op job, acked through the outbox to
``fake_ironmq`` named by ``IRONMQ_EMULATOR_HOST``), ``sqlite`` (``PushRouter(store=path)`` with
the file named by ``BENCH_SQLITE_PATH``). ``fake_ironmq`` answers every ack at once and counts
them (``GET /_count``).

Hand-rolled anchors (what a user would write instead, FastAPI without ironpush):
``handrolled_defer`` (dedupe in a dict, a ``BackgroundTask`` acking with httpx, 202),
``handrolled_redis_quick`` (redis-py ``SET NX PX`` dedupe, 200) and ``handrolled_redis_defer``
(both), Redis named by ``BENCH_REDIS_URL``.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from ironpush import Defer, PushMessage, PushRouter
from ironpush._signing import push_secret

# ``BENCH_IRONPUSH_LOG=warning`` silences the router's line per push (INFO, shown by default):
# what it costs is then measurable as the difference.
if os.environ.get("BENCH_IRONPUSH_LOG"):
    logging.getLogger("ironpush").setLevel(os.environ["BENCH_IRONPUSH_LOG"].upper())

KEYS = ["bench-old-key", "bench-new-key"]
QUEUE, SUBSCRIBER = "orders", "billing"
SECRET = push_secret(QUEUE, SUBSCRIBER, KEYS)

Scope = dict[str, Any]


# --------------------------------------------------------------------------- anchors


async def _empty(request: Request) -> Response:
    await request.body()
    return Response(status_code=200)


async def _json(request: Request) -> JSONResponse:
    await request.body()
    return JSONResponse({"status": "acked"})


def bare() -> Starlette:
    return Starlette(routes=[Route("/orders", _empty, methods=["POST"])])


def bare_json() -> Starlette:
    return Starlette(routes=[Route("/orders", _json, methods=["POST"])])


def raw() -> Any:
    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if not await _http_request(scope, receive, send):
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    return app


def fastapi() -> Any:
    from fastapi import FastAPI

    app = FastAPI()

    @app.post("/orders")
    async def orders(request: Request) -> Response:
        await request.body()
        return Response(status_code=200)

    return app


# --------------------------------------------------------------------------- contestants


def _router(outcome: Any = None, **options: Any) -> PushRouter:
    router = PushRouter(secret_keys=KEYS, **options)

    @router.route("/orders", queue=QUEUE, subscriber=SUBSCRIBER, json=True)
    async def orders(msg: PushMessage) -> Any:
        return outcome

    return router


def router() -> PushRouter:
    return _router()


def mounted() -> Starlette:
    inner = _router()
    return Starlette(routes=[Mount("/ironmq", app=inner)], lifespan=inner.lifespan)


def mounted_fast() -> Any:
    """The same route served by ``PushMount`` around a Starlette app with a plain route."""
    from ironpush.receiver.mount import PushMount

    inner = _router()
    app = Starlette(routes=[Route("/orders", _empty, methods=["POST"])], lifespan=inner.lifespan)
    return PushMount(app, router=inner, path="/ironmq")


def mounted_middleware() -> Starlette:
    """``app.add_middleware(PushMount, ...)``: the form that keeps ``app`` the served object."""
    from ironpush.receiver.mount import PushMount

    inner = _router()
    app = Starlette(routes=[Route("/orders", _empty, methods=["POST"])], lifespan=inner.lifespan)
    app.add_middleware(PushMount, router=inner, path="/ironmq")
    return app


def defer_external() -> PushRouter:
    return _router(Defer())


async def _noop_job() -> None:
    return None


def defer_job() -> PushRouter:
    router = PushRouter(secret_keys=KEYS)

    @router.route("/orders", queue=QUEUE, subscriber=SUBSCRIBER, json=True)
    async def orders(msg: PushMessage) -> Defer:
        return Defer(_noop_job)

    return router


def sqlite() -> PushRouter:
    return _router(store=os.environ["BENCH_SQLITE_PATH"])


# --------------------------------------------------------------------------- hand-rolled


# What a user would write instead of ironpush, kept as standing anchors (issue 23): a FastAPI
# endpoint that checks the push secret, reads the Iron-* headers and the JSON body, dedupes
# with one ``SET NX PX`` in Redis (``BENCH_REDIS_URL``) or a dict in memory, and either answers
# 200 after the handler or 202 with a ``BackgroundTask`` that runs the job, then acknowledges
# with httpx (``DELETE`` of the v3 message, its reservation and subscriber in the body) on the
# IronMQ named by ``IRONMQ_EMULATOR_HOST``. Nothing of ironpush is used but the test secret.


def _handrolled(*, redis: bool, defer: bool) -> Any:
    import hmac

    import httpx
    from fastapi import FastAPI

    app = FastAPI()
    seen: set[str] = set()
    client: Any = None
    if redis:
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(os.environ["BENCH_REDIS_URL"])
    ironmq = httpx.AsyncClient(
        base_url=f"http://{os.environ.get('IRONMQ_EMULATOR_HOST', '127.0.0.1:8080')}",
        headers={"Authorization": "OAuth bench-token"},
        timeout=10,
        # Every connection kept alive: with httpx's default of 20, 64 concurrent acks closed
        # and reopened connections until the pool timed out (httpx.PoolTimeout).
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=100),
    )

    async def fresh(message_id: str) -> bool:
        if client is not None:
            return bool(await client.set(f"seen:{SUBSCRIBER}:{message_id}", 1, nx=True,
                                         px=86_400_000))  # fmt: skip
        if message_id in seen:
            return False
        seen.add(message_id)
        return True

    async def job_then_ack(order: Any, message_id: str, reservation: str) -> None:
        await _noop_job()
        await ironmq.request(
            "DELETE",
            f"/3/projects/dev/queues/{QUEUE}/messages/{message_id}",
            json={"reservation_id": reservation, "subscriber_name": SUBSCRIBER},
        )

    @app.post("/orders")
    async def orders(request: Request) -> Response:
        headers = request.headers
        if not hmac.compare_digest(headers.get("x-ironpush-secret", ""), SECRET):
            return Response(status_code=401)
        message_id = headers.get("iron-message-id")
        reservation = headers.get("iron-reservation-id", "")
        if not message_id:
            return Response(status_code=400)
        order = await request.json()
        if not await fresh(message_id):
            return Response(status_code=200)
        if defer:  # FastAPI's BackgroundTasks are this: run after the answer is sent
            return Response(
                status_code=202,
                background=BackgroundTask(job_then_ack, order, message_id, reservation),
            )
        return Response(status_code=200)

    return app


def handrolled_defer() -> Any:
    """FastAPI, dedupe in a dict, ``BackgroundTask`` acking with httpx: 202."""
    return _handrolled(redis=False, defer=True)


def handrolled_redis_quick() -> Any:
    """FastAPI + redis-py ``SET NX PX`` dedupe, the handler, 200."""
    return _handrolled(redis=True, defer=False)


def handrolled_redis_defer() -> Any:
    """FastAPI + redis-py ``SET NX PX`` dedupe, ``BackgroundTask`` acking with httpx: 202."""
    return _handrolled(redis=True, defer=True)


# --------------------------------------------------------------------------- fake IronMQ


def fake_ironmq() -> Any:
    """Answers every call ``{"msg": "Deleted"}`` at once; ``GET /_count``: DELETEs so far."""
    deletes = 0

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        nonlocal deletes
        if not await _http_request(scope, receive, send):
            return
        if scope["method"] == "DELETE":
            deletes += 1
        body = str(deletes).encode() if scope["path"] == "/_count" else b'{"msg":"Deleted"}'
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


async def _http_request(scope: Scope, receive: Any, send: Any) -> bool:
    """Read an HTTP request's body (True), or run the lifespan protocol (False)."""
    if scope["type"] == "http":
        more = True
        while more:
            more = (await receive()).get("more_body", False)
        return True
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return False
