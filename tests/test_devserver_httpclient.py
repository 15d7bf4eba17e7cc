"""The pusher's keep-alive HTTP/1.1 client against raw TCP servers that misbehave on purpose."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest

from ironpush.devserver.httpclient import PushClient, PushFailure

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

    client = PushClient()
    async with raw_server(reply) as srv:
        headers = [("X-A", "1"), ("Host", "evil"), ("Content-Length", "999")]
        for body in (b"one", b"two"):
            response = await client.post(srv.url + "/p/a b?q=1", headers, body, timeout=2)
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

    client = PushClient()
    async with raw_server(reply) as srv:
        for _ in range(3):
            assert (await client.post(srv.url, [], b"x", timeout=2)).status == 200
        assert srv.connections == 3
        assert len(srv.requests) == 3
    client.close()


@pytest.mark.anyio
async def test_response_delimited_by_connection_close() -> None:
    async def reply(state: RawServer, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 500 Boom\r\nConnection: close\r\n\r\nbody until close")
        return False

    client = PushClient()
    async with raw_server(reply) as srv:
        response = await client.post(srv.url, [], b"x", timeout=2)
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

    client = PushClient()
    async with raw_server(garbage) as srv:
        with pytest.raises(PushFailure, match="invalid HTTP response"):
            await client.post(srv.url, [], b"x", timeout=2)
    async with raw_server(silent) as srv:
        started = time.monotonic()
        with pytest.raises(PushFailure, match=r"no answer within 0.2 s"):
            await client.post(srv.url, [], b"x", timeout=0.2)
        assert time.monotonic() - started < 1.5
    with pytest.raises(PushFailure, match="connection failed"):
        await client.post(srv.url, [], b"x", timeout=2)  # that server is closed now
    with pytest.raises(PushFailure, match="cannot push"):
        await client.post("ftp://example.com/", [], b"x", timeout=2)
    client.close()
