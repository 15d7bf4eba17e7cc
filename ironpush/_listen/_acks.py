"""The ack endpoint: where a relayed push's ``Iron-Subscriber-Message-Url`` points.

A local service that answered 202 acknowledges later. Its ``DELETE`` on the push's message
URL (ironpush's client sends it when IronMQ refuses the API delete of a relayed message id)
lands here, in the same form as the dev server's::

    DELETE /3/projects/{project}/queues/{relay queue}/messages/{id}/subscribers/{name}
           ?reservation_id={rid}

and the relayed message is deleted with the relay's current reservation: ``200 {"msg":
"Deleted"}``; ``403 Reservation timed out`` for a reservation id that is not the newest push's;
``404 Message not found`` for a message this process does not hold. ``DELETE
…/messages/{id}`` with ``{"reservation_id"}`` in the body is accepted too. The reservation id,
random and valid while the push waits for its ack, is the credential (as on the dev server);
the endpoint listens on 127.0.0.1 unless told otherwise.

It runs in a :class:`~ironpush.server_thread.ServerThread` (uvicorn in a thread, so that it
does not take the process's signal handlers) and calls the relay on the relay's event loop::

    server = AckServer(relayer.ack, loop, host="127.0.0.1", port=0).start()
    server.url   # 'http://127.0.0.1:41234'
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable, Coroutine
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from .._errors import ConfigError
from ..server_thread import ServerThread

AckHandler = Callable[[str, str, str | None], Coroutine[Any, Any, int]]
MESSAGES = {200: "Deleted", 403: "Reservation timed out", 404: "Message not found"}
_PREFIX = "/3/projects/{project}/queues/{queue}/messages/{message_id}"


def ack_app(handle: AckHandler, loop: asyncio.AbstractEventLoop) -> Starlette:
    """The ASGI app of the endpoint; ``handle(relay queue, message id, reservation id)`` runs
    on ``loop`` and says the status code."""

    async def delete(request: Request) -> JSONResponse:
        params = request.path_params
        reservation = request.query_params.get("reservation_id") or await _body_field(
            request, "reservation_id"
        )
        future: concurrent.futures.Future[int] = asyncio.run_coroutine_threadsafe(
            handle(params["queue"], params["message_id"], reservation or None), loop
        )
        status = await asyncio.wrap_future(future)
        return JSONResponse({"msg": MESSAGES.get(status, "")}, status_code=status)

    routes = [
        Route(_PREFIX + "/subscribers/{subscriber}", delete, methods=["DELETE"]),
        Route(_PREFIX, delete, methods=["DELETE"]),
    ]
    return Starlette(routes=routes)


async def _body_field(request: Request, name: str) -> str | None:
    try:
        data: Any = await request.json()
    except ValueError:
        return None
    value = data.get(name) if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


class AckServer:
    """The endpoint on ``host:port`` (0: a free port); :attr:`url` is the base of ack URLs."""

    def __init__(
        self, handle: AckHandler, loop: asyncio.AbstractEventLoop, *, host: str, port: int
    ) -> None:
        self.host, self.port = host, port
        self.server = ServerThread(ack_app(handle, loop), host=host, port=port)

    def start(self) -> AckServer:
        try:
            self.server.start()
        except OSError as exc:
            raise ConfigError(
                f"cannot serve the ack endpoint on {self.host}:{self.port}: {exc.strerror} "
                "(--port picks another; 0 takes a free one)"
            ) from exc
        return self

    @property
    def url(self) -> str:
        """``http://host:port``, with a loopback address when bound to every interface."""
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(self.host, self.host)  # noqa: S104
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.server.port}"

    def stop(self) -> None:
        self.server.stop(timeout=5.0)
