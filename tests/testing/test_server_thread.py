"""ServerThread: the socket it binds behaves like uvicorn's own."""

from __future__ import annotations

import socket

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ironpush.server_thread import ServerThread


async def echo(request: Request) -> Response:
    return Response(await request.body())


def test_accepted_connections_send_without_waiting_for_nagle() -> None:
    # A listening socket created with protocol 0 makes asyncio skip TCP_NODELAY on every
    # accepted connection: each keep-alive request then waited ~40 ms (Nagle + delayed ACK).
    server = ServerThread(Starlette(routes=[Route("/", echo, methods=["POST"])]))
    with server, httpx.Client() as client:
        for _ in range(2):  # the second request rides the kept-alive connection
            assert client.post(server.url + "/", content=b"x" * 3000).content == b"x" * 3000
        connections = server._server.server_state.connections
        assert connections, "no open connection to inspect"
        for protocol in connections:
            sock = protocol.transport.get_extra_info("socket")
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
