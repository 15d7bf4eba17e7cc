"""What every ``ironpush serve`` process does before it serves: uvicorn calls :func:`build_app`.

``ironpush serve MODULE:APP`` hands uvicorn this module's factory instead of the app, so the
same setup runs in the single process or in each of the ``--workers N`` processes (spawned by
uvicorn's supervisor, which inherit the environment):

1. with a supervisor, **die with it** (:func:`die_with_parent`): a worker whose master was
   killed (``kill -9``, the OOM killer) would otherwise keep serving as an orphan, and hold the
   port so that a restart fails with "Address already in use";
2. import the app (``IRONPUSH_SERVE_APP``, with the CLI's one loader:
   :func:`~ironpush._refs.import_ref`), make it the ASGI app to serve
   (:func:`~ironpush.cli._serve_apps.servable`: a WSGI app behind a2wsgi with its router in
   front, the ``--lifespan on`` guard) and find its :class:`~ironpush.PushRouter`s
   (:func:`find_routers`), whose ``secret_param`` the access log masks too.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterable
from types import ModuleType
from typing import Any

from .._refs import import_ref
from ..receiver._router import PushRouter
from ._serve_apps import servable
from ._serve_logging import add_access_log_names
from ._serve_settings import AppSettings

APP_ENV = "IRONPUSH_SERVE_APP"
#: The :class:`AppSettings` of ``serve`` as JSON (the workers inherit it).
APP_SETTINGS_ENV = "IRONPUSH_SERVE_APP_SETTINGS"
#: ``"<master pid>:<seconds a graceful stop may take>"``, set by ``serve`` for ``--workers N``.
MASTER_ENV = "IRONPUSH_SERVE_MASTER"
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_WATCH_INTERVAL = 1.0

logger = logging.getLogger("ironpush.serve")


def build_app() -> Any:
    """uvicorn's app factory for ``ironpush serve`` (see the module docs)."""
    master = os.environ.get(MASTER_ENV)
    if master:
        pid, _, grace = master.partition(":")
        die_with_parent(int(pid), grace=float(grace or 30))
    ref = os.environ[APP_ENV]
    settings = AppSettings(**json.loads(os.environ.get(APP_SETTINGS_ENV) or "{}"))
    loaded, module = import_ref(ref)  # checked by the master: ConfigError if it changed
    app = servable(loaded, module, ref=ref, settings=settings)
    add_access_log_names({router.secret_param for router in find_routers(app, module)})
    return app


def find_routers(app: Any, module: ModuleType | None = None) -> list[PushRouter]:
    """The :class:`~ironpush.PushRouter`s an ASGI app serves, mounted ones included.

    Walks Starlette/FastAPI routers and mounts (``.router``, ``.routes``, ``Mount.app``) and
    ASGI middleware that wrap an ``.app``; also takes the routers among ``module``'s globals
    (an app that calls a router from its own ASGI code is not walkable).
    """
    found: dict[int, PushRouter] = {}
    seen: set[int] = set()
    stack: list[tuple[Any, int]] = [(app, 0)]
    while stack:
        obj, depth = stack.pop()
        if id(obj) in seen or depth > 32:
            continue
        seen.add(id(obj))
        if isinstance(obj, PushRouter):
            found[id(obj)] = obj
            continue
        stack.extend((child, depth + 1) for child in _children(obj))
    if module is not None:
        for value in vars(module).values():
            if isinstance(value, PushRouter):
                found.setdefault(id(value), value)
    return list(found.values())


def _children(obj: Any) -> Iterable[Any]:
    for name in ("router", "app"):
        child = getattr(obj, name, None)
        if child is not None and child is not obj and not isinstance(child, type):
            yield child
    routes = getattr(obj, "routes", None)
    if isinstance(routes, list | tuple):
        yield from routes


def die_with_parent(master_pid: int, *, grace: float) -> None:
    """End this process when ``master_pid`` (its parent) dies.

    On Linux the kernel sends SIGTERM when the parent dies (``prctl(PR_SET_PDEATHSIG)``); a
    thread also watches the parent id once a second (other systems, and a parent that died
    before the prctl call). SIGTERM makes uvicorn stop gracefully: it closes the listening
    socket at once, lets requests in flight finish and runs the lifespan shutdown (the router
    drains its jobs and flushes its outbox); after ``grace`` seconds more the process exits
    anyway.
    """
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) != 0:
                logger.warning("prctl(PR_SET_PDEATHSIG) failed: errno %d", ctypes.get_errno())
        except (OSError, AttributeError):
            logger.warning("prctl is not available: watching the parent process only")
    threading.Thread(
        target=_watch_parent, args=(master_pid, grace), name="ironpush-parent-watch", daemon=True
    ).start()


def _watch_parent(master_pid: int, grace: float) -> None:
    while os.getppid() == master_pid:
        time.sleep(_WATCH_INTERVAL)
    logger.warning("the serve master (pid %d) is gone: stopping this worker", master_pid)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(grace)
    logger.error("graceful stop took over %.0f s: exiting now", grace)
    os._exit(1)
