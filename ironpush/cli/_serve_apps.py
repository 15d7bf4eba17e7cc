"""What ``ironpush serve`` was given, and the ASGI app it serves for it.

``ironpush serve MODULE:APP`` runs ASGI apps under uvicorn. Before anything starts it looks at
the object (:func:`app_kind`):

- an **ASGI** app (an ``async`` callable, or an object whose ``__call__`` is one: Starlette,
  FastAPI, Django's ``get_asgi_application()``, Litestar, Quart, ``PushMount``...) is served
  as it is. With ``--lifespan on``, one that refuses the lifespan (Django without
  ``PushMount``) stops the start with one line instead of uvicorn's traceback
  (:class:`LifespanRequired`);
- a **WSGI** app (a plain callable of ``(environ, start_response)``: Flask, Django's
  ``get_wsgi_application()``) is served through a2wsgi (``pip install 'ironpush[wsgi]'``)
  with its module's one :class:`~ironpush.PushRouter` mounted in front of it
  (``PushMount(WSGIMiddleware(app), router=router, path=--wsgi-mount)``), so the router's
  lifespan runs as usual; without a2wsgi, or without exactly one router to mount, the start
  is refused with one line naming the recipes (the sidecar: ``ironpush serve MODULE:router``
  next to the WSGI server);
- anything else (a module, a class, a string) is refused with one line.

Uvicorn's own test (an ``async`` ``__call__`` means ASGI 3) decides among callables; a
two-argument plain callable can only be WSGI, since an ASGI 3 app takes three and an ASGI 2
app one::

    app = servable(flask_app, module, ref="shop:app", settings=AppSettings())
"""

from __future__ import annotations

import inspect
from types import ModuleType
from typing import Any, Literal

from .._errors import ConfigError
from ..receiver._lifespan import ENDED, ChildLifespan
from ..receiver._router import PushRouter
from ..receiver.mount import PushMount
from ._serve_settings import AppSettings

AppKind = Literal["asgi", "wsgi"]
RECIPES = "README 'Frameworks'"
_PROBE = object()


def app_kind(app: Any) -> AppKind | None:
    """``"asgi"``, ``"wsgi"``, or ``None`` when ``app`` is no app at all."""
    if isinstance(app, type | ModuleType) or not callable(app):
        return None
    call = app if inspect.isroutine(app) else type(app).__call__
    if inspect.iscoroutinefunction(call) or inspect.iscoroutinefunction(app):
        return "asgi"
    try:
        signature = inspect.signature(app)
    except (TypeError, ValueError):  # a builtin without a signature: let uvicorn try it
        return "asgi"
    if _binds(signature, 2) and not _binds(signature, 3) and not _binds(signature, 1):
        return "wsgi"
    return "asgi"  # ASGI 2 (one argument) or a sync callable returning an awaitable


def _binds(signature: inspect.Signature, count: int) -> bool:
    try:
        signature.bind(*([_PROBE] * count))
    except TypeError:
        return False
    return True


def describe(app: Any) -> str:
    """``"a Flask app"``, ``"a WSGIHandler (django.core.handlers.wsgi)"``... for messages."""
    cls = type(app)
    if cls.__module__.split(".")[0] == "flask":
        return "a Flask app"
    return f"a {cls.__name__} ({cls.__module__})"


def servable(app: Any, module: ModuleType, *, ref: str, settings: AppSettings) -> Any:
    """The ASGI app to serve for ``app`` (see the module docs); :class:`ConfigError` with one
    line when there is none."""
    kind = app_kind(app)
    if kind is None:
        raise ConfigError(f"{ref} is {describe(app)}, not an app: give MODULE:APP of an ASGI app")
    if kind == "wsgi":
        return _wsgi(app, module, ref=ref, path=settings.wsgi_mount)
    if settings.lifespan == "on" and not isinstance(app, PushMount | PushRouter):
        return LifespanRequired(app, ref=ref)
    return app


def _wsgi(app: Any, module: ModuleType, *, ref: str, path: str) -> PushMount:
    what = f"{ref} is a WSGI app ({describe(app)[2:]}); ironpush serve runs ASGI apps"
    sidecar = f"run the sidecar next to your WSGI server (ironpush serve MODULE:router, {RECIPES})"
    try:
        from a2wsgi import WSGIMiddleware
    except ImportError:
        raise ConfigError(
            f"{what}: {sidecar}, or pip install 'ironpush[wsgi]' to serve it here"
        ) from None
    routers = [v for v in vars(module).values() if isinstance(v, PushRouter)]
    if len(routers) != 1:
        found = f"{len(routers)} PushRouters" if routers else "no PushRouter"
        raise ConfigError(
            f"{what}, with its module's PushRouter mounted in front, but {module.__name__} "
            f"has {found}: {sidecar}"
        )
    return PushMount(WSGIMiddleware(app), router=routers[0], path=path)


class LifespanRequired:
    """``--lifespan on``: an app that refuses the lifespan stops the start with one line.

    uvicorn would log the app's traceback (``Exception in 'lifespan' protocol``); this answers
    ``lifespan.startup.failed`` with what to do instead. Everything else reaches the app
    unchanged.
    """

    def __init__(self, app: Any, *, ref: str) -> None:
        self.app = app
        self.ref = ref

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        child = ChildLifespan(self.app, scope)
        try:
            while True:
                message = await receive()
                kind = message["type"].removeprefix("lifespan.")
                answer = await child.event(kind)
                if answer["type"] == ENDED and kind == "startup":
                    answer = {"type": "lifespan.startup.failed", "message": self._refused(child)}
                elif answer["type"] == ENDED:  # it answered the startup: it is done
                    answer = {"type": f"lifespan.{kind}.complete"}
                await send(answer)
                if kind == "shutdown" or answer["type"].endswith(".failed"):
                    return
        finally:
            await child.close()

    def _refused(self, child: ChildLifespan) -> str:
        return (
            f"--lifespan on: {self.ref} does not take the ASGI lifespan ({child.refusal()}): "
            f"serve it with --lifespan auto, or wrap it in PushMount(app, router=router), "
            f"which runs the router's lifespan for it ({RECIPES})"
        )
