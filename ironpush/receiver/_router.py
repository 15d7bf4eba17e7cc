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
its background machinery (deferred jobs, ack outbox, lease heartbeat) lazily on the first push,
and logs a warning once saying so. Serve it in :class:`~ironpush.receiver.mount.PushMount`
(which runs it for any app, Django's included), pass ``lifespan=router.lifespan`` to the
parent app, or enter ``router.lifespan(app)`` inside your own lifespan, to also flush an
outbox left by a crash at startup and to drain gracefully at shutdown: new ``Defer`` work is
refused (503), running jobs get ``Shutdown.grace`` seconds, the outbox is flushed, and the
rest is left to IronMQ's redelivery.

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
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, Literal, TypeVar, Unpack, overload

from .._defaults import apply_shortcuts
from .._protocol import PUSH_TYPES
from .._signing import DEFAULT_SECRET_HEADER, DEFAULT_SECRET_PARAM, Keys, push_secrets
from ._answers import reply
from ._asgi import JSON_HEADERS, Receive, Scope, Send, route_path
from ._endpoints import InternalEndpoints
from ._health import RefusalWindow
from ._metrics import Counters, prometheus_collector
from ._outbox import OutboxSettings
from ._outcomes import Handler, Outcome, PushMessage
from ._payloads import decoder_for
from ._pipeline import PushPipeline
from ._routes import (
    ON_INVALID,
    Route,
    RouteOptions,
    Subscription,
    TypedRoute,
    is_async,
    lease_warning,
    route_subscription,
)
from ._runtime import Background, Shared
from ._settings import (
    DEFAULT_ACK_TOKENS,
    DEFAULT_HEALTH,
    DEFAULT_LEASES,
    DEFAULT_LIMITS,
    DEFAULT_OUTBOX,
    DEFAULT_SHUTDOWN,
    AckTokens,
    Health,
    Leases,
    Limits,
    RouterSettings,
    Shortcuts,
    Shutdown,
    resolve_keys,
    resolve_store,
)
from .stores import Store

if TYPE_CHECKING:
    from os import PathLike

    from ..client._async_client import AsyncIronMQ

logger = logging.getLogger("ironpush.receiver")

H = TypeVar("H", bound=Handler)
M = TypeVar("M")
_RESERVED_PREFIX = "/_"
_ALLOW_POST = [*JSON_HEADERS, (b"allow", b"POST")]


class PushRouter:
    """An ASGI app that receives IronMQ pushes and answers them by the receiver contract.

    Options (keyword-only):

    - ``secret_keys``: signing keys, oldest first (default: ``IRONPUSH_SECRET_KEYS`` via
      :mod:`ironpush._config`). Without keys the router refuses to build unless
      ``verify=False`` (local experiments only: a warning is logged).
    - ``client``: an :class:`~ironpush.AsyncIronMQ` for acks and dead-letter posts
      (default: built on first use from configuration, honouring ``IRONMQ_EMULATOR_HOST``).
    - ``store``: a :class:`~ironpush.receiver.stores.Store` (default: the one
      ``IRONPUSH_STORE`` names, else a :class:`~ironpush.receiver.stores.MemoryStore`), or a
      path or URL to open one (a path is an SQLite file); ``dedupe=False`` turns deduplication
      off (the store keeps the outbox).
    - ``dead_letter_queue``: where ``Drop`` posts the message; ``secret_header`` /
      ``secret_param``: where the push secret travels.
    - The tuning, in groups whose reprs show their defaults: ``leases=``
      :class:`~ironpush.Leases` (claims, external work, dedupe memory), ``limits=``
      :class:`~ironpush.Limits` (body size, deferred jobs, unsent acks), ``shutdown=``
      :class:`~ironpush.Shutdown`, ``health=`` :class:`~ironpush.Health`, ``ack_tokens=``
      :class:`~ironpush.AckTokens`, ``outbox=`` :class:`~ironpush.OutboxSettings`.
    - Shortcuts for the most tuned fields (:class:`~ironpush.receiver._settings.Shortcuts`):
      ``claim_lease``, ``max_deferred``, ``max_unsent_acks``, ``body_limit``,
      ``shutdown_grace`` set that one field of their group.
    - ``tracing``: with ``ironpush[otel]`` and an OpenTelemetry SDK configured, each push is a
      ``process <queue>`` span continuing the producer's trace, with spans for its deferred
      job, its ack and the store calls (README "Observability"); ``tracing=False`` turns
      them off.
    - ``metrics``: latency histograms (push, handler, job, ack, outbox wait, store
      operations) on ``/_metrics`` and, with ``ironpush[otel]`` and an SDK, through the
      OpenTelemetry metrics API (README "Observability"); ``metrics=False`` turns them off
      (the counters stay).

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
        dead_letter_queue: str | None = None,
        secret_header: str = DEFAULT_SECRET_HEADER,
        secret_param: str = DEFAULT_SECRET_PARAM,
        leases: Leases = DEFAULT_LEASES,
        limits: Limits = DEFAULT_LIMITS,
        shutdown: Shutdown = DEFAULT_SHUTDOWN,
        health: Health = DEFAULT_HEALTH,
        ack_tokens: AckTokens = DEFAULT_ACK_TOKENS,
        outbox: OutboxSettings = DEFAULT_OUTBOX,
        tracing: bool = True,
        metrics: bool = True,
        **shortcuts: Unpack[Shortcuts],
    ) -> None:
        given = RouterSettings(
            keys=resolve_keys(secret_keys, verify=verify),
            verify=verify,
            dead_letter_queue=dead_letter_queue,
            secret_header=secret_header,
            secret_param=secret_param,
            leases=leases,
            limits=limits,
            shutdown=shutdown,
            health=health,
            ack_tokens=ack_tokens,
            outbox=outbox,
            tracing=tracing,
            metrics=metrics,
        )
        self.settings = apply_shortcuts(given, shortcuts, Shortcuts, owner="PushRouter")
        self.store: Store = resolve_store(store, dedupe=dedupe)
        self.counters = Counters(timings=self.settings.metrics)
        self._routes: dict[str, Route] = {}
        self.background = Background(
            store=self.store, counters=self.counters, settings=self.settings, client=client
        )
        shared = Shared(self.settings, self.store, self.counters, self.background, RefusalWindow())
        self.pipeline = PushPipeline(shared)
        self.endpoints = InternalEndpoints(shared, routes=self._routes)
        self.counters.attach(routes=self._routes, gauges=self.endpoints.gauges_now)

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
        """Seconds a claim outlives its owner (``Leases.claim``; see :func:`lease_warning`)."""
        return self.settings.leases.claim

    # --- declaring routes -----------------------------------------------------------------

    @overload
    def route(
        self,
        path: str,
        *,
        queue: str,
        subscriber: str,
        model: None = None,
        **options: Unpack[RouteOptions],
    ) -> Callable[[H], H]: ...

    @overload
    def route(
        self,
        path: str,
        *,
        queue: str,
        subscriber: str,
        model: type[M],
        **options: Unpack[RouteOptions],
    ) -> TypedRoute[M]: ...

    def route(
        self,
        path: str,
        *,
        queue: str,
        subscriber: str,
        model: Any = None,
        **options: Unpack[RouteOptions],
    ) -> Any:
        """Declare the handler for pushes of ``queue`` to ``subscriber`` at ``path``.

        The decorator form of :meth:`add_route` (same options)::

            @router.route("/orders", queue="orders", subscriber="billing", json=True)
            async def billing(msg: PushMessage) -> None: ...

            @router.route("/refunds", queue="refunds", subscriber="billing", model=Refund)
            async def refund(msg: PushMessage[Refund]) -> None:
                await pay_back(msg.payload.order_id)
        """

        def decorate(handler: Handler) -> Handler:
            self.add_route(
                path, handler, queue=queue, subscriber=subscriber, model=model, **options
            )
            return handler

        return decorate

    def add_route(
        self,
        path: str,
        handler: Callable[[PushMessage[M]], Outcome | Awaitable[Outcome]],
        *,
        queue: str,
        subscriber: str,
        model: type[M] | None = None,
        **options: Unpack[RouteOptions],
    ) -> Route:
        """Declare ``handler`` for pushes of ``queue`` to ``subscriber`` at ``path``.

        ``json=True`` parses the body first (an undecodable body gets 400). ``model=`` (a
        pydantic v2 model, a msgspec Struct or a dataclass) decodes it into ``msg.payload``
        before the handler runs; a body that does not fit is answered by ``on_invalid``:
        ``"drop"`` (the default: 200, recorded as dropped, posted to the dead-letter queue
        with the error), ``"reject"`` (400 with the error) or ``"retry"`` (503).
        ``push_type``, ``retries``, ``retries_delay`` and ``error_queue`` are registered on
        the queue by ``ironpush subscribe``; ``dead_letter_queue`` overrides the router's for
        ``Drop``. Logs a warning when the retry budget is tight for ``claim_lease``::

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
        if options.get("push_type") not in (None, *PUSH_TYPES):
            raise ValueError(f"push_type must be one of {PUSH_TYPES}")
        if options.get("on_invalid", "drop") not in ON_INVALID:
            raise ValueError(f"on_invalid must be one of {ON_INVALID}")
        decode = decoder_for(model) if model is not None else None  # TypeError: not a model
        keys = self.settings.keys
        secrets = push_secrets(queue, subscriber, keys) if keys else ()
        route = Route(
            path,
            queue,
            subscriber,
            handler,
            **options,
            model=model,
            is_async=is_async(handler),
            secrets=secrets,
            decode=decode,
        )
        warning = lease_warning(route, self.claim_lease)
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
        """The subscriber definitions to register, for the router mounted at ``base_url``
        (one :func:`~ironpush.receiver._routes.route_subscription` per route).

        ``base_url`` is the public URL of the mount point (``https://api.example.com/ironmq``).
        The push secret goes in the ``X-Ironpush-Secret`` header, or with
        ``secret_in="query"`` in the URL (for setups that cannot set subscriber headers).
        Secrets are masked in the reprs, but the values are real: do not print them.
        """
        if secret_in not in ("header", "query"):
            raise ValueError("secret_in must be 'header' or 'query'")
        return [
            route_subscription(
                route,
                base_url,
                keys=self.settings.keys,
                secret_header=self.secret_header,
                secret_param=self.secret_param,
                secret_in=secret_in,
            )
            for route in self._routes.values()
        ]

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
        """Start the background machinery now (it also starts by itself on the first push).

        Idempotent: a router whose lifespan runs twice (``PushMount`` around an app built with
        ``lifespan=router.lifespan``) starts once; :meth:`shutdown` likewise drains once."""
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
            # The usual push (no root path, the route's path as declared) is found without
            # route_path's rules, which would give the same path; anything else goes by them.
            route = None if scope.get("root_path") else self._routes.get(scope["path"])
            if route is not None and scope["method"] == "POST":  # a push: one await fewer
                await self.pipeline(route, scope, receive, send)
            else:
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
