"""Helpers shared by the test modules (import as ``from support import wait_until``)."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float = 10.0, what: str = "the condition") -> T:
    """Poll ``predicate`` until it returns something truthy (returned); fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.005)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (for servers run as subprocesses)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
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
