"""Django support: ``python manage.py ironpush_subscribe``, and ORM-safe handlers and jobs.

Add the app, name your router, and register its routes the Django way::

    # settings.py
    INSTALLED_APPS = [..., "ironpush.django"]
    IRONPUSH_ROUTER = "shop.pushes:router"        # or pass --router to the command

    # shell
    python manage.py ironpush_subscribe --base-url https://shop.example.com/ironmq

Serve the router inside Django's ASGI application with
:class:`~ironpush.receiver.mount.PushMount` (it runs the router's lifespan, which Django
refuses): ``application = PushMount(get_asgi_application(), router=router)``. Handlers and
deferred jobs run in ironpush's threads, outside Django's request cycle: wrap the sync ones
that use the ORM in :func:`managed_connections`.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import ParamSpec, TypeVar

try:
    from django.db import close_old_connections
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("ironpush.django needs Django: pip install django") from exc

__all__ = ["managed_connections"]

P = ParamSpec("P")
R = TypeVar("R")


def managed_connections(func: Callable[P, R]) -> Callable[P, R]:
    """Run a sync handler or job with Django's database connections handled as in a request.

    Django closes the connections that are past ``CONN_MAX_AGE`` or broken when a request
    starts and when it ends. A push handler or a ``Defer`` job runs in one of ironpush's
    worker threads, outside that cycle, so without this a thread would keep a connection the
    database already dropped (or keep one open for ever). This does what Django does, around
    each call::

        @router.route("/orders", queue="orders", subscriber="shop")
        @managed_connections
        def save_order(msg: PushMessage) -> None:
            Order.objects.create(number=msg.json()["id"])

    Async code reaches the ORM through ``sync_to_async`` (or Django's ``a*`` methods), which
    manage their connections themselves: this wraps sync functions only.
    """
    if inspect.iscoroutinefunction(func):
        raise TypeError(
            "managed_connections wraps sync functions; async code uses the ORM through "
            "sync_to_async, which handles connections itself"
        )

    @functools.wraps(func)
    def call(*args: P.args, **kwargs: P.kwargs) -> R:
        close_old_connections()
        try:
            return func(*args, **kwargs)
        finally:
            close_old_connections()

    return call
