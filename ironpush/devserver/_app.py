"""The dev server's ASGI app: IronMQ's v3 API plus the ``/_dev`` control plane and inspector.

Routing works on the **raw** request path and percent-decodes each segment afterwards, so a
queue named ``a/b`` (sent as ``a%2Fb``, as the client escapes every segment) is one segment,
not two. Every error is a JSON ``{"msg": ...}`` with a 4xx status; the server keeps serving.
The app's lifespan builds the :class:`~._engine.Engine` on the server's event loop; every
endpoint talks to it. The control plane is :mod:`._control`, the inspector and the event
stream :mod:`._inspector`; before any of them, :mod:`._access` refuses a foreign ``Host`` and
requests made by other sites' pages.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import AsyncIterator
from urllib.parse import quote, unquote

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .._devserver_settings import DevConfig
from .._errors import APIError
from . import _control as control
from . import _inspector as inspector
from ._access import Access, AccessGuard
from ._call import Call
from ._engine import Engine
from ._http import authorized, error, read_body, until_disconnected
from ._routes import match

log = logging.getLogger("ironpush.devserver")

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
        return error(404, "Not found: the dev server speaks /3/projects/{project_id}/...")
    project = segments[2]
    try:
        method = _method(request)
    except APIError as exc:
        return error(exc.status_code, exc.msg)
    found = match(method, segments[3:])
    if found is None:
        return error(404, "Not found")
    if isinstance(found, APIError):
        return error(found.status_code, found.msg)
    handler, params = found
    if not authorized(config, request):
        return error(401, "Invalid token")
    if config.project_id is not None and project != config.project_id:
        return error(404, "Project not found")
    call = Call(
        engine=engine,
        project=project,
        params=params,
        query=request.query_params,
        headers=request.headers,
        read_body=lambda: read_body(request, config.max_request_size),
        disconnected=lambda: until_disconnected(request),
    )
    try:
        status, data = await handler(call)
    except APIError as exc:
        return error(exc.status_code, exc.msg)
    except Exception:
        log.exception("dev server: unexpected error on %s %s", request.method, request.url.path)
        return error(500, "Internal dev server error (see the server log)")
    return JSONResponse(data, status_code=status)


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
    routes = [*control.routes(), *inspector.routes(config), api_route]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: _http_error},
        # Before any endpoint: a foreign Host or another site's page is refused everywhere.
        middleware=[Middleware(AccessGuard, access=Access.of(config))],
    )
    app.state.config = config
    return app
