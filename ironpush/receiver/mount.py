"""``PushMount``: serve a :class:`~ironpush.PushRouter` under a path prefix of any ASGI app,
dispatched before the app's own routing, with the router's lifespan run whatever the app does.

Starlette's ``Mount("/ironmq", app=router)`` works, but every push then pays for the parent's
middleware stack (``ServerErrorMiddleware``, ``ExceptionMiddleware``, each wrapping ``send``),
its ``Router`` trying each route's regular expression in turn, and ``Mount`` building a child
scope (path params, ``root_path``, ``app_root_path``) and merging it into the scope.
``PushMount`` does one string comparison on the path and calls the router's
:meth:`~ironpush.PushRouter.handle` with the path below the prefix; every other request goes
to the app unchanged::

    from starlette.applications import Starlette
    from ironpush import PushRouter
    from ironpush.receiver.mount import PushMount

    router = PushRouter(secret_keys=["..."])
    app = Starlette(routes=[...])
    app = PushMount(app, router=router, path="/ironmq")      # serve this one (uvicorn main:app)

    # or as middleware (FastAPI too), keeping `app` the object you serve:
    #   app.add_middleware(PushMount, router=router, path="/ironmq")

    # Django:  application = PushMount(get_asgi_application(), router=router)

As the outer wrapper, pushes skip the app's middleware (they need none: the router verifies,
answers and logs by itself); added with ``add_middleware``, middleware added after it still
sees them.

**Lifespan.** ``PushMount`` answers the server's lifespan scope itself: the app's startup runs,
then the router's (an outbox left by a crash is flushed); at shutdown the router drains first
(new ``Defer`` work gets 503, running jobs finish, acks are sent), then the app's shutdown
runs. An app that refuses the lifespan (Django; one INFO line says so) or answers it without
doing anything (a WSGI app behind a2wsgi) gets the router's lifespan all the same;
``lifespan=router.lifespan`` on the app is not needed (and harmless: the router starts once
and drains once). An app whose own startup fails fails the server's start, and the router
does not start.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from ._asgi import Receive, Scope, Send, route_path
from ._lifespan import run_lifespan

if TYPE_CHECKING:
    from ._router import PushRouter

__all__ = ["PushMount"]

# Any ASGI callable: frameworks type their scopes and messages as TypedDicts (Litestar, Quart,
# a2wsgi), which a Callable[[MutableMapping, ...], ...] parameter would refuse.
ASGIApp = Callable[..., Awaitable[None]]


class PushMount:
    """An ASGI app: requests under ``path`` go to ``router``, all others to ``app``; the
    server's lifespan starts and drains both (see the module docs).

    ``path`` is the mount point (``"/ironmq"``: the router's ``/orders`` route answers at
    ``/ironmq/orders``), matched on whole segments (``/ironmqx`` is not under it) after the
    server's ``root_path``. Usable as a wrapper or with ``app.add_middleware(PushMount, ...)``::

        app = PushMount(app, router=router, path="/ironmq")
    """

    def __init__(self, app: ASGIApp, *, router: PushRouter, path: str = "/ironmq") -> None:
        prefix = "/" + path.strip("/")
        if prefix == "/":
            raise ValueError("PushMount needs a path prefix such as '/ironmq'")
        self.app = app
        self.router = router
        self.prefix = prefix
        self._length = len(prefix)

    def __repr__(self) -> str:
        return f"PushMount(path={self.prefix!r}, router={self.router!r})"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = route_path(scope)
            n = self._length
            if path.startswith(self.prefix) and (len(path) == n or path[n] == "/"):
                await self.router.handle(path[n:] or "/", scope, receive, send)
                return
        elif scope["type"] == "lifespan":
            await run_lifespan(self.app, scope, receive, send, router=self.router)
            return
        await self.app(scope, receive, send)
