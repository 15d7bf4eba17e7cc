"""Request plumbing shared by the v3 API, the ``/_dev`` control plane and the inspector.

The token check (``Authorization: OAuth|Bearer <token>``, or ``?oauth=<token>``, compared in
constant time), reading a body under a size limit (413 before anything is buffered when the
declared length is too large), and the JSON error answer ``{"msg": ...}`` every endpoint gives.
The checks that come before any endpoint (its own ``Host`` names, no other site's page) are
:mod:`._access`, one middleware around the whole app.
"""

from __future__ import annotations

import hmac

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse

from .._devserver_settings import DevConfig
from .._errors import APIError


def error(status: int, msg: str) -> JSONResponse:
    # 503 is the dev server's back-pressure (Engine.post): say when to come back.
    headers = {"Retry-After": "1"} if status == 503 else None
    return JSONResponse({"msg": msg}, status_code=status, headers=headers)


def authorized(config: DevConfig, request: Request) -> bool:
    """Whether the request carries the server's token (always, when none is required)."""
    if config.token is None:
        return True
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() in ("oauth", "bearer") and value.strip():
        given = value.strip()
    else:
        given = request.query_params.get("oauth", "")
    return bool(given) and hmac.compare_digest(given.encode(), config.token.encode())


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, at most ``limit`` bytes (else 413); a client gone mid-body is a 400."""
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


async def until_disconnected(request: Request) -> None:
    """Return when the client of ``request`` goes away (its body must have been read: after
    the body, the server's next message is the disconnect)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass
