"""Which HTTP protocol ``ironpush serve`` hands uvicorn: the bounded one, if uvicorn still fits.

:class:`~ironpush.cli._serve_http.BoundedHttpToolsProtocol` subclasses uvicorn's *private*
``httptools_impl.HttpToolsProtocol``: a uvicorn release may rename, remove or rewire what it
builds on. So before serving, :func:`protocol_for_uvicorn` checks that

1. the module imports and the class has every method the subclass overrides or calls
   (:data:`~ironpush.cli._serve_http.HOOKS`), and
2. the subclass behaves: on a loopback socket, a normal request is answered by the app, too
   many header fields and an oversized head get 431, and a head that stalls gets 408.

If any of it fails, uvicorn's own protocol serves instead, with one warning that names the
limits lost (uvicorn's concurrency limit and keep-alive timeout still hold)::

    uvicorn.run(..., http=protocol_for_uvicorn())
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from ._serve_settings import HttpLimits

BOUNDED = "ironpush.cli._serve_http:BoundedHttpToolsProtocol"
FALLBACK = "auto"  # uvicorn's choice: its httptools protocol, else h11
LIMITS_LOST = (
    "request head size (--max-head-bytes), header count (--max-headers), head and request "
    "time (--timeout-head, --timeout-request) and connections waiting per address "
    "(--limit-pending-per-peer)"
)
_PROBE_DEADLINE = 10.0  # seconds for each probe exchange: generous for a loaded machine

logger = logging.getLogger("ironpush.serve")


def protocol_for_uvicorn() -> str:
    """``http=`` for ``uvicorn.run``: the bounded protocol, or uvicorn's own with a warning."""
    problem = hook_problem()
    if problem is None:
        return BOUNDED
    logger.warning(
        "uvicorn %s: %s; serving with uvicorn's own HTTP protocol, WITHOUT ironpush's limits "
        "on %s; --limit-concurrency and --timeout-keep-alive still apply",
        _uvicorn_version(),
        problem,
        LIMITS_LOST,
    )
    return FALLBACK


def hook_problem() -> str | None:
    """Why the bounded protocol cannot serve with this uvicorn, or None when it can."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as base

        from . import _serve_http
    except Exception as exc:  # the private module or a name in it is gone
        return f"its httptools protocol cannot be extended ({type(exc).__name__}: {exc})"
    missing = [name for name in _serve_http.HOOKS if not callable(getattr(base, name, None))]
    if missing:
        return f"HttpToolsProtocol has no {', '.join(missing)}"
    try:
        with _quiet("uvicorn.error"):
            return asyncio.run(_self_test(_serve_http.BoundedHttpToolsProtocol))
    except Exception as exc:
        return f"the bounded protocol failed its self-test ({type(exc).__name__}: {exc})"


async def _self_test(protocol: type[Any]) -> str | None:
    from uvicorn.config import Config
    from uvicorn.server import ServerState

    config = Config(app=_no_content, lifespan="off", proxy_headers=False, log_config=None)
    config.load()
    strict = HttpLimits(max_headers=8, max_head_bytes=1024, timeout_request=_PROBE_DEADLINE)
    stalling = HttpLimits(timeout_request=0.1)
    many = b"".join(b"X-F%d: v\r\n" % i for i in range(20))
    probes: list[tuple[HttpLimits, bytes, bytes, str]] = [
        (strict, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n", b"HTTP/1.1 204 ", "a normal request"),
        (strict, b"GET / HTTP/1.1\r\nHost: t\r\n" + many + b"\r\n", b"HTTP/1.1 431 ", "headers"),
        (strict, b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 4096, b"HTTP/1.1 431 ", "a large head"),
        (stalling, b"GET / HTTP/1.1\r\nHost: t\r\n", b"HTTP/1.1 408 ", "a stalled head"),
    ]
    for limits, request, expected, what in probes:

        def serve_one(limits: HttpLimits = limits) -> asyncio.Protocol:
            state = ServerState()
            made: asyncio.Protocol = protocol(
                config=config, server_state=state, app_state={}, limits=limits
            )
            return made

        answer = await _exchange(serve_one, request)
        if not answer.startswith(expected):
            shown = answer[:40] or b"nothing"
            return f"it answered {what} with {shown!r}, not {expected.strip()!r}"
    return None


async def _exchange(factory: Callable[[], asyncio.Protocol], request: bytes) -> bytes:
    """Serve one connection with ``factory``'s protocol; what it answered to ``request``."""
    server = await asyncio.get_running_loop().create_server(factory, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(request)
            async with asyncio.timeout(_PROBE_DEADLINE):
                return await reader.read(65536)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
    finally:
        server.close()
        await server.wait_closed()


async def _no_content(
    scope: dict[str, Any],
    receive: Callable[[], Awaitable[Any]],
    send: Callable[[dict[str, Any]], Awaitable[None]],
) -> None:
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


@contextlib.contextmanager
def _quiet(name: str) -> Iterator[None]:
    """The probes' own 431/408 warnings are not news: keep them out of the serve log."""
    log = logging.getLogger(name)
    before, log.disabled = log.disabled, True
    try:
        yield
    finally:
        log.disabled = before


def _uvicorn_version() -> str:
    try:
        return version("uvicorn")
    except PackageNotFoundError:
        return "(unknown version)"
