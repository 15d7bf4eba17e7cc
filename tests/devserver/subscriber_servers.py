"""Real subscriber servers for the dev-server tests: record every push, answer from a script.

Each URL from :meth:`Subscribers.url` has its own script of status codes (the last one
repeats), e.g. ``subs.url(202)`` answers 202 forever and ``subs.url(500, 200)`` fails once.
``subs.url(200, hold=True)`` answers only once :meth:`Subscribers.release` was called (a
subscriber that is busy); ``subs.url(200, query="sleep=1.5")`` answers after 1.5 s. A 3xx
answer points elsewhere (``Location``), a 204/304 has no body. Each hit records the client's
port: one per connection.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from support import wait_until

from ironpush.server_thread import ServerThread


@dataclass(frozen=True)
class Hit:
    path: str
    at: float
    headers: dict[str, str]
    body: bytes
    client_port: int

    @property
    def reservation_id(self) -> str:
        return self.headers["iron-reservation-id"]


class Subscribers:
    """One uvicorn server on 127.0.0.1 standing in for any number of subscribers."""

    def __init__(self) -> None:
        self.hits: list[Hit] = []
        self.scripts: dict[str, list[int]] = {}
        self.held: set[str] = set()
        self.gate = threading.Event()
        self._ids = itertools.count()
        app = Starlette(routes=[Route("/{path:path}", self._handle, methods=["POST"])])
        self.server = ServerThread(app)

    def __enter__(self) -> Subscribers:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()

    async def _handle(self, request: Request) -> Response:
        arrived = time.monotonic()
        body = await request.body()
        path = request.url.path
        port = request.client.port if request.client else 0
        self.hits.append(Hit(path, arrived, dict(request.headers), body, port))
        if path in self.held:
            await run_in_threadpool(self.gate.wait, 30)
        script = self.scripts.get(path, [200])
        code = script.pop(0) if len(script) > 1 else script[0]
        sleep = float(request.query_params.get("sleep", 0))
        if sleep:
            await asyncio.sleep(sleep)  # a slow handler (``?sleep=S``)
        headers = {"location": "/elsewhere"} if 300 <= code < 400 else {}
        text = "" if code in (204, 304) else f"answer {code}"
        return Response(text, status_code=code, headers=headers)

    def url(self, *codes: int, hold: bool = False, query: str = "") -> str:
        """A new subscriber URL answering ``codes`` (``query="sleep=1.5"``: answers slowly)."""
        path = f"/s{next(self._ids)}"
        self.scripts[path] = list(codes or [200])
        if hold:
            self.held.add(path)
        return self.server.url + path + (f"?{query}" if query else "")

    def release(self) -> None:
        """Let the held subscribers answer (now and until :meth:`hold_again`)."""
        self.gate.set()

    def hold_again(self) -> None:
        self.gate.clear()

    def at(self, url: str) -> list[Hit]:
        path = urlsplit(url).path
        return [h for h in self.hits if h.path == path]

    def wait_hits(self, url: str, count: int, timeout: float = 10.0) -> list[Hit]:
        """The first ``count`` pushes to ``url``, waiting for them to arrive."""
        return wait_until(
            lambda: (hits := self.at(url)) and len(hits) >= count and hits[:count],
            timeout,
            f"{count} push(es) to {url}",
        )
