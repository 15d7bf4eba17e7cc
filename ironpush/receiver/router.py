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

**Endpoints** under the mount (user route paths may not start with ``/_``):

- ``POST {path}`` for each route: the pushes (any other method: 405; unknown path: 404);
- ``GET /_health``: JSON status and counters (for a Docker ``HEALTHCHECK``);
- ``GET /_metrics``: Prometheus text (needs ``pip install 'ironpush[metrics]'``);
- ``POST /_ack`` with an ack token as the body: acknowledge an externally processed push with
  the **newest** reservation id the router has seen (answers ``{"status": "acked"}``, or
  ``"late"`` when IronMQ had already given the message to a redelivery);
- ``POST /_release`` with an ack token: the external work failed, let the next push run the
  handler again.

**Verification.** Each route's subscriber is registered with a push secret bound to its
``(queue, subscriber)`` (see :mod:`ironpush.signing`), sent by IronMQ in the ``X-Ironpush-Secret``
header (or the ``ironpush_secret`` query parameter). A push without it gets **401**, one with a
wrong secret **403**; both before the body is read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeVar
from urllib.parse import urlencode

from ..client.models import Subscriber
from ..protocol import PUSH_TYPES
from ..signing import (
    DEFAULT_SECRET_HEADER,
    DEFAULT_SECRET_PARAM,
    Keys,
    normalize_keys,
    push_secret,
    push_secrets,
)
from .asgi import JSON_HEADERS, Receive, Scope, Send, json_body, respond, route_path
from .deferred import OutboxSettings, Runtime, call_store
from .endpoints import InternalEndpoints
from .metrics import Counters, prometheus_collector
from .outcomes import Ack, Defer, Drop, Handler, Outcome, PushMessage, Retry
from .pipeline import PushPipeline, is_async
from .stores import MemoryStore, SQLiteStore
from .stores.legacy import Store

if TYPE_CHECKING:
    from os import PathLike

    from ..client.sync_client import AsyncIronMQ

__all__ = [
    "DEFAULT_BODY_LIMIT",
    "Ack",
    "Defer",
    "Drop",
    "Outcome",
    "PushMessage",
    "PushRouter",
    "Retry",
    "Route",
    "Subscription",
]

logger = logging.getLogger("ironpush.receiver")

DEFAULT_BODY_LIMIT = 256 * 1024
H = TypeVar("H", bound=Handler)
_RESERVED_PREFIX = "/_"


@dataclass(frozen=True, slots=True)
class Route:
    """One declared route: a path, the queue and subscriber it serves, and its handler."""

    path: str
    queue: str
    subscriber: str
    handler: Handler
    json: bool = False
    push_type: str | None = None
    retries: int | None = None
    retries_delay: float | None = None
    error_queue: str | None = None
    dead_letter_queue: str | None = None
    is_async: bool = field(default=False, repr=False)
    secrets: tuple[bytes, ...] = field(default=(), repr=False)


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


class PushRouter(PushPipeline, InternalEndpoints):
    """An ASGI app that receives IronMQ pushes and answers them by the receiver contract.

    Options (keyword-only):

    - ``secret_keys``: signing keys, oldest first (default: ``IRONPUSH_SECRET_KEYS`` via
      :mod:`ironpush.config`). Without keys the router refuses to build unless
      ``verify=False`` (local experiments only: a warning is logged).
    - ``client``: an :class:`~ironpush.AsyncIronMQ` for acks and dead-letter posts
      (default: built on first use from configuration, honouring ``IRONMQ_EMULATOR_HOST``).
    - ``store``: a :class:`~ironpush.receiver.stores.MemoryStore` (default), a
      :class:`~ironpush.receiver.stores.SQLiteStore`, or a path (an SQLite file); ``dedupe=False``
      turns deduplication off.
    - ``body_limit`` (bytes, default 256 KB; larger pushes get 413), ``max_deferred``
      (concurrent deferred jobs, default 32; beyond it — or with that many acks not yet
      confirmed by IronMQ — new deferred work gets 503), ``dead_letter_queue`` (where
      ``Drop`` posts the message), ``secret_header`` / ``secret_param`` (where the push secret
      travels).
    - Timing: ``claim_lease`` (s, 30: a crashed process's claims expire after this),
      ``external_lease`` (s, 900: how long ``Defer()`` work by an external worker blocks
      re-running the handler), ``dedupe_ttl`` (s, 1 day: how long handled messages are
      remembered), ``shutdown_grace`` (s, 10), ``flush_timeout`` (s, 5), ``ack_wait`` (s, 5:
      how long ``POST /_ack`` waits for IronMQ), ``ack_token_max_age`` (s, 1 day).
    - ``outbox``: :class:`OutboxSettings` (senders, backoff, give-up age).

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
        body_limit: int = DEFAULT_BODY_LIMIT,
        max_deferred: int = 32,
        dead_letter_queue: str | None = None,
        secret_header: str = DEFAULT_SECRET_HEADER,
        secret_param: str = DEFAULT_SECRET_PARAM,
        claim_lease: float = 30.0,
        external_lease: float = 900.0,
        dedupe_ttl: float = 86_400.0,
        shutdown_grace: float = 10.0,
        flush_timeout: float = 5.0,
        ack_wait: float = 5.0,
        ack_token_max_age: float | None = None,
        outbox: OutboxSettings | None = None,
    ) -> None:
        self.keys = self._resolve_keys(secret_keys, verify)
        self.verify = verify
        self.store: Store
        if store is None:
            self.store = MemoryStore()
        elif isinstance(store, str | os.PathLike):
            self.store = SQLiteStore(store)
        else:
            self.store = store
        self.dedupe = dedupe
        if body_limit < 1 or max_deferred < 1 or claim_lease <= 0:
            raise ValueError("body_limit, max_deferred and claim_lease must be positive")
        self.body_limit = body_limit
        self.max_deferred = max_deferred
        self.dead_letter_queue = dead_letter_queue
        self.secret_header = secret_header
        self.secret_param = secret_param
        self.claim_lease = claim_lease
        self.external_lease = external_lease
        self.dedupe_ttl = dedupe_ttl
        self.shutdown_grace = shutdown_grace
        self.flush_timeout = flush_timeout
        self.ack_wait = ack_wait
        self.ack_token_max_age = ack_token_max_age
        self.outbox_settings = outbox or OutboxSettings()
        self.counters = Counters()
        self._routes: dict[str, Route] = {}
        self._header_b = secret_header.lower().encode("latin-1")
        self._client = client
        self._owns_client = client is None
        self._runtime: Runtime | None = None
        self._closed = False

    @staticmethod
    def _resolve_keys(secret_keys: Keys | None, verify: bool) -> tuple[str | bytes, ...]:
        if secret_keys is None:
            from ..config import load_settings  # reads iron.json/env: only when keys are not given

            secret_keys = load_settings(require_credentials=False).secret_keys or None
        if secret_keys is None and not verify:
            logger.warning(
                "PushRouter(verify=False): pushes are NOT verified; anyone who can reach this "
                "URL can post messages. Use this for local experiments only."
            )
            return ()
        return normalize_keys(secret_keys)

    def __repr__(self) -> str:
        return f"PushRouter(routes={list(self._routes)!r}, store={self.store!r})"

    # --- declaring routes -----------------------------------------------------------------

    def route(
        self,
        path: str,
        *,
        queue: str,
        subscriber: str,
        json: bool = False,
        push_type: Literal["multicast", "unicast"] | None = None,
        retries: int | None = None,
        retries_delay: float | None = None,
        error_queue: str | None = None,
        dead_letter_queue: str | None = None,
    ) -> Callable[[H], H]:
        """Declare the handler for pushes of ``queue`` to ``subscriber`` at ``path``.

        ``json=True`` parses the body first (an undecodable body gets 400). ``push_type``,
        ``retries``, ``retries_delay`` and ``error_queue`` are registered on the queue by
        ``ironpush subscribe``; ``dead_letter_queue`` overrides the router's for ``Drop``::

            @router.route("/orders", queue="orders", subscriber="billing", json=True)
            async def billing(msg: PushMessage) -> None: ...
        """

        def decorate(handler: H) -> H:
            self.add_route(
                path,
                handler,
                queue=queue,
                subscriber=subscriber,
                json=json,
                push_type=push_type,
                retries=retries,
                retries_delay=retries_delay,
                error_queue=error_queue,
                dead_letter_queue=dead_letter_queue,
            )
            return handler

        return decorate

    def add_route(
        self, path: str, handler: Handler, *, queue: str, subscriber: str, **options: Any
    ) -> Route:
        """The non-decorator form of :meth:`route` (same options); returns the :class:`Route`."""
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
        secrets = push_secrets(queue, subscriber, self.keys) if self.keys else ()
        route = Route(
            path,
            queue,
            subscriber,
            handler,
            is_async=is_async(handler),
            secrets=secrets,
            **options,
        )
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
        base = base_url.rstrip("/")
        out: list[Subscription] = []
        for route in self._routes.values():
            url, headers = base + route.path, {}
            if self.keys:
                secret = push_secret(route.queue, route.subscriber, self.keys)
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
        self._closed = False
        self._runtime_now()

    async def shutdown(self) -> None:
        """Refuse new deferred work, wait for running jobs, flush the outbox, close the client."""
        self._closed = True
        runtime, self._runtime = self._runtime, None
        if runtime is not None:
            await runtime.close(grace=self.shutdown_grace, flush_timeout=self.flush_timeout)
        if self._owns_client and self._client is not None:
            await self._client.aclose()
            self._client = None

    def _runtime_now(self) -> Runtime:
        runtime = self._runtime
        loop = asyncio.get_running_loop()
        if runtime is not None and runtime.loop is loop:
            return runtime
        # First use, or a new event loop (tests): tasks of an old loop died with it.
        if self._owns_client:
            self._client = None
        runtime = Runtime(
            store=self.store,
            outbox_store=self.store,
            counters=self.counters,
            get_client=self._get_client,
            capacity=self.max_deferred,
            lease=self.claim_lease,
            outbox_settings=self.outbox_settings,
        )
        runtime.start()
        runtime.runner.accepting = not self._closed
        self._runtime = runtime
        return runtime

    async def _get_client(self) -> AsyncIronMQ:
        if self._client is None:
            from urllib.request import getproxies

            from ..client.sync_client import AsyncIronMQ

            # The lean backend costs a fraction of httpx's CPU per ack (benchmarks/README.md);
            # it does not speak to proxies, so a configured proxy keeps httpx.
            backend: Literal["httpx", "lean"] = "httpx" if getproxies() else "lean"
            self._client = AsyncIronMQ(backend=backend)
            self._owns_client = True
        return self._client

    def _set_client(self, client: AsyncIronMQ) -> None:
        # Used by ironpush.testing to record acks; the caller owns (and closes) the client.
        self._client = client
        self._owns_client = False

    async def _store(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await call_store(self.store.blocking, fn, *args, **kwargs)

    def metrics_collector(self) -> Any:
        """A prometheus-client collector for this router (register it in your registry)."""
        return prometheus_collector(self.counters, self._gauges_sync)

    def _gauges_sync(self) -> dict[str, float]:
        runtime = self._runtime
        return {
            "outbox_depth": float(self.store.depth()),
            "inflight_jobs": float(runtime.runner.in_flight if runtime else 0),
        }

    # --- ASGI -------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            path = route_path(scope)
            route = self._routes.get(path)
            if route is not None:
                if scope["method"] == "POST":
                    await self._push(route, scope, receive, send)
                else:
                    await respond(
                        send,
                        405,
                        json_body(error="method not allowed"),
                        [*JSON_HEADERS, (b"allow", b"POST")],
                    )
                return
            await self._internal(path, scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan_protocol(receive, send)
        elif kind == "websocket":
            await send({"type": "websocket.close", "code": 1000})

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
