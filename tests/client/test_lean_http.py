"""The lean keep-alive HTTP/1.1 client against raw TCP servers that misbehave on purpose.

The framing matrix: each way a response can be delimited (Content-Length, chunked, the end of
the connection) or cut short, interim 1xx answers, HEAD, ``Connection: close`` and reuse of
keep-alive connections the peer closed, written as exact bytes by an asyncio server.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import free_port, wait_until_async

from ironpush.client._lean import HTTPFailure, LeanHTTPClient, _Pipes
from ironpush.client._lean_connection import Connection

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


class RawServer:
    def __init__(self) -> None:
        self.connections = 0
        self.ended_by_client = 0  # connections the client closed (the server saw EOF)
        self.requests: list[bytes] = []
        self.url = ""


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return head + await reader.readexactly(length)


@asynccontextmanager
async def raw_server(
    reply: Reply,
) -> AsyncIterator[RawServer]:
    """A TCP server; ``reply`` answers each request and says whether to keep the connection."""
    state = RawServer()
    writers: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        state.connections += 1
        try:
            while True:
                state.requests.append(await read_request(reader))
                if not await reply(state, writer):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            state.ended_by_client += 1
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    state.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    async with server:
        try:
            yield state
        finally:
            # Since Python 3.12.1 leaving ``async with server`` waits for every connection to
            # end: close the keep-alive ones the client under test still holds.
            for writer in writers:
                writer.close()


Reply = Callable[[RawServer, asyncio.StreamWriter], Awaitable[bool]]


def answering(wire: bytes | Callable[[RawServer], bytes], *, keep: bool = True) -> Reply:
    """A ``reply`` writing ``wire`` (or what it makes of the server's state) to every request;
    ``keep``: the connection stays open for the next one."""

    async def reply(state: RawServer, writer: asyncio.StreamWriter) -> bool:
        writer.write(wire(state) if callable(wire) else wire)
        await writer.drain()
        return keep

    return reply


@asynccontextmanager
async def lean_against(
    reply: Reply, **options: Any
) -> AsyncIterator[tuple[LeanHTTPClient, RawServer]]:
    """A client (``options``: its keywords) and a :func:`raw_server` answering with ``reply``;
    the client is closed after the server."""
    client = LeanHTTPClient(**options)
    try:
        async with raw_server(reply) as srv:
            yield client, srv
    finally:
        client.close()


@pytest.mark.anyio
async def test_request_format_and_connection_reuse() -> None:
    reply = answering(OK)

    async with lean_against(reply) as (client, srv):
        headers = [("X-A", "1"), ("Host", "evil"), ("Content-Length", "999")]
        for body in (b"one", b"two"):
            response = await client.request(
                "POST", srv.url + "/p/a b?q=1", headers=headers, body=body, timeout=2
            )
            assert (response.status, response.body) == (200, b"ok")
        assert srv.connections == 1
        head, _, body = srv.requests[0].partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        port = srv.url.rsplit(":", 1)[1]
        assert lines[0] == b"POST /p/a%20b?q=1 HTTP/1.1"
        assert lines[1:] == [f"Host: 127.0.0.1:{port}".encode(), b"Content-Length: 3", b"X-A: 1"]
        assert body == b"one"


@pytest.mark.anyio
async def test_a_connection_the_peer_closed_while_idle_is_replaced() -> None:
    # no "Connection: close", yet the server hangs up
    reply = answering(OK, keep=False)

    async with lean_against(reply) as (client, srv):
        for _ in range(3):
            assert (
                await client.request("POST", srv.url, headers=[], body=b"x", timeout=2)
            ).status == 200
        assert srv.connections == 3
        assert len(srv.requests) == 3


@pytest.mark.anyio
async def test_response_delimited_by_connection_close() -> None:
    reply = answering(b"HTTP/1.1 500 Boom\r\nConnection: close\r\n\r\nbody until close", keep=False)

    async with lean_against(reply) as (client, srv):
        response = await client.request("POST", srv.url, headers=[], body=b"x", timeout=2)
        assert (response.status, response.body) == (500, b"body until close")


@pytest.mark.anyio
async def test_garbage_and_silence_and_refusal_are_push_failures() -> None:
    async def garbage(state: RawServer, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"this is not http\r\n\r\n")
        return True

    done = asyncio.Event()  # the test is done with the silent peer

    async def silent(state: RawServer, writer: asyncio.StreamWriter) -> bool:
        with contextlib.suppress(TimeoutError):  # the peer under test never answers in time
            await asyncio.wait_for(done.wait(), 5)
        return False

    client = LeanHTTPClient()
    async with raw_server(garbage) as srv:
        with pytest.raises(HTTPFailure, match="invalid HTTP response"):
            await client.request("POST", srv.url, headers=[], body=b"x", timeout=2)
    async with raw_server(silent) as srv:
        started = time.monotonic()
        with pytest.raises(HTTPFailure, match=r"no answer within 0.2 s"):
            await client.request("POST", srv.url, headers=[], body=b"x", timeout=0.2)
        assert time.monotonic() - started < 5  # cut at the timeout, not by the peer (5 s)
        done.set()
    with pytest.raises(HTTPFailure, match="connection failed"):
        await client.request(
            "POST", srv.url, headers=[], body=b"x", timeout=2
        )  # that server is closed now
    with pytest.raises(HTTPFailure, match="cannot send"):
        await client.request("POST", "ftp://example.com/", headers=[], body=b"x", timeout=2)
    client.close()


@pytest.mark.anyio
async def test_any_method_and_the_whole_response_with_headers() -> None:
    big = b"x" * 100_000

    async def reply(state: RawServer, writer: asyncio.StreamWriter) -> bool:
        writer.write(
            b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(big) + big
        )
        return True

    async with lean_against(reply) as (client, srv):
        response = await client.request("DELETE", srv.url + "/q/m", headers=[], timeout=2)
        assert response.status == 404
        assert response.body == big
        assert (b"Content-Type", b"application/json") in response.headers
        assert srv.requests[0].startswith(b"DELETE /q/m HTTP/1.1\r\n")
        assert b"Content-Length: 0\r\n" in srv.requests[0]
        with pytest.raises(HTTPFailure, match="over 1000 bytes"):
            await client.request("GET", srv.url, headers=[], timeout=2, max_body=1000)
        cut = await client.request(
            "GET", srv.url, headers=[], timeout=2, max_body=10, truncate=True
        )
        assert cut.body == b"x" * 10


@pytest.mark.anyio
@pytest.mark.parametrize("resend", [True, False])
async def test_a_request_lost_on_a_reused_connection_is_resent_only_when_allowed(
    resend: bool,
) -> None:
    per_connection: dict[int, int] = {}

    async def reply(state: RawServer, writer: asyncio.StreamWriter) -> bool:
        served = per_connection.get(id(writer), 0)
        per_connection[id(writer)] = served + 1
        if served:  # the second request on a connection: hang up without an answer
            return False
        writer.write(OK)
        return True

    async with lean_against(reply) as (client, srv):
        assert (await client.request("POST", srv.url, headers=[], timeout=2)).status == 200
        call = client.request("POST", srv.url, headers=[], timeout=2, resend_stale=resend)
        if resend:
            assert (await call).status == 200  # sent again on a new connection
            assert srv.connections == 2
        else:
            with pytest.raises(HTTPFailure, match="closed before a response") as info:
                await call
            assert not info.value.unsent  # it was written: it may have been processed
            assert srv.connections == 1


@pytest.mark.anyio
async def test_a_refused_connection_is_unsent() -> None:
    async def reply(state: RawServer, writer: asyncio.StreamWriter) -> bool:
        return False

    async with raw_server(reply) as srv:
        url = srv.url
    with pytest.raises(HTTPFailure) as info:
        await LeanHTTPClient().request("POST", url, headers=[], timeout=2)
    assert info.value.unsent


@pytest.mark.anyio
@pytest.mark.parametrize("header", [("X-A", "v\r\nInjected: 1"), ("X-B\n", "v"), ("X-C", "v\x00")])
async def test_header_injection_is_refused_before_anything_is_sent(
    header: tuple[str, str],
) -> None:
    reply = answering(OK)

    async with lean_against(reply) as (client, srv):
        with pytest.raises(HTTPFailure, match="line break or NUL") as info:
            await client.request("POST", srv.url, headers=[header], timeout=2)
        assert info.value.unsent
        assert srv.requests == []


# --------------------------------------------------------------------------- framing matrix
#
# Each row: what the server writes for one request (then it closes the connection when
# ``close`` is set), and what the client must make of it: a response (status, body) or a
# failure. A body cut short must never pass for a complete answer.

FRAMING = [
    pytest.param(
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
        True,
        "cut short",
        id="truncated-length",
    ),
    pytest.param(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n3\r\nab",
        True,
        "cut short",
        id="truncated-chunked",
    ),
    pytest.param(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
        True,
        "cut short",
        id="chunked-without-last-chunk",
    ),
    pytest.param(
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", True, "cut short", id="headers-only"
    ),
    pytest.param(b"HTTP/1.1 200 O", True, "closed before a response", id="cut-status-line"),
    pytest.param(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n4\r\n abc\r\n0\r\n\r\n",
        False,
        (200, b"hello abc"),
        id="chunked",
    ),
    pytest.param(
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end",
        True,
        (200, b"until the end"),
        id="close-delimited",
    ),
    pytest.param(
        b"HTTP/1.0 200 OK\r\n\r\nold style", True, (200, b"old style"), id="http10-close-delimited"
    ),
    pytest.param(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 4\r\n\r\ndone",
        False,
        (201, b"done"),
        id="100-continue",
    ),
    pytest.param(
        b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        False,
        (200, b"ok"),
        id="several-1xx",
    ),
    pytest.param(
        b"HTTP/1.1 100 Continue\r\n\r\n", True, "closed before a response", id="1xx-then-close"
    ),
    pytest.param(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n",
        False,
        "invalid HTTP response",
        id="unasked-101",
    ),
    pytest.param(
        b"HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n", False, (204, b""), id="204-no-body"
    ),
    pytest.param(
        b"HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\n",
        False,
        (304, b""),
        id="304-no-body",
    ),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("wire", "close", "expected"), FRAMING)
async def test_framing_matrix(wire: bytes, close: bool, expected: str | tuple[int, bytes]) -> None:
    reply = answering(wire, keep=not close)
    async with lean_against(reply) as (client, srv):
        call = client.request("POST", srv.url, headers=[], body=b"x", timeout=2)
        if isinstance(expected, str):
            with pytest.raises(HTTPFailure, match=expected) as info:
                await call
            assert not info.value.unsent  # it was sent: a caller may not blindly resend it
        else:
            response = await call
            assert (response.status, response.body) == expected
        assert len(srv.requests) == 1  # never sent twice, even on a fresh connection


@pytest.mark.anyio
async def test_the_final_response_after_1xx_carries_only_its_own_headers() -> None:
    async def reply(state: RawServer, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n")
        await writer.drain()
        writer.write(b"HTTP/1.1 200 OK\r\nX-Final: 1\r\nContent-Length: 2\r\n\r\nok")
        return True

    async with lean_against(reply) as (client, srv):
        response = await client.request("POST", srv.url, headers=[], body=b"x", timeout=2)
        assert response.headers == [(b"X-Final", b"1"), (b"Content-Length", b"2")]
        again = await client.request("POST", srv.url, headers=[], body=b"y", timeout=2)
        assert (again.status, again.body, srv.connections) == (200, b"ok", 1)


@pytest.mark.anyio
async def test_a_head_reply_has_no_body_and_does_not_hang() -> None:
    async def reply(state: RawServer, writer: asyncio.StreamWriter) -> bool:
        if state.requests[-1].startswith(b"HEAD "):
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n")  # the GET's length
        else:
            writer.write(OK)
        return True

    async with lean_against(reply) as (client, srv):
        response = await client.request("HEAD", srv.url, headers=[], timeout=2)
        assert (response.status, response.body) == (200, b"")
        assert (b"Content-Length", b"5000") in response.headers
        assert b"Content-Length" not in srv.requests[0]  # a HEAD request has no body either
        after = await client.request("GET", srv.url, headers=[], timeout=2)
        assert (after.status, after.body) == (200, b"ok")


@pytest.mark.anyio
@pytest.mark.parametrize(
    "wire",
    [
        pytest.param(
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
            id="connection-close",
        ),
        pytest.param(b"HTTP/1.1 200 OK\r\n\r\nok", id="close-delimited"),
        pytest.param(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", id="http10"),
    ],
)
async def test_a_connection_the_response_ends_is_never_reused(wire: bytes) -> None:
    # as the response said: this connection is over
    reply = answering(wire, keep=False)

    async with lean_against(reply) as (client, srv):
        for body in (b"one", b"two", b"three"):
            response = await client.request("POST", srv.url, headers=[], body=body, timeout=2)
            assert (response.status, response.body) == (200, b"ok")
        assert (srv.connections, len(srv.requests)) == (3, 3)  # no request lost on a dead one


@pytest.mark.anyio
async def test_bytes_after_a_complete_response_retire_the_connection() -> None:
    async def reply(state: RawServer, writer: asyncio.StreamWriter) -> bool:
        writer.write(OK)
        await writer.drain()
        if len(state.requests) == 1:  # then, while the connection sits idle in the pool:
            writer.write(b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\n\r\n")
        return True

    async with lean_against(reply) as (client, srv):
        assert (await client.request("POST", srv.url, headers=[], timeout=2)).status == 200
        await wait_until_async(lambda: srv.ended_by_client == 1, 5, "the client to hang up")
        assert (await client.request("POST", srv.url, headers=[], timeout=2)).status == 200
        assert (srv.connections, len(srv.requests)) == (2, 2)


@pytest.mark.anyio
async def test_a_reused_connection_cut_mid_response_is_not_resent() -> None:
    per_connection: dict[int, int] = {}

    async def reply(state: RawServer, writer: asyncio.StreamWriter) -> bool:
        served = per_connection.get(id(writer), 0)
        per_connection[id(writer)] = served + 1
        if served:  # second request on this connection: half an answer, then hang up
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\npar")
            await writer.drain()
            return False
        writer.write(OK)
        return True

    async with lean_against(reply) as (client, srv):
        assert (await client.request("POST", srv.url, headers=[], timeout=2)).status == 200
        with pytest.raises(HTTPFailure, match="cut short"):
            await client.request("POST", srv.url, headers=[], timeout=2, resend_stale=True)
        assert (srv.connections, len(srv.requests)) == (1, 2)  # answered bytes: no resend


# --------------------------------------------------------------------------- pipelining


def echo(state: RawServer, status: int = 200) -> bytes:
    """An answer naming the request it answers (its path), so each caller can check its own."""
    path = state.requests[-1].split(b" ", 2)[1]
    return b"HTTP/1.1 %d OK\r\nContent-Length: %d\r\n\r\n%s" % (status, len(path), path)


async def pipelined(
    client: LeanHTTPClient, url: str, n: int, *, batched: bool = False, **options: Any
) -> list[Any]:
    """``n`` DELETEs at once, pipelined: one ``request`` each, or (``batched``) one
    ``request_all`` for all; each answer or failure, in order."""
    if batched:
        items = [(f"m{i}", b"") for i in range(n)]
        return list(await client.request_all("DELETE", f"{url}/", [], items, timeout=5))
    calls = [
        client.request("DELETE", f"{url}/m{i}", headers=[], timeout=5, pipeline=True, **options)
        for i in range(n)
    ]
    return await asyncio.gather(*calls, return_exceptions=True)


#: Each pipelining test runs both ways: a request each (``request``) and all in one
#: ``request_all`` (the outbox's batches, no future per request).
BOTH_WAYS = pytest.mark.parametrize("batched", [False, True], ids=["request", "request_all"])


@pytest.mark.anyio
@BOTH_WAYS
async def test_pipelined_requests_share_a_connection_and_get_their_own_answers(
    batched: bool,
) -> None:
    reply = answering(echo)

    async with lean_against(reply, pipeline_depth=8) as (client, srv):
        answers = await pipelined(client, srv.url, 16, batched=batched)
        assert [a.body for a in answers] == [f"/m{i}".encode() for i in range(16)]
        assert srv.connections == 2  # 16 in flight, 8 per connection
        # then idle, they are reused
        answers = await pipelined(client, srv.url, 8, batched=batched)
        assert [a.body for a in answers] == [f"/m{i}".encode() for i in range(8)]
        assert (srv.connections, len(srv.requests)) == (2, 24)


@pytest.mark.anyio
@BOTH_WAYS
async def test_requests_behind_an_answer_that_closes_are_sent_again_one_per_connection(
    batched: bool,
) -> None:
    async def reply(state: RawServer, writer: asyncio.StreamWriter) -> bool:
        path = state.requests[-1].split(b" ", 2)[1]
        writer.write(
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s"
            % (len(path), path)
        )
        return False  # as the answer said: the requests behind it are not answered here

    async with lean_against(reply, pipeline_depth=4) as (client, srv):
        answers = await pipelined(client, srv.url, 4, batched=batched)
        assert [a.body for a in answers] == [f"/m{i}".encode() for i in range(4)]
        # each one answered once: the first on the pipelined connection, 3 sent again alone
        assert sorted(r.split(b" ", 2)[1] for r in srv.requests) == [
            f"/m{i}".encode() for i in range(4)
        ]
        assert srv.connections == 4
        # the origin ended a pipeline midway: no more pipelining to it
        answers = await pipelined(client, srv.url, 2, batched=batched)
        assert [a.status for a in answers] == [200, 200]
        assert srv.connections == 6


@pytest.mark.anyio
@BOTH_WAYS
async def test_a_connection_lost_mid_pipeline_sends_the_unanswered_again_once(
    batched: bool,
) -> None:
    per_connection: dict[int, int] = {}

    async def reply(state: RawServer, writer: asyncio.StreamWriter) -> bool:
        served = per_connection[id(writer)] = per_connection.get(id(writer), 0) + 1
        if served == 3:  # two answered, then the connection drops
            return False
        writer.write(echo(state))
        return True

    async with lean_against(reply, pipeline_depth=6) as (client, srv):
        answers = await pipelined(client, srv.url, 6, batched=batched)
        assert [a.body for a in answers] == [f"/m{i}".encode() for i in range(6)]
        sent = [r.split(b" ", 2)[1] for r in srv.requests]
        # m0, m1 answered once; m2 (read, then dropped) and whatever was behind it sent again
        assert sent.count(b"/m0") == sent.count(b"/m1") == 1
        assert all(1 <= sent.count(f"/m{i}".encode()) <= 2 for i in range(2, 6))


@pytest.mark.anyio
@BOTH_WAYS
async def test_a_pipelined_answer_cut_short_fails_alone_and_is_not_sent_again(
    batched: bool,
) -> None:
    async def reply(state: RawServer, writer: asyncio.StreamWriter) -> bool:
        if state.requests[-1].startswith(b"DELETE /m1 "):
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\npar")
            await writer.drain()
            return False
        writer.write(echo(state))
        return True

    async with lean_against(reply, pipeline_depth=3) as (client, srv):
        first, cut, behind = await pipelined(client, srv.url, 3, batched=batched)
        assert first.body == b"/m0"
        assert isinstance(cut, HTTPFailure)
        assert "cut short" in str(cut)
        assert behind.body == b"/m2"  # not begun: sent again on a new connection
        sent = [r.split(b" ", 2)[1] for r in srv.requests]
        assert sent.count(b"/m1") == 1  # answered bytes: never sent twice


@dataclass
class Silent:
    """A server that reads requests and never answers (:func:`silent_server`)."""

    url: str
    arrived: asyncio.Event  # a request came
    hung_up: asyncio.Event  # the client closed the connection


@asynccontextmanager
async def silent_server() -> AsyncIterator[Silent]:
    state = Silent("", asyncio.Event(), asyncio.Event())

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        state.arrived.set()
        await reader.read()  # never answers; returns when the client hangs up
        state.hung_up.set()
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    state.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    async with server:
        yield state


@pytest.mark.anyio
async def test_a_pipelined_request_without_an_answer_times_out_with_its_connection() -> None:
    client = LeanHTTPClient()
    async with silent_server() as srv:
        with pytest.raises(HTTPFailure, match=r"no answer within 0\.5 s"):
            await client.request("DELETE", f"{srv.url}/m0", headers=[], timeout=0.5, pipeline=True)
        await asyncio.wait_for(srv.hung_up.wait(), 10)  # the connection was closed with it
    client.close()


def test_a_pipelined_connection_with_room_is_looked_for_from_the_one_found_last() -> None:
    # A busy batch fills its connections in turn: the search starts where it found room last
    # (one look instead of a pass over the full ones), wraps around, and drops closed ones.
    class Stub:
        def __init__(self, pending: int) -> None:
            self.closed, self.keep_alive, self.pending = False, True, [None] * pending

    client = LeanHTTPClient(pipeline_depth=2)
    key = ("http", "example", 80)
    a, b, c, d = (Stub(2), Stub(2), Stub(0), Stub(0))
    pipes = client._pipes[key] = _Pipes()
    pipes.extend([a, b, c, d])  # type: ignore[list-item]
    assert client._pipe(key) is c
    a.pending = []  # room again in a: still c, where room was found last
    assert client._pipe(key) is c
    c.pending = [None, None]
    assert client._pipe(key) is d
    d.pending = [None, None]
    assert client._pipe(key) is a  # wrapped around
    a.pending = [None, None]
    assert client._pipe(key) is None  # every one full
    b.closed, d.pending = True, []
    assert client._pipe(key) is d
    assert list(pipes) == [a, c, d]  # the closed one dropped


@pytest.mark.anyio
async def test_a_batch_leaves_in_one_write_per_connection(writes: list[int]) -> None:
    async with lean_against(answering(echo), pipeline_depth=8) as (client, srv):
        answers = await pipelined(client, srv.url, 16, batched=True)
        assert [a.body for a in answers] == [f"/m{i}".encode() for i in range(16)]
        assert writes == [8, 8]  # two connections, each written once with its 8 requests
        assert srv.connections == 2


@pytest.mark.anyio
async def test_a_batch_answered_in_part_while_a_connection_is_made_waits_for_the_rest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with lean_against(answering(echo), pipeline_depth=1) as (client, srv):
        connect = client._connect
        made = 0

        async def second_after_first_answer(origin: Any) -> Connection:
            nonlocal made
            made += 1
            if made == 2:  # the first request's answer arrives before this connection exists
                await wait_until_async(
                    lambda: any(c.answered for cs in client._pipes.values() for c in cs),
                    what="the first answer",
                )
            return await connect(origin)

        monkeypatch.setattr(client, "_connect", second_after_first_answer)
        answers = await pipelined(client, srv.url, 2, batched=True)
        assert [a.body for a in answers] == [b"/m0", b"/m1"]


@pytest.mark.anyio
async def test_a_batch_without_an_answer_fails_at_its_deadline_and_hangs_up() -> None:
    client = LeanHTTPClient()
    async with silent_server() as srv:
        items = [(f"m{i}", b"") for i in range(3)]
        answers = await client.request_all("DELETE", f"{srv.url}/", [], items, timeout=0.5)
        assert [str(a) for a in answers] == ["no answer within 0.5 s"] * 3
        await asyncio.wait_for(srv.hung_up.wait(), 10)
    client.close()


@pytest.mark.anyio
async def test_a_cancelled_batch_closes_its_connections() -> None:
    client = LeanHTTPClient()
    async with silent_server() as srv:
        batch = asyncio.ensure_future(
            client.request_all("DELETE", f"{srv.url}/", [], [("m0", b"")], timeout=30)
        )
        await asyncio.wait_for(srv.arrived.wait(), 10)
        batch.cancel()
        with pytest.raises(asyncio.CancelledError):
            await batch
        await asyncio.wait_for(srv.hung_up.wait(), 10)  # its answer would be out of step
    client.close()


@pytest.mark.anyio
async def test_a_batch_sends_each_segment_and_body_as_request_would() -> None:
    async with lean_against(answering(echo)) as (client, srv):
        items = [("m0", b""), ("m 1", b"body"), ("m%202", b"")]
        headers = [("X-A", "1")]
        answers = await client.request_all("DELETE", f"{srv.url}/q/", headers, items, timeout=5)
        assert [a.body for a in answers] == [b"/q/m0", b"/q/m%201", b"/q/m%202"]  # type: ignore[union-attr]
        alone = []
        for segment, body in items:
            url = f"{srv.url}/q/{segment}"
            alone.append(await client.request("DELETE", url, headers=headers, body=body, timeout=5))
        assert [a.body for a in alone] == [a.body for a in answers]  # type: ignore[union-attr]
        batched, single = srv.requests[:3], srv.requests[3:]
        assert sorted(batched) == sorted(single)  # the same bytes, request by request


@pytest.mark.anyio
async def test_a_batch_that_cannot_be_sent_fails_every_request_unsent() -> None:
    refused = f"http://127.0.0.1:{free_port()}/q/"  # nobody listens there
    async with lean_against(answering(echo)) as (client, srv):
        items = [("m0", b""), ("m1", b"")]
        bad = await client.request_all(
            "DELETE", f"{srv.url}/q/", [("X-Bad", "a\r\nInjected: 1")], items, timeout=5
        )
        gone = await client.request_all("DELETE", refused, [], items, timeout=5)
        relative = await client.request_all("DELETE", "/q/", [], items, timeout=5)
        for failure in (*bad, *gone, *relative):
            assert isinstance(failure, HTTPFailure)
            assert failure.unsent
        assert all("line break" in str(f) for f in bad)
        assert srv.requests == []  # nothing left: no "Injected" header reached the server


@pytest.mark.anyio
async def test_a_head_batch_goes_one_request_each() -> None:
    async with lean_against(answering(echo)) as (client, srv):
        answers = await client.request_all("HEAD", f"{srv.url}/q/", [], [("m0", b"")], timeout=5)
        assert [a.status for a in answers] == [200]  # type: ignore[union-attr]
        assert [r.split(b" ", 2)[:2] for r in srv.requests] == [[b"HEAD", b"/q/m0"]]


@pytest.mark.anyio
async def test_requests_that_may_not_be_sent_twice_are_never_pipelined() -> None:
    reply = answering(echo)

    async with lean_against(reply, pipeline_depth=8) as (client, srv):
        answers = await pipelined(client, srv.url, 4, resend_stale=False)
        assert [a.body for a in answers] == [f"/m{i}".encode() for i in range(4)]
        assert srv.connections == 4  # one request per connection


# --------------------------------------------------------------------------- https


@pytest.fixture
def tls_server_context(tmp_path: Path) -> tuple[ssl.SSLContext, Path]:
    """A server context with a fresh self-signed certificate for 127.0.0.1, and its file."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context, cert


@pytest.mark.anyio
@pytest.mark.parametrize("trusted", [True, False])
async def test_https_trusts_exactly_what_httpx_trusts(
    tls_server_context: tuple[ssl.SSLContext, Path],
    monkeypatch: pytest.MonkeyPatch,
    trusted: bool,
) -> None:
    context, cert = tls_server_context
    if trusted:  # httpx's bundle: certifi, or SSL_CERT_FILE when set
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    else:
        monkeypatch.delenv("SSL_CERT_FILE", raising=False)
        monkeypatch.delenv("SSL_CERT_DIR", raising=False)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await read_request(reader)
            writer.write(OK)
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass  # the client refused the certificate
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
    url = f"https://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
    async with server:
        lean = LeanHTTPClient()
        async with httpx.AsyncClient() as reference:
            if trusted:
                assert (await reference.get(url)).status_code == 200
                response = await lean.request("GET", url, headers=[], timeout=5)
                assert (response.status, response.body) == (200, b"ok")
            else:
                with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                    await reference.get(url)
                with pytest.raises(HTTPFailure, match="connection failed") as info:
                    await lean.request("GET", url, headers=[], timeout=5)
                assert info.value.unsent
        lean.close()
