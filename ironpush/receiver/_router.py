"""``PushRouter``: receive IronMQ pushes inside any ASGI service.

Declare one route per subscriber with the decorator, mount the router, and register the
routes with IronMQ (``ironpush subscribe --app myapp:router --base-url https://host/ironmq``)::

    from starlette.applications import Starlette
    from starlette.routing import Mount
    from ironpush import PushRouter, PushMessage, Defer

    router = PushRouter(secret_keys=["..."])          # or IRONPUSH_SECRET_KEYS

    @router.route("/orders", queue="orders", subscriber="billing", json=True, retries_delay=30)
    async def billing(msg: PushMessage):
        await charge(msg.json())                      # None -> 200, IronMQ deletes the message

    app = Starlette(routes=[Mount("/ironmq", app=router)], lifespan=router.lifespan)
    # FastAPI: app = FastAPI(lifespan=router.lifespan); app.mount("/ironmq", router)
    # alone:   uvicorn myapp:router

**Lifespan.** Starlette and FastAPI do not run a mounted app's lifespan, so the router starts
its background machinery (deferred jobs, ack outbox, lease heartbeat) lazily on the first push.
Pass ``lifespan=router.lifespan`` to the parent app (or enter ``router.lifespan(app)`` inside
your own lifespan) to also flush an outbox left by a crash at startup and to drain gracefully
at shutdown: new ``Defer`` work is refused (503), running jobs get ``shutdown_grace`` seconds,
the outbox is flushed, and the rest is left to IronMQ's redelivery.

**Endpoints** under the mount (user route paths may not start with ``/_``): ``POST {path}`` for
each route (any other method: 405; unknown path: 404), and ``/_health``, ``/_metrics``,
``/_ack``, ``/_release`` (see :mod:`ironpush.receiver._endpoints`).

**Verification.** Each route's subscriber is registered with a push secret bound to its
``(queue, subscriber)`` (see :mod:`ironpush._signing`), sent by IronMQ in the ``X-Ironpush-Secret``
header (or the ``ironpush_secret`` query parameter). A push without it gets **401**, one with a
wrong secret **403**; both before the body is read.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar, Unpack
from urllib.parse import urlencode

from .._protocol import PUSH_TYPES
from .._signing import DEFAULT_SECRET_HEADER, DEFAULT_SECRET_PARAM, Keys, push_secret, push_secrets
from ..client._models import Subscriber
from ._answers import reply
from ._asgi import JSON_HEADERS, Receive, Scope, Send, route_path
from ._endpoints import InternalEndpoints
from ._health import RefusalWindow
from ._metrics import Counters, prometheus_collector
from ._outbox import OutboxSettings
from ._outcomes import Handler
from ._pipeline import PushPipeline
from ._routes import Route, RouteOptions, is_async, lease_warning
from ._runtime import Background, Shared
from ._settings import RouterSettings, resolve_keys, resolve_store
from .stores import Store

if TYPE_CHECKING:
    from os import PathLike

    from ..client._sync_client import AsyncIronMQ

__all__ = ["PushRouter", "Subscription"]

logger = logging.getLogger("ironpush.receiver")

H = TypeVar("H", bound=Handler)
_RESERVED_PREFIX = "/_"
_ALLOW_POST = [*JSON_HEADERS, (b"allow", b"POST")]


@dataclass(frozen=True, slots=True)
class Subscription:
    """What to register with IronMQ for one route (see :meth:`PushRouter.subscriptions`).

    ``subscriber`` carries the URL and the secret header (masked in ``repr``); the other
    fields are the route's push settings (``None`` = leave the queue's setting alone)::

        for sub in router.subscriptions("https://api.example.com/ironmq"):
            mq.queue(sub.queue).update(subscribers=[sub.subscriber], **sub.push_settings)
    """

    queue: str
    subscriber: Subscriber
    push_type: str | None = None
    retries: int | None = None
    retries_delay: float | None = None
    error_queue: str | None = None

    @property
    def push_settings(self) -> dict[str, Any]:
        """The push settings that are set, as keyword arguments of ``Queue.update``."""
        settings = {
            "push_type": self.push_type,
            "retries": self.retries,
            "retries_delay": self.retries_delay,
            "error_queue": self.error_queue,
        }
        return {k: v for k, v in settings.items() if v is not None}


class PushRouter:
    """An ASGI app that receives IronMQ pushes and answers them by the receiver contract.

    Options (keyword-only):

    - ``secret_keys``: signing keys, oldest first (default: ``IRONPUSH_SECRET_KEYS`` via
      :mod:`ironpush._config`). Without keys the router refuses to build unless
      ``verify=False`` (local experiments only: a warning is logged).
    - ``client``: an :class:`~ironpush.AsyncIronMQ` for acks and dead-letter posts
      (default: built on first use from configuration, honouring ``IRONMQ_EMULATOR_HOST``).
    - ``store``: a :class:`~ironpush.receiver.stores.Store` (default: a
      :class:`~ironpush.receiver.stores.MemoryStore`), or a path or URL to open one (a path is
      an SQLite file); ``dedupe=False`` turns deduplication off (the store keeps the outbox).
    - ``body_limit`` (bytes, default 256 KB; larger pushes get 413), ``max_deferred``
      (concurrent deferred jobs, default 32; beyond it new deferred work gets 503),
      ``max_unsent_acks`` (acks of finished jobs not yet confirmed by IronMQ, default 10,000,
      about 1 KB each: beyond a tenth of it a ``Defer(job)`` push waits up to 1 s for the
      outbox to catch up, so the pusher slows to the ack rate; beyond all of it — IronMQ
      slow or down — new deferred work gets 503), ``dead_letter_queue`` (where
      ``Drop`` posts the message), ``secret_header`` / ``secret_param`` (where the push secret
      travels).
    - Timing: ``claim_lease`` (s, 10: renewed every lease/3 while the work runs, so a crashed
      process's claims expire after this; keep it under half of each route's
      ``(retries + 1) * retries_delay``, see :func:`~ironpush.receiver._routes.lease_warning`),
      ``external_lease`` (s, 900: how long ``Defer()`` work by an external worker blocks
      re-running the handler), ``dedupe_ttl`` (s, 1 day: how long handled messages are
      remembered), ``shutdown_grace`` (s, 10), ``flush_timeout`` (s, 5), ``ack_wait`` (s, 5:
      how long ``POST /_ack`` waits for IronMQ), ``ack_token_max_age`` (s, 1 day).
    - Health: ``/_health`` answers 503 when the store's probe fails or takes longer than
      ``health_timeout`` (s, 0.5), or when more than ``unhealthy_refusals`` (0.9) of the
      pushes of the last 30 s were refused with 503.
    - ``outbox``: :class:`~ironpush.receiver._outbox.OutboxSettings` (senders, backoff, give-up).

    Dedupe semantics: a redelivery of a handled message gets 200 without the handler; one that
    arrives while the handler or a deferred job still runs gets 202 and its reservation becomes
    the one acknowledged when the work succeeds; a failed attempt (``Retry``, an exception, a
    failed job) is not recorded, so the next push runs the handler again (``msg.attempt`` + 1).
    Handlers never see the push-secret header.

    ::

        router = PushRouter(store="ironpush.db")

        @router.route("/thumbnails", queue="images", subscriber="thumbnailer")
        def thumbnail(msg):                             # sync handlers run in the threadpool
            return Defer(render_thumbnail, msg.text)    # 202 now, ack when the job succeeds
    """

    def __init__(
        self,
        *,
        secret_keys: Keys | None = None,
        verify: bool = True,
        client: AsyncIronMQ | None = None,
        store: Store | str | PathLike[str] | None = None,
        dedupe: bool = True,
        body_limit: int = 256 * 1024,
        max_deferred: int = 32,
        max_unsent_acks: int = 10_000,
        dead_letter_queue: str | None = None,
        secret_header: str = DEFAULT_SECRET_HEADER,
        secret_param: str = DEFAULT_SECRET_PARAM,
        claim_lease: float = 10.0,
        external_lease: float = 900.0,
        dedupe_ttl: float = 86_400.0,
        shutdown_grace: float = 10.0,
        flush_timeout: float = 5.0,
        ack_wait: float = 5.0,
        ack_token_max_age: float | None = None,
        outbox: OutboxSettings | None = None,
        unhealthy_refusals: float = 0.9,
        health_timeout: float = 0.5,
    ) -> None:
        self.settings = RouterSettings(
            keys=resolve_keys(secret_keys, verify=verify),
            verify=verify,
            body_limit=body_limit,
            max_deferred=max_deferred,
            max_unsent_acks=max_unsent_acks,
            dead_letter_queue=dead_letter_queue,
            secret_header=secret_header,
            secret_param=secret_param,
            claim_lease=claim_lease,
            external_lease=external_lease,
            dedupe_ttl=dedupe_ttl,
            shutdown_grace=shutdown_grace,
            flush_timeout=flush_timeout,
            ack_wait=ack_wait,
            ack_token_max_age=ack_token_max_age,
            outbox=outbox or OutboxSettings(),
            unhealthy_refusals=unhealthy_refusals,
            health_timeout=health_timeout,
        )
        self.store: Store = resolve_store(store, dedupe=dedupe)
        self.counters = Counters()
        self._routes: dict[str, Route] = {}
        self.background = Background(
            store=self.store, counters=self.counters, settings=self.settings, client=client
        )
        shared = Shared(self.settings, self.store, self.counters, self.background, RefusalWindow())
        self.pipeline = PushPipeline(shared)
        self.endpoints = InternalEndpoints(shared, routes=self._routes)

    def __repr__(self) -> str:
        return f"PushRouter(routes={list(self._routes)!r}, store={self.store!r})"

    @property
    def keys(self) -> tuple[str | bytes, ...]:
        """The signing keys, oldest first (empty with ``verify=False`` and no keys)."""
        return self.settings.keys

    @property
    def secret_header(self) -> str:
        """The header the push secret travels in."""
        return self.settings.secret_header

    @property
    def secret_param(self) -> str:
        """The query parameter the push secret travels in (``secret_in="query"``)."""
        return self.settings.secret_param

    @property
    def claim_lease(self) -> float:
        """Seconds a claim outlives its owner (see :func:`~.routes.lease_warning`)."""
        return self.settings.claim_lease

    # --- declaring routes -----------------------------------------------------------------

    def route(
        self, path: str, *, queue: str, subscriber: str, **options: Unpack[RouteOptions]
    ) -> Callable[[H], H]:
        """Declare the handler for pushes of ``queue`` to ``subscriber`` at ``path``.

        The decorator form of :meth:`add_route` (same options)::

            @router.route("/orders", queue="orders", subscriber="billing", json=True)
            async def billing(msg: PushMessage) -> None: ...
        """

        def decorate(handler: H) -> H:
            self.add_route(path, handler, queue=queue, subscriber=subscriber, **options)
            return handler

        return decorate

    def add_route(
        self,
        path: str,
        handler: Handler,
        *,
        queue: str,
        subscriber: str,
        json: bool = False,
        push_type: Literal["multicast", "unicast"] | None = None,
        retries: int | None = None,
        retries_delay: float | None = None,
        error_queue: str | None = None,
        dead_letter_queue: str | None = None,
    ) -> Route:
        """Declare ``handler`` for pushes of ``queue`` to ``subscriber`` at ``path``.

        ``json=True`` parses the body first (an undecodable body gets 400). ``push_type``,
        ``retries``, ``retries_delay`` and ``error_queue`` are registered on the queue by
        ``ironpush subscribe``; ``dead_letter_queue`` overrides the router's for ``Drop``.
        Logs a warning when the retry budget is tight for ``claim_lease``::

            router.add_route("/orders", billing, queue="orders", subscriber="billing")
        """
        if not path.startswith("/") or path.startswith(_RESERVED_PREFIX):
            raise ValueError(f"route path {path!r} must start with '/' and not with '/_'")
        path = path.rstrip("/") or "/"
        if path in self._routes:
            raise ValueError(f"route {path!r} is already declared")
        if not queue or not subscriber:
            raise ValueError("a route needs a queue and a subscriber name")
        if any(r.queue == queue and r.subscriber == subscriber for r in self._routes.values()):
            raise ValueError(f"queue {queue!r} subscriber {subscriber!r} already has a route")
        if not callable(handler):
            raise TypeError("a route handler must be callable")
        if push_type not in (None, *PUSH_TYPES):
            raise ValueError(f"push_type must be one of {PUSH_TYPES}")
        keys = self.settings.keys
        route = Route(
            path,
            queue,
            subscriber,
            handler,
            json=json,
            push_type=push_type,
            retries=retries,
            retries_delay=retries_delay,
            error_queue=error_queue,
            dead_letter_queue=dead_letter_queue,
            is_async=is_async(handler),
            secrets=push_secrets(queue, subscriber, keys) if keys else (),
        )
        warning = lease_warning(route, self.settings.claim_lease)
        if warning is not None:
            logger.warning(warning)
        self._routes[path] = route
        return route

    @property
    def routes(self) -> tuple[Route, ...]:
        """The declared routes, in declaration order."""
        return tuple(self._routes.values())

    def subscriptions(
        self,
        base_url: str,
        *,
        secret_in: Literal["header", "query"] = "header",  # noqa: S107 - a place, not a secret
    ) -> list[Subscription]:
        """The subscriber definitions to register, for the router mounted at ``base_url``.

        ``base_url`` is the public URL of the mount point (``https://api.example.com/ironmq``).
        The push secret goes in the ``X-Ironpush-Secret`` header, or with
        ``secret_in="query"`` in the URL (for setups that cannot set subscriber headers).
        Secrets are masked in the reprs, but the values are real: do not print them.
        """
        if secret_in not in ("header", "query"):
            raise ValueError("secret_in must be 'header' or 'query'")
        base, keys = base_url.rstrip("/"), self.settings.keys
        out: list[Subscription] = []
        for route in self._routes.values():
            url, headers = base + route.path, {}
            if keys:
                secret = push_secret(route.queue, route.subscriber, keys)
                if secret_in == "header":
                    headers[self.secret_header] = secret
                else:
                    url += ("&" if "?" in url else "?") + urlencode({self.secret_param: secret})
            out.append(
                Subscription(
                    queue=route.queue,
                    subscriber=Subscriber(name=route.subscriber, url=url, headers=headers),
                    push_type=route.push_type,
                    retries=route.retries,
                    retries_delay=route.retries_delay,
                    error_queue=route.error_queue,
                )
            )
        return out

    # --- lifecycle ------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Any = None) -> AsyncIterator[None]:
        """The lifespan hook for the parent app: ``Starlette(..., lifespan=router.lifespan)``.

        Starts the background machinery (flushing an outbox left by a crash) and drains it
        gracefully on shutdown. Inside your own lifespan: ``async with router.lifespan(app):``.
        """
        await self.startup()
        try:
            yield
        finally:
            await self.shutdown()

    async def startup(self) -> None:
        """Start the background machinery now (it also starts by itself on the first push)."""
        await self.background.startup()

    async def shutdown(self) -> None:
        """Refuse new deferred work, wait for running jobs, flush the outbox, close the client."""
        self.endpoints.probe.cancel()
        await self.background.shutdown()

    def _set_client(self, client: AsyncIronMQ) -> None:
        # Used by ironpush.testing to record acks; the caller owns (and closes) the client.
        self.background.set_client(client)

    def metrics_collector(self) -> Any:
        """A prometheus-client collector for this router (register it in your registry)."""
        return prometheus_collector(self.counters, self.endpoints.gauges_now)

    # --- ASGI -------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self.handle(route_path(scope), scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan_protocol(receive, send)
        elif kind == "websocket":
            await send({"type": "websocket.close", "code": 1000})

    async def handle(self, path: str, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer the HTTP request ``scope`` for ``path``, relative to the mount point (what
        :class:`~ironpush.receiver.mount.PushMount` calls, having matched the prefix)."""
        route = self._routes.get(path)
        if route is None:
            await self.endpoints(path, scope, receive, send)
        elif scope["method"] == "POST":
            await self.pipeline(route, scope, receive, send)
        else:
            await reply(send, "method_not_allowed", headers=_ALLOW_POST)

    async def _lifespan_protocol(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return
