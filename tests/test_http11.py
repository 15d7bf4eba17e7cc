"""The lean keep-alive HTTP/1.1 client against raw TCP servers that misbehave on purpose."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest

from ironpush.client.lean import HTTPFailure, LeanHTTPClient

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


class RawServer:
    def __init__(self) -> None:
        self.connections = 0
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
    reply: Callable[[RawServer, asyncio.StreamWriter], Awaitable[bool]],
) -> AsyncIterator[RawServer]:
    """A TCP server; ``reply`` answers each request and says whether to keep the connection."""
    state = RawServer()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        state.connections += 1
        try:
            while True:
                state.requests.append(await read_request(reader))
                if not await reply(state, writer):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    state.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    async with server:
        yield state


@pytest.mark.anyio
async def test_request_format_and_connection_reuse() -> None:
    async def reply(state: RawServer, writer: asyncio.StreamWriter) -> bool:
        writer.write(OK)
        return True

    client = LeanHTTPClient()
    async with raw_server(reply) as srv:
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
    client.close()


@pytest.mark.anyio
async def test_a_connection_the_peer_closed_while_idle_is_replaced() -> None:
    async def reply(state: RawServer, writer: asyncio.StreamWriter) -> bool:
        writer.write(OK)  # no "Connection: close", yet the server hangs up
        await writer.drain()
        return False

    client = LeanHTTPClient()
    async with raw_server(reply) as srv:
        for _ in range(3):
            assert (
                await client.request("POST", srv.url, headers=[], body=b"x", timeout=2)
            ).status == 200
        assert srv.connections == 3
        assert len(srv.requests) == 3
    client.close()


@pytest.mark.anyio
async def test_response_delimited_by_connection_close() -> None:
    async def reply(state: RawServer, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 500 Boom\r\nConnection: close\r\n\r\nbody until close")
        return False

    client = LeanHTTPClient()
    async with raw_server(reply) as srv:
        response = await client.request("POST", srv.url, headers=[], body=b"x", timeout=2)
        assert (response.status, response.body) == (500, b"body until close")
    client.close()


@pytest.mark.anyio
async def test_garbage_and_silence_and_refusal_are_push_failures() -> None:
    async def garbage(state: RawServer, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"this is not http\r\n\r\n")
        return True

    async def silent(state: RawServer, writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(5)  # the peer under test never answers in time
        return False

    client = LeanHTTPClient()
    async with raw_server(garbage) as srv:
        with pytest.raises(HTTPFailure, match="invalid HTTP response"):
            await client.request("POST", srv.url, headers=[], body=b"x", timeout=2)
    async with raw_server(silent) as srv:
        started = time.monotonic()
        with pytest.raises(HTTPFailure, match=r"no answer within 0.2 s"):
            await client.request("POST", srv.url, headers=[], body=b"x", timeout=0.2)
        assert time.monotonic() - started < 1.5
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

    client = LeanHTTPClient()
    async with raw_server(reply) as srv:
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
    client.close()


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

    client = LeanHTTPClient()
    async with raw_server(reply) as srv:
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
    client.close()


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
    async def reply(state: RawServer, writer: asyncio.StreamWriter) -> bool:
        writer.write(OK)
        return True

    client = LeanHTTPClient()
    async with raw_server(reply) as srv:
        with pytest.raises(HTTPFailure, match="line break or NUL") as info:
            await client.request("POST", srv.url, headers=[header], timeout=2)
        assert info.value.unsent
        assert srv.requests == []
    client.close()
