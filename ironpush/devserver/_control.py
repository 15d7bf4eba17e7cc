"""The ``/_dev`` control plane: dev-only endpoints for tests and tools (token required when set).

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

``/_dev/events``, ``/_dev/replay`` and ``/_dev/ui`` are the inspector's (:mod:`._inspector`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from .._errors import APIError
from ._engine import Engine
from ._http import authorized, error, read_body
from ._validation import number, obj, optional_str, parse_json

Control = Callable[[Request, Engine], Awaitable[Response]]


def _dev(handler: Control) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        engine: Engine = request.app.state.engine
        if not authorized(engine.config, request):
            return error(401, "Invalid token")
        try:
            return await handler(request, engine)
        except APIError as exc:
            return error(exc.status_code, exc.msg)

    return endpoint


async def dev_health(request: Request, engine: Engine) -> Response:
    return JSONResponse({"ok": True})


async def dev_state(request: Request, engine: Engine) -> Response:
    return JSONResponse(engine.summary())


async def dev_reset(request: Request, engine: Engine) -> Response:
    await engine.reset()
    return JSONResponse({"msg": "Reset"})


async def dev_deliveries(request: Request, engine: Engine) -> Response:
    params = request.query_params
    wanted = {k: params[k] for k in ("project", "queue", "message_id") if params.get(k)}
    limit_raw = params.get("limit", "1000")
    if not (limit_raw.isascii() and limit_raw.isdigit()):  # "²".isdigit() is true
        raise APIError(400, "limit must be an integer")
    return JSONResponse({"deliveries": engine.deliveries(wanted, int(limit_raw))})


async def dev_idle(request: Request, engine: Engine) -> Response:
    params = request.query_params
    try:
        timeout = min(60.0, max(0.0, float(params.get("timeout", "10"))))
    except ValueError:
        raise APIError(400, "timeout must be a number") from None
    project, queue = params.get("project") or None, params.get("queue") or None
    busy = await engine.wait_idle(project, queue, timeout)
    return JSONResponse({"idle": busy == 0, "busy": busy})


async def dev_expire(request: Request, engine: Engine) -> Response:
    body = obj(parse_json(await read_body(request, 64 * 1024)))
    names = {k: optional_str(body, k) for k in ("project", "queue", "message_id", "subscriber")}
    project, queue, mid = names["project"], names["queue"], names["message_id"]
    if not (project and queue and mid):
        raise APIError(400, "project, queue and message_id are required")
    wait = number(body, "wait", low=0, high=60) or 0.0
    subscriber = names["subscriber"]
    expired = await engine.expire(project, queue, mid, subscriber, wait=wait)
    if not expired:
        who = f" for subscriber {subscriber!r}" if subscriber else ""
        raise APIError(409, f"message {mid} has no live reservation{who} to expire")
    return JSONResponse({"expired": expired})


def routes() -> list[BaseRoute]:
    return [
        Route("/_dev/health", _dev(dev_health), methods=["GET"]),
        Route("/_dev/state", _dev(dev_state), methods=["GET"]),
        Route("/_dev/reset", _dev(dev_reset), methods=["POST"]),
        Route("/_dev/deliveries", _dev(dev_deliveries), methods=["GET"]),
        Route("/_dev/idle", _dev(dev_idle), methods=["GET"]),
        Route("/_dev/expire", _dev(dev_expire), methods=["POST"]),
    ]
