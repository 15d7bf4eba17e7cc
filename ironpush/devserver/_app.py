"""The dev server's ASGI app: IronMQ's v3 API plus a ``/_dev`` control plane.

Routing works on the **raw** request path and percent-decodes each segment afterwards, so a
queue named ``a/b`` (sent as ``a%2Fb``, as the client escapes every segment) is one segment,
not two. Every error is a JSON ``{"msg": ...}`` with a 4xx status; the server keeps serving.

Control plane (dev only; needs the token when one is configured):

- ``GET /_dev/health`` → ``{"ok": true}``
- ``GET /_dev/state`` → counts per project and queue (size, ready, delayed, reserved, pushing…)
  and the pusher's counters (attempts, in flight, messages being pushed, tries due — the
  ``backlog`` — and posts held by back-pressure), all from running counts
- ``POST /_dev/reset`` → forget every queue and message (and wipe the database)
- ``GET /_dev/deliveries?project=&queue=&message_id=&limit=`` → the latest push attempts
  (subscriber, try, reservation id, status code or failure reason, duration), oldest first
- ``GET /_dev/idle?project=&queue=&timeout=`` → waits until no message is being pushed
  (``{"idle": true}``) or ``timeout`` seconds pass (``{"idle": false, "busy": n}``)
- ``POST /_dev/expire`` with ``{"project", "queue", "message_id", "subscriber"?, "wait"?}`` →
  ends the message's current 202 push reservations (of one subscriber, or all) or its pull
  reservation **now**, as if the window had run out: the pusher pushes it again at once with a
  new reservation id (counting a try), a pull message goes back to the front of its queue.
  Answers ``{"expired": [{"subscriber", "reservation_id"}, ...]}`` (``subscriber`` is null
  for a pull reservation). ``wait`` (seconds, default 0) waits for a reservation to appear
  (a 202 still on its way); 409 when there is none to expire. Tests use this instead of racing
  a short ``retries_delay`` or reservation timeout.
- ``GET /_dev/events`` → Server-Sent Events: every push attempt, ack, expiry, error-queue
  report and replay (:mod:`.events`); ``POST /_dev/replay`` pushes a message again
  (:mod:`.replay`); ``GET /_dev/ui`` is the web inspector (:mod:`.inspector`, loopback only).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import re
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote, unquote

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .._errors import APIError
from . import _api as api
from . import _inspector as inspector
from ._entities import MessageState
from ._limits import Limits
from ._options import DevConfig
from ._persistence import Persistence
from ._pusher import Pusher
from ._state import Store
from ._validation import number, obj, optional_str, parse_json

__all__ = ["Engine", "create_app"]

log = logging.getLogger("ironpush.devserver")


class Engine:
    """The running server's state and pusher; built by the app's lifespan on its event loop."""

    def __init__(self, config: DevConfig) -> None:
        self.config = config
        self.db = Persistence(config.db) if config.db else None
        self.store = Store(config, self.db)
        self.pusher = Pusher(self.store, config)
        self.limits = Limits.of(strict=config.strict, max_message_size=config.max_message_size)
        if self.db is not None:
            self.store.load()
            self.db.start(self.store.loop)

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self.store.loop

    async def close(self) -> None:
        await self.pusher.close()
        for m in self.store.live.values():
            m.cancel_timers()
        if self.db is not None:
            await asyncio.to_thread(self.db.close)


def _error(status: int, msg: str) -> JSONResponse:
    # 503 is the dev server's back-pressure (see api._room_to_push): say when to come back.
    headers = {"Retry-After": "1"} if status == 503 else None
    return JSONResponse({"msg": msg}, status_code=status, headers=headers)


def _authorized(config: DevConfig, request: Request) -> bool:
    if config.token is None:
        return True
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() in ("oauth", "bearer") and value.strip():
        given = value.strip()
    else:
        given = request.query_params.get("oauth", "")
    return bool(given) and hmac.compare_digest(given.encode(), config.token.encode())


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    # isascii: str.isdigit() is true for "²", which int() refuses.
    if declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise APIError(413, f"request body is larger than {limit} bytes")
    chunks = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise APIError(413, f"request body is larger than {limit} bytes")
            chunks.append(chunk)
    except ClientDisconnect:  # a client going away is not a server error (no 500, no traceback)
        raise APIError(400, "the client disconnected before sending the whole body") from None
    return b"".join(chunks)


# The official Java client sends DELETE and PATCH as POST with this header (HttpURLConnection
# has no PATCH); any POST may carry it.
_OVERRIDE = "x-http-method-override"
_OVERRIDABLE = frozenset({"DELETE", "PATCH", "PUT", "POST"})


def _method(request: Request) -> str:
    override = request.headers.get(_OVERRIDE)
    if override is None or request.method != "POST":
        return request.method
    method = override.strip().upper()
    if method not in _OVERRIDABLE:
        raise APIError(400, "X-HTTP-Method-Override must be DELETE, PATCH or PUT")
    return method


def _segments(request: Request) -> list[str]:
    raw = request.scope.get("raw_path")
    path = raw.decode("latin-1") if raw else quote(request.scope["path"])
    path = path.split("?", 1)[0]
    parts = path.split("/")[1:]
    if parts and parts[-1] == "":
        parts.pop()  # tolerate a trailing slash (v1 clients wrote /alerts/)
    return [unquote(p, errors="replace") for p in parts]


async def api_endpoint(request: Request) -> Response:
    engine: Engine = request.app.state.engine
    config = engine.config
    segments = _segments(request)
    if len(segments) < 4 or segments[:2] != ["3", "projects"] or not segments[2]:
        return _error(404, "Not found: the dev server speaks /3/projects/{project_id}/...")
    project = segments[2]
    try:
        method = _method(request)
    except APIError as exc:
        return _error(exc.status_code, exc.msg)
    found = api.match(method, segments[3:])
    if found is None:
        return _error(404, "Not found")
    if isinstance(found, APIError):
        return _error(found.status_code, found.msg)
    handler, params = found
    if not _authorized(config, request):
        return _error(401, "Invalid token")
    if config.project_id is not None and project != config.project_id:
        return _error(404, "Project not found")
    call = api.Call(
        store=engine.store,
        pusher=engine.pusher,
        project=project,
        params=params,
        query=request.query_params,
        headers=request.headers,
        read_body=lambda: _read_body(request, config.max_request_size),
        limits=engine.limits,
    )
    try:
        status, data = await handler(call)
    except APIError as exc:
        return _error(exc.status_code, exc.msg)
    except Exception:
        log.exception("dev server: unexpected error on %s %s", request.method, request.url.path)
        return _error(500, "Internal dev server error (see the server log)")
    return JSONResponse(data, status_code=status)


# --------------------------------------------------------------------------- control plane


def _dev(handler: Any) -> Any:
    async def endpoint(request: Request) -> Response:
        engine: Engine = request.app.state.engine
        if not _authorized(engine.config, request):
            return _error(401, "Invalid token")
        try:
            result: Response = await handler(request, engine)
        except APIError as exc:
            return _error(exc.status_code, exc.msg)
        return result

    return endpoint


async def dev_health(request: Request, engine: Engine) -> Response:
    return JSONResponse({"ok": True})


async def dev_state(request: Request, engine: Engine) -> Response:
    data = engine.store.activity.summary()
    data["pusher"] = {
        "attempts": engine.pusher.attempts,
        "in_flight": engine.pusher.in_flight,
        "pushing": engine.store.pushing,
        "backlog": engine.pusher.backlog,
        "held_posts": engine.store.activity.held_posts,
    }
    data["db"] = engine.config.db
    return JSONResponse(data)


async def dev_reset(request: Request, engine: Engine) -> Response:
    engine.store.reset()
    engine.pusher.deliveries.clear()
    await engine.store.durable()
    return JSONResponse({"msg": "Reset"})


async def dev_deliveries(request: Request, engine: Engine) -> Response:
    params = request.query_params
    wanted = {k: params[k] for k in ("project", "queue", "message_id") if params.get(k)}
    limit_raw = params.get("limit", "1000")
    if not (limit_raw.isascii() and limit_raw.isdigit()):  # "²".isdigit() is true
        raise APIError(400, "limit must be an integer")
    entries = [e for e in engine.pusher.deliveries if all(e[k] == v for k, v in wanted.items())]
    return JSONResponse({"deliveries": entries[-int(limit_raw) :] if int(limit_raw) else []})


async def dev_idle(request: Request, engine: Engine) -> Response:
    params = request.query_params
    try:
        timeout = min(60.0, max(0.0, float(params.get("timeout", "10"))))
    except ValueError:
        raise APIError(400, "timeout must be a number") from None
    project, queue = params.get("project") or None, params.get("queue") or None
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(engine.store.activity.idle_waiter(project, queue), timeout)
    busy = engine.store.activity.busy(project, queue)
    return JSONResponse({"idle": busy == 0, "busy": busy})


async def dev_expire(request: Request, engine: Engine) -> Response:
    body = obj(parse_json(await _read_body(request, 64 * 1024)))
    names = {k: optional_str(body, k) for k in ("project", "queue", "message_id", "subscriber")}
    project, queue, mid = names["project"], names["queue"], names["message_id"]
    if not (project and queue and mid):
        raise APIError(400, "project, queue and message_id are required")
    wait = number(body, "wait", low=0, high=60) or 0.0
    store = engine.store
    deadline = engine.loop.time() + wait
    while True:
        m = store.message(store.queue(project, queue), mid, finished=True)
        expired = _expire(engine, m, names["subscriber"])
        if expired or engine.loop.time() >= deadline:
            break
        await asyncio.sleep(0.002)  # dev-only control: a short poll while a 202 is on its way
    if not expired:
        who = f" for subscriber {names['subscriber']!r}" if names["subscriber"] else ""
        raise APIError(409, f"message {mid} has no live reservation{who} to expire")
    await store.durable()
    return JSONResponse({"expired": expired})


def _expire(engine: Engine, m: MessageState, subscriber: str | None) -> list[dict[str, Any]]:
    if engine.store.alive(m) is None:
        return []
    if m.push is not None:
        return list(engine.pusher.expire_now(m, subscriber))
    rid = None if subscriber else engine.store.expire_reservation(m)
    return [{"subscriber": None, "reservation_id": rid}] if rid else []


# --------------------------------------------------------------------------- app


async def _http_error(request: Request, exc: Exception) -> Response:
    # Starlette's own answers (405 for an unknown method such as TRACE) as JSON {"msg"} too.
    status, msg = getattr(exc, "status_code", 500), getattr(exc, "detail", "error")
    return JSONResponse({"msg": msg}, status_code=status, headers=getattr(exc, "headers", None))


def create_app(config: DevConfig | None = None) -> Starlette:
    """The dev server as an ASGI app (serve it with uvicorn; see :class:`DevServer`).

    ::

        app = create_app(DevConfig(token="secret", db="dev.sqlite"))
    """
    config = config or DevConfig()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        engine = Engine(config)
        app.state.engine = engine
        try:
            yield
        finally:
            await engine.close()

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
    api_route = Route("/{path:path}", api_endpoint, methods=methods)
    # DOTALL: "." must match a "\n" too, or a queue named "a\nb" (sent as a%0Ab) is created
    # by a PUT (a trailing "\n" matches "$") and then unreachable (404) for everything else.
    api_route.path_regex = re.compile(api_route.path_regex.pattern, re.DOTALL)
    routes = [
        Route("/_dev/health", _dev(dev_health), methods=["GET"]),
        Route("/_dev/state", _dev(dev_state), methods=["GET"]),
        Route("/_dev/reset", _dev(dev_reset), methods=["POST"]),
        Route("/_dev/deliveries", _dev(dev_deliveries), methods=["GET"]),
        Route("/_dev/idle", _dev(dev_idle), methods=["GET"]),
        Route("/_dev/expire", _dev(dev_expire), methods=["POST"]),
        *inspector.routes(config, _authorized),  # /_dev/events, /_dev/replay, /_dev/ui
        api_route,
    ]
    app = Starlette(
        routes=routes, lifespan=lifespan, exception_handlers={HTTPException: _http_error}
    )
    app.state.config = config
    return app
