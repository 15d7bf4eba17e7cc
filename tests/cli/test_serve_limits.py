"""``ironpush serve`` is bounded: request heads, header counts, slow and idle clients, and
concurrency — against the real command, over raw sockets."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from serve_process import Served, rss_kib, run_serve
from support import wait_until


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    server = run_serve(
        tmp_path,
        *("--timeout-request", "2", "--timeout-keep-alive", "1", "--limit-concurrency", "40"),
        "--log-level",
        "warning",
    )
    yield server
    server.stop()


def connect(served: Served) -> socket.socket:
    return socket.create_connection(("127.0.0.1", served.port), timeout=30)


def answer(sock: socket.socket) -> bytes:
    """What the server sent until it closed (b"" when it just closed or reset)."""
    data = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            data += chunk
    return data


def closed_by_server(sock: socket.socket) -> bool:
    try:
        return sock.recv(65536, socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True


def test_huge_headers_get_431_and_do_not_grow_memory(served: Served) -> None:
    before = rss_kib(served.proc.pid)
    big = 32 * 1024 * 1024
    for _ in range(8):  # the probe that took RSS from 60 to ~300 MB
        with connect(served) as sock:
            sock.sendall(b"POST /ironmq/ok HTTP/1.1\r\nHost: t\r\nX-Big: ")
            sent = 0
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                while sent < big:
                    sock.sendall(b"a" * 65536)
                    sent += 65536
            assert sent < big  # the server stopped reading long before
            got = answer(sock)
            assert got == b"" or got.startswith(b"HTTP/1.1 431 "), got[:80]
    grown = rss_kib(served.proc.pid) - before
    assert grown < 30 * 1024, f"RSS grew by {grown} KiB"
    assert served.healthy()


def test_too_many_header_fields_get_431(served: Served) -> None:
    fields = b"".join(b"X-F%d: v\r\n" % i for i in range(150))
    with connect(served) as sock:
        sock.sendall(b"GET /ironmq/_health HTTP/1.1\r\nHost: t\r\n" + fields + b"\r\n")
        assert answer(sock).startswith(b"HTTP/1.1 431 ")


def test_a_normal_request_with_some_headers_still_works(served: Served) -> None:
    fields = b"".join(b"X-F%d: %s\r\n" % (i, b"v" * 100) for i in range(50))
    with connect(served) as sock:
        sock.sendall(
            b"GET /ironmq/_health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n" + fields + b"\r\n"
        )
        assert answer(sock).startswith(b"HTTP/1.1 200 ")


def test_a_head_sent_a_byte_at_a_time_gets_408_and_is_closed(served: Served) -> None:
    with connect(served) as sock:
        sock.sendall(b"GET /ironmq/_health HTTP/1.1\r\nHost: t\r\n")
        header = b"X-Slow: " + b"z" * 10_000
        sent = 0
        # slowloris: keep the head open, one byte at a time, until the server gives up
        while not closed_by_server(sock) and sent < len(header):
            try:
                sock.sendall(header[sent : sent + 1])
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += 1
            time.sleep(0.05)  # the client's pace (the server's timeout is 2 s)
        assert sent < len(header)
        data = answer(sock)
        assert data == b"" or data.startswith(b"HTTP/1.1 408 "), data[:80]


def test_idle_connections_are_closed(served: Served) -> None:
    silent = [connect(served) for _ in range(30)]  # connect, send nothing
    kept_alive = connect(served)
    kept_alive.sendall(b"GET /ironmq/_health HTTP/1.1\r\nHost: t\r\n\r\n")
    wait_until(lambda: b"\r\n\r\n" in kept_alive.recv(65536, socket.MSG_PEEK), 10, "the answer")
    kept_alive.recv(65536)
    try:
        wait_until(
            lambda: all(closed_by_server(s) for s in [*silent, kept_alive]),
            30,
            "the server to close idle connections",
        )
    finally:
        for sock in [*silent, kept_alive]:
            sock.close()
    assert served.healthy()


def test_over_the_concurrency_limit_requests_get_503(tmp_path: Path) -> None:
    server = run_serve(tmp_path, "--limit-concurrency", "5", "--timeout-request", "30")
    held = [connect(server) for _ in range(5)]
    try:
        with connect(server) as sock:
            sock.sendall(b"GET /ironmq/_health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            assert answer(sock).startswith(b"HTTP/1.1 503 ")
    finally:
        for sock in held:
            sock.close()
    try:
        wait_until(server.healthy, 30, "room again once the held connections closed")
    finally:
        server.stop()
