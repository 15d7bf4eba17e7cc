"""Small raw-ASGI helpers for the receiver's hot path (no Starlette Request/Response objects).

Status codes are not chosen here: see :mod:`._answers`.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Receive = Callable[[], Any]
Send = Callable[[MutableMapping[str, Any]], Any]

JSON_HEADERS = [(b"content-type", b"application/json")]


class Disconnected(Exception):
    """The pusher went away while the body was being read."""


class TooLarge(Exception):
    """The body passed the limit."""


def route_path(scope: Scope) -> str:
    # Starlette's Mount keeps the full path and adds the mount prefix to root_path (Starlette
    # >= 0.33); older servers strip it. Same rule as starlette._utils.getroute_path.
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root) and (len(path) == len(root) or path[len(root)] == "/"):
        path = path[len(root) :]
    if len(path) > 1 and path.endswith("/"):
        path = path.rstrip("/")
    return path or "/"


async def respond(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    raw = [*(headers or JSON_HEADERS), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


async def read_body(
    receive: Receive, limit: int, *, first: MutableMapping[str, Any] | None = None
) -> bytes:
    """The request body, at most ``limit`` bytes (``first``: a message received already)."""
    # Count while streaming: a lying or absent Content-Length cannot make us buffer more.
    chunks: list[bytes] = []
    size = 0
    message = await receive() if first is None else first
    while True:
        if message["type"] == "http.disconnect":
            raise Disconnected
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise TooLarge
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
        message = await receive()
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)
