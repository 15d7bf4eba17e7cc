"""Helpers shared by the test modules (import as ``from support import wait_until``).

- :func:`wait_until` / :func:`wait_until_async`: THE way a test waits for an outcome: poll a
  condition until it holds, with a deadline, and on giving up say what was awaited, the last
  value seen and (``report=``) whatever the caller can tell about the state of the world.
- :func:`build_push`: THE push builder (``ironpush.testing.build_push``, itself built on
  ``ironpush._protocol.build_push_headers``); re-exported here so tests have one place to look.
- :func:`free_port`, :func:`exchange_raw`: sockets on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import inspect
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from ironpush.testing import build_push

__all__ = ["build_push", "exchange_raw", "free_port", "wait_until", "wait_until_async"]

T = TypeVar("T")


def _gave_up(what: str, timeout: float, last: object, report: Callable[[], object] | None) -> str:
    text = f"timed out after {timeout:g} s waiting for {what} (last value: {last!r})"
    if report is not None:
        try:
            text += f"\n{report()}"
        except Exception as exc:  # the report must never hide the timeout itself
            text += f"\n(report failed: {exc!r})"
    return text


def wait_until(
    predicate: Callable[[], T],
    timeout: float = 10.0,
    what: str = "the condition",
    *,
    interval: float = 0.005,
    report: Callable[[], object] | None = None,
) -> T:
    """Poll ``predicate`` until it returns something truthy (returned).

    After ``timeout`` seconds raise ``AssertionError`` naming ``what``, the last value seen and
    the text of ``report()`` (what the caller saw: counts, states, logs)::

        wait_until(lambda: queue.size() == 0, 30, "the queue to drain", report=queue.info)
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(_gave_up(what, timeout, value, report))
        time.sleep(interval)


async def wait_until_async(
    predicate: Callable[[], Any | Awaitable[Any]],
    timeout: float = 10.0,
    what: str = "the condition",
    *,
    interval: float = 0.01,
    report: Callable[[], object] | None = None,
) -> Any:
    """:func:`wait_until` for a test's event loop: ``predicate`` may be sync or async, and the
    loop keeps running between polls."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(_gave_up(what, timeout, value, report))
        await asyncio.sleep(interval)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on ``host`` that was free a moment ago (for servers run as subprocesses)."""
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def exchange_raw(port: int, data: bytes, *, half_close: bool = False) -> int | None:
    """Send raw bytes; the status code of the answer, or None if the server just closed."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        received = b""
        while b"\r\n" not in received:
            chunk = sock.recv(4096)
            if not chunk:
                break
            received += chunk
    if not received:
        return None
    assert received.startswith(b"HTTP/1.1 "), received[:80]
    return int(received.split(b" ", 2)[1])
