"""The dev server's web inspector at ``/_dev/ui``, and its event stream at ``/_dev/events``.

Open ``http://127.0.0.1:8080/_dev/ui`` while ``ironpush dev`` runs:

- **overview**: every queue (size, type, subscribers, push settings) and the live delivery feed
  (pushes, answers, retries, acks, error-queue reports) updating without a reload;
- **a queue**: its settings, subscribers (secrets masked), messages (live and recently
  finished), error-queue reports with a replay button, a post form and a clear button;
- **a message**: the body (indented when it is JSON), its push headers, and per subscriber the
  final push status and every attempt: the headers IronMQ sent, status code, the start of the
  answer, latency, reservation and how it was acknowledged; buttons replay it to one subscriber
  or to all (see :mod:`ironpush.devserver._replay`).

Server-rendered HTML plus one small vendored script (``static/inspector.js``: an
``EventSource`` on ``/_dev/events`` that adds feed rows and refreshes the parts an event
touched); nothing is fetched from the internet. Access rules: :mod:`.guard`.

Also here: ``POST /_dev/replay`` with ``{"project", "queue", "message_id", "subscribers"?,
"body"?, "push_headers"?}`` → ``{"message_id", "how", "subscribers"}``, what
``ironpush replay`` uses on a dev server.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict
from importlib import resources
from urllib.parse import parse_qsl, quote, unquote

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from ..._devserver_settings import DevConfig
from ..._errors import APIError
from .._engine import Engine
from .._events import events_endpoint
from .._http import authorized
from .._replay import Replay
from .._validation import obj, optional_str, parse_json, push_headers
from . import pages
from .actions import ACTIONS
from .guard import COOKIE, Guard
from .html import UI, error_page, page

STATIC_TYPES = {"inspector.js": "text/javascript", "inspector.css": "text/css"}
MAX_FORM = 512 * 1024
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def _engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def _segments(request: Request, prefix: str) -> list[str]:
    """Percent-decoded path segments after ``prefix`` (a queue named ``a/b`` stays one)."""
    raw = request.scope.get("raw_path") or quote(request.scope["path"]).encode()
    path = raw.decode("latin-1").split("?", 1)[0][len(prefix) :]
    return [unquote(p, errors="replace") for p in path.strip("/").split("/") if p]


class Inspector:
    """The routes of one dev server's inspector (one guard, so one page token per process)."""

    def __init__(self, config: DevConfig) -> None:
        self.config = config
        self.guard = Guard(config)
        self._flashes: OrderedDict[str, str] = OrderedDict()
        self._static: dict[str, bytes] = {}

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/_dev/events", self.events, methods=["GET"]),
            Route("/_dev/replay", self.replay_control, methods=["POST"]),
            Route(UI, self.overview, methods=["GET"]),
            Route(UI + "/static/{name}", self.static, methods=["GET"]),
            Route(UI + "/actions/{name}", self.action, methods=["POST"]),
            Route(UI + "/q/{rest:path}", self.queue_or_message, methods=["GET"]),
        ]

    # ------------------------------------------------------------------ control plane

    async def events(self, request: Request) -> Response:
        if not (authorized(self.config, request) or self.guard.signed_in(request)):
            return JSONResponse({"msg": "Invalid token"}, status_code=401)
        try:
            return await events_endpoint(request, _engine(request).events)
        except APIError as exc:
            return JSONResponse({"msg": exc.msg}, status_code=exc.status_code)

    async def replay_control(self, request: Request) -> Response:
        if not authorized(self.config, request):
            return JSONResponse({"msg": "Invalid token"}, status_code=401)
        engine = _engine(request)
        try:
            body = obj(parse_json(await request.body()))
            project, queue = optional_str(body, "project"), optional_str(body, "queue")
            if not (project and queue):
                raise APIError(400, "project and queue are required")
            names = body.get("subscribers") or []
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise APIError(400, "subscribers must be an array of names")
            raw_body = body.get("body")
            if raw_body is not None and not isinstance(raw_body, str):
                raise APIError(400, "body must be a string")
            ask = Replay(
                project,
                queue,
                optional_str(body, "message_id") or None,
                subscribers=names,
                body=raw_body,
                push_headers=push_headers(body.get("push_headers")),
            )
            done = await engine.replay(ask)
        except APIError as exc:
            return JSONResponse({"msg": exc.msg}, status_code=exc.status_code)
        return JSONResponse(done)

    # ------------------------------------------------------------------ pages

    def _page(self, request: Request, title: str, content: str, query: str = "") -> Response:
        flash = self._flashes.pop(request.query_params.get("flash", ""), None)
        html = page(
            title,
            content,
            csrf=self.guard.page_token,
            last_event_id=_engine(request).events.last_id,
            stream_query=query,
            notice=flash,
        )
        return HTMLResponse(html, headers=_headers())

    def _refused(self, request: Request) -> Response | None:
        refused = self.guard.refusal(request)
        if refused is None:
            return None
        return HTMLResponse(error_page(*refused), status_code=refused[0], headers=_headers())

    async def overview(self, request: Request) -> Response:
        if self.guard.token_in_query(request):  # the sign-in link of a server with a token
            response = RedirectResponse(UI, status_code=303)
            response.set_cookie(
                COOKIE, self.guard.cookie_value(), httponly=True, samesite="strict", path="/_dev"
            )
            return response
        refused = self._refused(request)
        if refused is not None:
            return refused
        engine = _engine(request)
        if request.query_params.get("fragment") == "queues":
            return HTMLResponse(pages.queues_fragment(engine), headers=_headers())
        content = pages.overview_content(engine, self.guard.page_token)
        return self._page(request, "Overview", content)

    async def queue_or_message(self, request: Request) -> Response:
        refused = self._refused(request)
        if refused is not None:
            return refused
        engine = _engine(request)
        parts = _segments(request, UI + "/q/")
        try:
            if len(parts) == 2:
                q = engine.queue(*parts)
                return self._page(
                    request, q.name, pages.queue_content(engine, q, self.guard.page_token)
                )
            if len(parts) == 4 and parts[2] == "m":
                return self._message(request, engine, parts[0], parts[1], parts[3])
        except APIError as exc:
            return HTMLResponse(error_page(exc.status_code, exc.msg), status_code=exc.status_code)
        return HTMLResponse(error_page(404, "Not found"), status_code=404)

    def _message(
        self, request: Request, engine: Engine, project: str, queue: str, mid: str
    ) -> Response:
        q = engine.queue(project, queue)
        m = engine.kept(q, mid)
        attempts = engine.attempts(mid)
        if m is None and not attempts:
            raise APIError(404, f"message {mid} is not kept by the dev server")
        csrf = self.guard.page_token
        if request.query_params.get("fragment") == "attempts":
            return HTMLResponse(pages.attempts_fragment(q, m, attempts, csrf), headers=_headers())
        content = pages.message_content(engine, q, m, mid, csrf)
        query = f"message_id={quote(mid, safe='')}"
        return self._page(request, f"Message {mid}", content, query)

    async def static(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in STATIC_TYPES:
            return Response("Not found", status_code=404)
        if name not in self._static:
            self._static[name] = (resources.files(__package__) / "static" / name).read_bytes()
        return Response(
            self._static[name], media_type=STATIC_TYPES[name], headers={"Cache-Control": "no-cache"}
        )

    # ------------------------------------------------------------------ actions

    async def action(self, request: Request) -> Response:
        handler = ACTIONS.get(request.path_params["name"])
        if handler is None:
            return HTMLResponse(error_page(404, "Unknown action"), status_code=404)
        raw = await request.body()
        if len(raw) > MAX_FORM:
            return HTMLResponse(error_page(413, "form too large"), status_code=413)
        form = dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
        refused = self.guard.action_refusal(request, form)
        if refused is not None:
            return HTMLResponse(error_page(*refused), status_code=refused[0], headers=_headers())
        try:
            where, line = await handler(_engine(request), form)
        except APIError as exc:
            return HTMLResponse(
                error_page(exc.status_code, exc.msg),
                status_code=exc.status_code,
                headers=_headers(),
            )
        return RedirectResponse(f"{where}?flash={self._flash(line)}", status_code=303)

    def _flash(self, line: str) -> str:
        key = secrets.token_urlsafe(8)
        self._flashes[key] = line
        while len(self._flashes) > 100:
            self._flashes.popitem(last=False)
        return key


def _headers() -> dict[str, str]:
    return {
        "Content-Security-Policy": CSP,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "Cache-Control": "no-store",
    }


def routes(config: DevConfig) -> list[BaseRoute]:
    """The inspector's and the event stream's routes, for :func:`~ironpush.devserver.create_app`."""
    return Inspector(config).routes()
