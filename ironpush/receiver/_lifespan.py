"""The lifespan of an app that :class:`~ironpush.receiver.mount.PushMount` wraps, with the
router's around it, whatever the app does with the lifespan scope.

The server sends its lifespan scope to the outermost app. When that is a ``PushMount``, the
router must start and drain whether or not the app it wraps takes part:

- the app takes the lifespan (Starlette, FastAPI, Litestar, Quart; a2wsgi's ``WSGIMiddleware``
  answers without doing anything): its startup runs first, then the router's; at shutdown the
  router drains first — its deferred jobs may use what the app's startup opened, such as a
  database pool — then the app's shutdown runs;
- the app refuses it (Django raises ``ValueError: Django can only handle ASGI/HTTP
  connections, not lifespan``) or returns without answering: the router's lifespan runs
  alone, and one INFO line says so (as uvicorn's ``--lifespan auto`` does for an app);
- the app's startup or shutdown fails (it answers ``lifespan.startup.failed``): that is the
  answer the server gets, and the router does not start.

The router's own startup and shutdown are idempotent, so an app built with
``lifespan=router.lifespan`` as well is fine: the router starts once and drains once::

    await run_lifespan(app, scope, receive, send, router=router)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any

from ._asgi import Receive, Scope, Send

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from ._router import PushRouter

    ASGIApp = Callable[..., Awaitable[None]]

logger = logging.getLogger("ironpush.receiver")

Message = MutableMapping[str, Any]
#: What :meth:`ChildLifespan.event` returns when the app's lifespan call ended without an
#: answer (it raised, or returned).
ENDED = "ironpush.lifespan.ended"


class ChildLifespan:
    """An app's lifespan call, driven one event at a time from outside.

    The app runs in its own task with its own ``receive``/``send``; :meth:`event` hands it
    ``lifespan.startup`` or ``lifespan.shutdown`` and returns its answer, or
    ``{"type": ENDED}`` when the call raised (:attr:`error`) or returned instead::

        child = ChildLifespan(app, scope)
        answer = await child.event("startup")    # {"type": "lifespan.startup.complete"}
    """

    def __init__(self, app: ASGIApp, scope: Scope) -> None:
        self.error: Exception | None = None
        self.ended = False
        self._inbox: asyncio.Queue[Message] = asyncio.Queue()
        self._answers: asyncio.Queue[Message] = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._run(app, scope))

    async def _run(self, app: ASGIApp, scope: Scope) -> None:
        try:
            await app(scope, self._inbox.get, self._answers.put)
        except Exception as exc:  # the app's way of refusing the scope (Django)
            self.error = exc
        finally:
            self.ended = True
            self._answers.put_nowait({"type": ENDED})

    async def event(self, kind: str) -> Message:
        """Send ``lifespan.<kind>`` to the app; its answer (see the class docs)."""
        if self.ended:
            return {"type": ENDED}
        await self._inbox.put({"type": f"lifespan.{kind}"})
        return await self._answers.get()

    def refusal(self) -> str:
        """Why the app's lifespan ended without an answer, in one line."""
        if self.error is None:
            return "it returned without answering"
        return f"{type(self.error).__name__}: {self.error}".splitlines()[0]

    async def close(self) -> None:
        """Stop the app's task if it still runs (the server stopped waiting)."""
        if not self._task.done():
            self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


async def run_lifespan(
    app: ASGIApp, scope: Scope, receive: Receive, send: Send, *, router: PushRouter
) -> None:
    """Answer the server's lifespan scope for ``app`` with ``router`` started inside it."""
    child = ChildLifespan(app, scope)
    try:
        message = await receive()
        if message["type"] == "lifespan.startup" and await _startup(child, send, router):
            message = await receive()
            if message["type"] == "lifespan.shutdown":
                await _shutdown(child, send, router)
    finally:
        await child.close()


async def _startup(child: ChildLifespan, send: Send, router: PushRouter) -> bool:
    answer = await child.event("startup")
    if answer["type"] == "lifespan.startup.failed":
        await send(answer)
        return False
    if answer["type"] == ENDED:
        logger.info(
            "the app PushMount wraps does not take the ASGI lifespan (%s): the router's "
            "lifespan runs by itself",
            child.refusal(),
        )
    try:
        await router.startup()
    except Exception as exc:
        await child.event("shutdown")  # the app started: let it close what it opened
        await send({"type": "lifespan.startup.failed", "message": f"PushRouter: {exc}"})
        return False
    await send({"type": "lifespan.startup.complete"})
    return True


async def _shutdown(child: ChildLifespan, send: Send, router: PushRouter) -> None:
    try:
        await router.shutdown()
    finally:
        answer = await child.event("shutdown")
    if answer["type"] == "lifespan.shutdown.failed":
        await send(answer)
    else:
        await send({"type": "lifespan.shutdown.complete"})
