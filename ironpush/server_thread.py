"""Run an ASGI app on a real socket in a background thread (dev server, tests, the demo).

The socket is bound before uvicorn starts, so the port is known at once and no other process
can take it between "find a free port" and "listen".
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import uvicorn

__all__ = ["ServerThread"]


class ServerThread:
    """An ASGI app served by uvicorn on ``host:port`` (``port=0`` picks a free one) in a thread.

    ::

        with ServerThread(app) as server:
            httpx.get(server.url + "/health")

    Startup and shutdown run the app's lifespan. ``stop()`` is graceful: in-flight requests
    finish and the lifespan shutdown runs, within ``graceful_timeout`` seconds.
    """

    def __init__(
        self,
        app: Any,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        graceful_timeout: float = 5.0,
        log_level: str = "warning",
        startup_timeout: float = 15.0,
        **uvicorn_options: Any,
    ) -> None:
        self.app = app
        self.host = host
        self._requested_port = port
        self._startup_timeout = startup_timeout
        self._config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level=log_level,
            lifespan="on",
            timeout_graceful_shutdown=int(max(1, graceful_timeout)),
            **uvicorn_options,
        )
        self._server = uvicorn.Server(self._config)
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self._error: BaseException | None = None
        self.port = port

    @property
    def url(self) -> str:
        """``http://host:port`` of the running server."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def bound_address(self) -> tuple[str, int]:
        """The socket's own address, ``(host, port)`` (what it really listens on, once started)."""
        if self._socket is None:
            raise RuntimeError("the server is not started")
        host, port = self._socket.getsockname()[:2]
        return str(host), int(port)

    def start(self) -> ServerThread:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP, and
        # accepted connections inherit it. Without it every keep-alive request waits ~40 ms for
        # Nagle's algorithm and the peer's delayed ACK.
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self._requested_port))
        sock.listen(2048)
        sock.set_inheritable(True)
        self._socket = sock
        self.port = sock.getsockname()[1]
        self._thread = threading.Thread(target=self._run, name=f"uvicorn:{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + self._startup_timeout
        while not self._server.started:
            if self._error is not None or not self._thread.is_alive():
                raise RuntimeError(f"server on {self.url} failed to start") from self._error
            if time.monotonic() > deadline:
                raise RuntimeError(f"server on {self.url} did not start in time")
            time.sleep(0.005)
        return self

    def _run(self) -> None:
        try:
            self._server.run(sockets=[self._socket] if self._socket else None)
        except BaseException as exc:  # SystemExit on a lifespan startup failure, too
            self._error = exc

    def is_alive(self) -> bool:
        """Whether the server thread still runs (False before ``start()`` and after a crash)."""
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop gracefully and wait for the thread (at most ``timeout`` seconds)."""
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        if self._socket is not None:
            self._socket.close()

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
