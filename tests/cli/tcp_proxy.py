"""A TCP proxy that adds latency, refuses or black-holes, in front of a real server.

For the health tests: a receiver reaches its Redis or PostgreSQL through it. Each direction is
a queue of chunks stamped with their arrival time, written ``delay`` seconds later (one-way
latency, order kept, no bandwidth limit). :meth:`DelayProxy.refuse` stops listening and drops
the open connections (the store is down: connections are refused); :meth:`DelayProxy.hang`
keeps accepting but forwards nothing either way (the store hangs); :meth:`DelayProxy.relay`
goes back to relaying::

    with DelayProxy(("127.0.0.1", 5432), delay=0.1) as proxy:
        dsn = f"postgresql://postgres@127.0.0.1:{proxy.port}/test"
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Coroutine
from typing import Any, Literal

Mode = Literal["relay", "refuse", "hang"]


class DelayProxy:
    """Relays 127.0.0.1:``port`` to ``upstream``, ``delay`` seconds each way (see module)."""

    def __init__(self, upstream: tuple[str, int], *, delay: float = 0.0) -> None:
        self.upstream = upstream
        self.delay = delay
        self.mode: Mode = "relay"
        self.port = 0
        self.accepted = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    def __enter__(self) -> DelayProxy:
        self._thread.start()
        self._call(self._listen())
        return self

    def __exit__(self, *exc: object) -> None:
        self._call(self._stop_listening(drop=True))
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def refuse(self) -> None:
        """Stop listening (connections are refused) and drop every open connection."""
        self.mode = "refuse"
        self._call(self._stop_listening(drop=True))

    def hang(self) -> None:
        """Accept, but forward nothing either way; drop every open connection."""
        self.mode = "hang"
        self._call(self._drop_all())
        self._call(self._listen())

    def relay(self) -> None:
        """Relay again (listening again if refusing)."""
        self.mode = "relay"
        self._call(self._listen())

    def _call(self, coro: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    async def _listen(self) -> None:
        if self._server is not None:
            return
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self.port = sock.getsockname()[1]
        self._server = await asyncio.start_server(self._client, sock=sock)

    async def _stop_listening(self, *, drop: bool) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        if drop:
            await self._drop_all()

    async def _drop_all(self) -> None:
        for writer in list(self._writers):
            with contextlib.suppress(Exception):
                writer.transport.abort()
        self._writers.clear()
        for task in list(self._tasks):
            task.cancel()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self._writers.add(writer)
        if self.mode != "relay":
            return  # hanging: the connection stays open and silent until dropped
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.transport.abort()
            return
        self._writers.add(up_writer)
        for source, target in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.get_running_loop().create_task(self._pipe(source, target))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(self, source: asyncio.StreamReader, target: asyncio.StreamWriter) -> None:
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        writer = asyncio.get_running_loop().create_task(self._deliver(queue, target))
        try:
            while chunk := await source.read(65536):
                await queue.put((time.monotonic() + self.delay, chunk))
            await queue.put((time.monotonic() + self.delay, b""))
            await writer
        except (OSError, asyncio.CancelledError):
            writer.cancel()
            target.transport.abort()

    async def _deliver(
        self, queue: asyncio.Queue[tuple[float, bytes]], target: asyncio.StreamWriter
    ) -> None:
        while True:
            due, chunk = await queue.get()
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)  # the latency itself, not a wait for an outcome
            if self.mode != "relay":
                return
            if not chunk:
                with contextlib.suppress(OSError):
                    target.write_eof()
                return
            target.write(chunk)
            await target.drain()
