"""The network between the hosts and the rest: a round-robin load balancer and service relays.

``python -m multihost.gateway CONFIG.json`` (with ``tests/`` on ``PYTHONPATH``) runs, in one
asyncio process on the machine's own network:

- the **load balancer**: an HTTP/1.1 proxy on 127.0.0.1 (the one subscriber URL the dev server
  pushes to) that sends each request to the next host in turn, reaching the hosts through
  sockets made in the LAN namespace. A host that refuses the connection is skipped (the next
  one is tried, as nginx's ``proxy_next_upstream error`` does); a host that dies while it holds
  a request makes that request a 502. Every request is logged as one JSON line (message id,
  reservation id, path, host, status) to ``log``;
- one **direct port** per host on 127.0.0.1 (to reach one chosen host: its ``/_health``, its
  ``/_ack``);
- the **service relays**: listeners on the LAN address inside the LAN namespace, each relaying
  TCP to a service on 127.0.0.1 (Redis, PostgreSQL, the dev server's API).

When it listens it writes ``{"balancer": port, "direct": [ports]}`` to the file ``ready``; it
exits when its parent process does.

CONFIG: ``{"lan_netns": str | null, "backends": [[host, port], ...], "relays": [[listen_host,
listen_port, to_host, to_port], ...], "log": path, "ready": path}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

from faults.proxy import read_message

from multihost.netns import NetnsSockets

_502 = b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
_504 = b"HTTP/1.1 504 Gateway Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
UPSTREAM_TIMEOUT = 60.0  # longer than any push timeout: the pusher gives up first


def header(message: bytes, name: bytes) -> str | None:
    head = message.split(b"\r\n\r\n", 1)[0]
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name:
            return value.strip().decode("latin-1")
    return None


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


class Gateway:
    def __init__(self, config: dict[str, Any]) -> None:
        self.lan = NetnsSockets(config.get("lan_netns"))
        self.backends = [(str(h), int(p)) for h, p in config["backends"]]
        self.relays = [(str(a), int(b), str(c), int(d)) for a, b, c, d in config["relays"]]
        self._next = itertools.cycle(range(len(self.backends)))
        self.ready = str(config["ready"])
        self._log: IO[str] = Path(config["log"]).open("a", buffering=1)  # noqa: SIM115

    async def connect_backend(
        self, index: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        sock = self.lan.tcp()
        try:
            await asyncio.get_running_loop().sock_connect(sock, self.backends[index])
        except OSError:
            sock.close()
            raise
        return await asyncio.open_connection(sock=sock)

    # --- the load balancer ---------------------------------------------------------------

    async def balance(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while (request := await read_message(reader)) is not None:
                response, index = await self.forward(request)
                self.record(request, index, status_of(response))
                writer.write(response)
                await writer.drain()
                if response in (_502, _504):
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()

    async def forward(self, request: bytes) -> tuple[bytes, int | None]:
        first = next(self._next)
        for step in range(len(self.backends)):
            index = (first + step) % len(self.backends)
            try:
                up_reader, up_writer = await self.connect_backend(index)
            except OSError:
                continue  # refused: that host is down, try the next one
            try:
                up_writer.write(request)
                await up_writer.drain()
                response = await asyncio.wait_for(read_message(up_reader), UPSTREAM_TIMEOUT)
            except TimeoutError:
                return _504, index
            except (ConnectionError, asyncio.IncompleteReadError):
                return _502, index  # the host died while it held the request
            finally:
                up_writer.close()
            return (response, index) if response is not None else (_502, index)
        return _502, None

    def record(self, request: bytes, index: int | None, status: int) -> None:
        line = request.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
        entry = {
            "t": round(time.time(), 3),
            "method": line[0],
            "path": line[1] if len(line) > 1 else "",
            "message_id": header(request, b"iron-message-id"),
            "reservation_id": header(request, b"iron-reservation-id"),
            "host": None if index is None else index + 1,
            "status": status,
        }
        self._log.write(json.dumps(entry) + "\n")

    # --- plain TCP relays -----------------------------------------------------------------

    async def direct(
        self, index: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            up = await self.connect_backend(index)
        except OSError:
            writer.close()
            return
        await pipe_both(reader, writer, *up)

    async def relay(
        self, to: tuple[str, int], reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            up = await asyncio.open_connection(*to)
        except OSError:
            writer.close()
            return
        await pipe_both(reader, writer, *up)

    async def serve(self) -> None:
        balancer = await asyncio.start_server(self.balance, "127.0.0.1", 0, backlog=1024)
        direct = []
        for index in range(len(self.backends)):
            handler = _bind(self.direct, index)
            direct.append(await asyncio.start_server(handler, "127.0.0.1", 0, backlog=256))
        for host, port, to_host, to_port in self.relays:
            sock = self.lan.listener(host, port)
            await asyncio.start_server(_bind(self.relay, (to_host, to_port)), sock=sock)
        ports = {
            "balancer": balancer.sockets[0].getsockname()[1],
            "direct": [server.sockets[0].getsockname()[1] for server in direct],
        }
        ready = Path(self.ready)
        ready.with_suffix(".tmp").write_text(json.dumps(ports))
        ready.with_suffix(".tmp").rename(ready)  # atomic: the harness never reads half of it
        await asyncio.Event().wait()


def _bind(method: Any, arg: Any) -> Any:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await method(arg, reader, writer)

    return handler


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(OSError, RuntimeError):
            writer.close()


async def pipe_both(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    up_reader: asyncio.StreamReader,
    up_writer: asyncio.StreamWriter,
) -> None:
    await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


def _exit_with_parent(parent: int) -> None:
    # A harness killed by a timeout cannot stop us: leave once it is gone.
    while os.getppid() == parent:
        time.sleep(0.5)
    os.kill(os.getpid(), signal.SIGTERM)


def main() -> None:
    config = json.loads(Path(sys.argv[1]).read_text())
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
    socket.setdefaulttimeout(None)
    asyncio.run(Gateway(config).serve())


if __name__ == "__main__":
    main()
