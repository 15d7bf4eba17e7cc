"""What the client tests share: a recording HTTP server and helpers that drive either twin.

:class:`Recorder` sits on pytest-httpserver (a real HTTP server): it records every request as
sent on the wire and answers with scripted replies. :func:`call` calls a method on the sync or
the async twin alike; :func:`build` makes a twin of one kind (``sync``, ``async``,
``async-lean``); the ``rec`` and ``mq`` fixtures (``conftest.py``) give every test both.
"""

from __future__ import annotations

import inspect
import json
import re
from collections import deque
from dataclasses import dataclass
from typing import Any

from pytest_httpserver import HTTPServer
from werkzeug import Request as WRequest
from werkzeug import Response as WResponse

from ironpush.client import AsyncIronMQ, IronMQ
from ironpush.client._retry import RetryPolicy

TOKEN = "tok-SECRET-0123456789abcdef"
FAST_RETRY = RetryPolicy(attempts=3, backoff=0.001, max_backoff=0.002)
KINDS = ["sync", "async", "async-lean"]
BASE = "/3/projects/p1"


@dataclass
class Call:
    method: str
    uri: str  # raw, as sent on the wire (escapes preserved)
    headers: dict[str, str]
    body: Any


class Recorder:
    """Records every request and answers with scripted replies (default: 200 ``{}``)."""

    def __init__(self, server: HTTPServer) -> None:
        self.server = server
        self.calls: list[Call] = []
        self.replies: deque[WResponse] = deque()
        server.expect_request(re.compile(".*")).respond_with_handler(self.handle)

    @property
    def url(self) -> str:
        return self.server.url_for("").rstrip("/")

    def reply(self, status: int = 200, data: Any = None, *, raw: bytes | None = None) -> None:
        if raw is not None:
            self.replies.append(WResponse(raw, status=status))
        else:
            self.replies.append(
                WResponse(
                    json.dumps(data if data is not None else {}),
                    status=status,
                    content_type="application/json",
                )
            )

    def handle(self, request: WRequest) -> WResponse:
        raw = request.get_data()
        body = json.loads(raw) if raw else None
        uri = request.environ.get("RAW_URI") or request.full_path
        self.calls.append(Call(request.method, uri, dict(request.headers), body))
        return self.replies.popleft() if self.replies else WResponse("{}", status=200)

    @property
    def last(self) -> Call:
        return self.calls[-1]


async def call(obj: Any, name: str, *args: Any, **kwargs: Any) -> Any:
    """Call ``obj.name(...)`` on either twin, awaiting when it is the async one."""
    result = getattr(obj, name)(*args, **kwargs)
    if inspect.isawaitable(result):
        result = await result
    return result


def build(kind: str, **options: Any) -> IronMQ | AsyncIronMQ:
    if kind == "sync":
        return IronMQ(**options)
    return AsyncIronMQ(**options, backend="lean" if kind == "async-lean" else "httpx")


async def close(client: IronMQ | AsyncIronMQ) -> None:
    if isinstance(client, IronMQ):
        client.close()
    else:
        await client.aclose()
