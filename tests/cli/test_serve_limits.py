"""``ironpush serve`` is bounded: request heads, header counts, slow and idle clients, the
connections one address may keep waiting for their head, and concurrency — against the real
command, over raw sockets. (The 2,000-connection flood: ``test_serve_limits_flood.py``.)"""

from __future__ import annotations

import contextlib
import resource
import select
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from serve_app import router
from serve_process import Served, rss_kib, run_serve
from support import build_push, wait_until


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


def connect(served: Served, source: str = "127.0.0.1") -> socket.socket:
    """A connection from ``source`` (loopback is all of 127/8: other addresses are peers)."""
    return socket.create_connection(
        ("127.0.0.1", served.port), timeout=30, source_address=(source, 0)
    )


def answer(sock: socket.socket) -> bytes:
    """What the server sent until it closed (b"" when it just closed or reset)."""
    data = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            data += chunk
    return data


def response(sock: socket.socket) -> bytes:
    """One whole response (head and its Content-Length body) on a kept-alive connection."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.lower().split(b"\r\n")
        if line.startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def closed_by_server(sock: socket.socket) -> bool:
    """Whether the server closed ``sock``, without waiting (nor consuming an answer's end)."""
    timeout = sock.gettimeout()
    sock.setblocking(False)
    try:
        return sock.recv(65536, socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True
    finally:
        sock.settimeout(timeout)


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
            # The client's pace (the server's timeout is 2 s): the next byte after 50 ms, or
            # at once when the server answers or closes.
            select.select([sock], [], [], 0.05)
        assert sent < len(header)
        data = answer(sock)
        assert data == b"" or data.startswith(b"HTTP/1.1 408 "), data[:80]


def test_idle_connections_are_closed(served: Served) -> None:
    silent = [connect(served) for _ in range(30)]  # connect, send nothing
    kept_alive = connect(served)
    kept_alive.sendall(b"GET /ironmq/_health HTTP/1.1\r\nHost: t\r\n\r\n")
    assert response(kept_alive).startswith(b"HTTP/1.1 200 ")
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


def test_a_head_must_arrive_within_timeout_head(tmp_path: Path) -> None:
    server = run_serve(tmp_path, "--timeout-head", "1", "--timeout-request", "60")
    try:
        with connect(server) as sock:
            sock.settimeout(30)  # well before the 60 s request timeout: the head deadline ends it
            sock.sendall(b"POST /ironmq/ok HTTP/1.1\r\nHost: t\r\nX-Slow: ")
            assert answer(sock).startswith(b"HTTP/1.1 408 ")
    finally:
        server.stop()
    assert "request head not received in 1 s" in server.logs()


def test_connections_waiting_for_their_head_are_limited_per_address(tmp_path: Path) -> None:
    server = run_serve(tmp_path, "--limit-pending-per-peer", "5", "--timeout-head", "60")
    waiting = [connect(server, "127.0.0.2") for _ in range(5)]
    waiting[0].sendall(b"GET /ironmq/_health HTTP/1.1\r\nHost: t\r\n")  # partial: counts too
    try:
        with connect(server, "127.0.0.2") as sock:  # a sixth from the same address: refused
            assert answer(sock).startswith(b"HTTP/1.1 503 ")
        with connect(server) as sock:  # another address is not held up
            sock.sendall(b"GET /ironmq/_health/live HTTP/1.1\r\nHost: t\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
        waiting.pop().close()  # one less waiting: room for one more

        def served_again() -> bool:
            with connect(server, "127.0.0.2") as sock:
                sock.sendall(b"GET /ironmq/_health/live HTTP/1.1\r\nHost: t\r\n\r\n")
                return sock.recv(65536).startswith(b"HTTP/1.1 200 ")

        wait_until(served_again, 30, "room again for the address")
    finally:
        for sock in waiting:
            sock.close()
        server.stop()
    assert "5 connections from 127.0.0.2 are waiting for their request head" in server.logs()


def test_idle_kept_alive_connections_do_not_count_as_waiting(tmp_path: Path) -> None:
    server = run_serve(tmp_path, "--limit-pending-per-peer", "3", "--timeout-keep-alive", "60")
    kept: list[socket.socket] = []
    try:
        for _ in range(6):  # more than the limit, one after another: each served, then idle
            kept.append(connect(server, "127.0.0.3"))
            kept[-1].sendall(b"GET /ironmq/_health/live HTTP/1.1\r\nHost: t\r\n\r\n")
            assert response(kept[-1]).startswith(b"HTTP/1.1 200 ")
        for sock in kept:  # each one, idle in between, is served again on the same connection
            sock.sendall(b"GET /ironmq/_health/live HTTP/1.1\r\nHost: t\r\n\r\n")
            assert response(sock).startswith(b"HTTP/1.1 200 ")
    finally:
        for sock in kept:
            sock.close()
        server.stop()


def test_a_complete_request_replaces_the_oldest_connection_waiting_for_its_head(
    tmp_path: Path,
) -> None:
    server = run_serve(
        tmp_path,
        "--limit-concurrency",
        "5",
        "--limit-pending-per-peer",
        "0",
        "--timeout-head",
        "60",
        "--timeout-request",
        "60",
    )
    # Four silent connections from four addresses, and the request: five, the limit.
    silent = [connect(server, f"127.0.1.{i}") for i in range(4)]
    try:
        with connect(server) as sock:
            sock.sendall(b"GET /ironmq/_health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            assert answer(sock).startswith(b"HTTP/1.1 200 ")
        wait_until(lambda: closed_by_server(silent[0]), 30, "the oldest silent one closed")
        assert not any(closed_by_server(sock) for sock in silent[1:])
    finally:
        for sock in silent:
            sock.close()
        server.stop()
    assert "closed a connection from 127.0.1.0 still waiting for its request head" in (
        server.logs()
    )


def test_over_the_concurrency_limit_requests_get_503(tmp_path: Path) -> None:
    server = run_serve(tmp_path, "--limit-concurrency", "5", "--timeout-request", "30")
    held = [connect(server) for _ in range(4)]  # with the next request's own: 5, the limit
    headers, _, _ = build_push(router, "/ok", b"x")
    headers |= {"Content-Length": "10", "Expect": "100-continue"}
    head = "POST /ironmq/ok HTTP/1.1\r\nHost: t\r\n" + "".join(
        f"{name}: {value}\r\n" for name, value in headers.items()
    )
    for sock in held:  # signed pushes in flight (their bodies never come): nothing to replace
        sock.sendall(head.encode() + b"\r\n")
        # "100 Continue" says the app is reading the body: the request is in flight.
        assert sock.recv(65536).startswith(b"HTTP/1.1 100 ")
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


def test_serve_lifts_a_low_open_files_limit_for_its_connections(tmp_path: Path) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (512, hard))  # as a systemd unit's default 1024
    try:
        server = run_serve(tmp_path)  # inherits 512, below --limit-concurrency 1000 + 256
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    try:
        limits = Path(f"/proc/{server.proc.pid}/limits").read_text()
    finally:
        server.stop()
    [line] = [line for line in limits.splitlines() if line.startswith("Max open files")]
    lifted = int(line.split()[3])  # "Max open files  <soft>  <hard>  files"
    assert lifted == (1 << 20 if hard == resource.RLIM_INFINITY else hard)
