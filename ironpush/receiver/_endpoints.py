"""The router's own endpoints under its mount: ``/_health``, ``/_metrics``, ``/_ack``,
``/_release`` (user route paths may not start with ``/_``, so these never collide).

- ``GET /_health``: 200 with the counters and gauges, or **503 with a ``reason``** when the
  store's probe fails or times out, or when most recent pushes were refused with 503;
- ``GET /_metrics``: Prometheus text (501 with a pip hint without ``prometheus-client``);
- ``POST /_ack`` / ``POST /_release`` with an ack token: acknowledge with the newest
  reservation, or let the next push run the handler again; only for a ``(queue, subscriber)``
  the router declares (404 otherwise, nothing sent to IronMQ)::

      curl -X POST --data "$TOKEN" https://svc.example.com/ironmq/_ack
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping

import anyio

from .._errors import ConfigError, SignatureError, StoreUnavailable
from .._protocol import Delivery
from .._signing import load_ack_token
from ._answers import Situation, json_body, reply
from ._asgi import JSON_HEADERS, Disconnected, Receive, Scope, Send, TooLarge, read_body
from ._health import StoreProbe
from ._metrics import PIP_HINT, prometheus_text
from ._routes import Route
from ._runtime import Shared

__all__ = ["InternalEndpoints"]

logger = logging.getLogger("ironpush.receiver")

Endpoint = Callable[[Receive, Send], Awaitable[None]]
_TOKEN_LIMIT = 16 * 1024


class InternalEndpoints:
    """Health, metrics and the external-worker ack endpoints of one router."""

    def __init__(self, shared: Shared, *, routes: Mapping[str, Route]) -> None:
        self.shared = shared
        self.routes = routes  # the router's own mapping: routes declared later count too
        self.probe = StoreProbe(shared.store, timeout=shared.settings.health_timeout)
        self._endpoints: Mapping[str, tuple[str, Endpoint]] = {
            "/_health": ("GET", self._health),
            "/_metrics": ("GET", self._metrics),
            "/_ack": ("POST", self._ack),
            "/_release": ("POST", self._release),
        }

    async def __call__(self, path: str, scope: Scope, receive: Receive, send: Send) -> None:
        entry = self._endpoints.get(path)
        if entry is None:
            return await reply(send, "not_found")
        allowed, endpoint = entry
        method = scope["method"]
        if method != allowed and not (allowed == "GET" and method == "HEAD"):
            headers = [*JSON_HEADERS, (b"allow", allowed.encode())]
            return await reply(send, "method_not_allowed", headers=headers)
        return await endpoint(receive, send)

    # --- health and metrics ---------------------------------------------------------------

    def gauges_now(self) -> dict[str, float]:
        """The gauges from this process's own state (no store call): for scrapes."""
        runtime = self.shared.background.running
        return {
            "outbox_depth": float(runtime.outbox.backlog if runtime else 0),
            "inflight_jobs": float(runtime.runner.in_flight if runtime else 0),
        }

    async def _gauges(self) -> tuple[dict[str, float], str | None]:
        gauges = self.gauges_now()
        depth, failure = await self.probe.run()
        if depth is not None:
            gauges["outbox_depth"] = float(depth)
        return gauges, failure

    async def _health(self, receive: Receive, send: Send) -> None:
        gauges, failure = await self._gauges()
        if failure is None:
            threshold = self.shared.settings.unhealthy_refusals
            failure = self.shared.refusals.verdict(time.perf_counter(), threshold=threshold)
        status = "failing" if failure else "draining" if self.shared.background.draining else "ok"
        payload: dict[str, object] = {
            "status": status,
            "routes": len(self.routes),
            "counters": self.shared.counters.snapshot(),
            "outbox_depth": int(gauges["outbox_depth"]),
            "inflight_jobs": int(gauges["inflight_jobs"]),
        }
        if failure:
            payload["reason"] = failure
            logger.warning("health: failing: %s", failure)
        await reply(send, "unhealthy" if failure else "healthy", json.dumps(payload).encode())

    async def _metrics(self, receive: Receive, send: Send) -> None:
        gauges, _ = await self._gauges()
        try:
            text = prometheus_text(self.shared.counters, lambda: gauges)
        except ConfigError:
            hint = (PIP_HINT + "\n").encode()
            return await reply(send, "metrics_missing", hint, [(b"content-type", b"text/plain")])
        content_type = b"text/plain; version=0.0.4; charset=utf-8"
        return await reply(send, "metrics", text, [(b"content-type", content_type)])

    # --- ack tokens -------------------------------------------------------------------------

    async def _token_from(self, receive: Receive, send: Send) -> tuple[str, Delivery] | None:
        """The (queue, delivery) of a valid token for a declared route; else answer, None."""
        try:
            raw = (await read_body(receive, _TOKEN_LIMIT)).strip()
        except (TooLarge, Disconnected):
            await reply(send, "token_too_large")
            return None
        if raw.startswith(b"{"):
            with contextlib.suppress(ValueError, AttributeError, RecursionError):
                raw = str(json.loads(raw).get("token", "")).encode()
        try:
            if not self.shared.settings.keys:
                raise SignatureError("no secret keys configured")
            queue, delivery = load_ack_token(
                raw, self.shared.settings.keys, max_age=self.shared.settings.ack_token_max_age
            )
        except SignatureError as exc:
            logger.warning("ack token refused: %s", exc)
            await reply(send, "token_refused", json_body(error=str(exc)))
            return None
        subscriber = delivery.subscriber_name
        if not any(r.queue == queue and r.subscriber == subscriber for r in self.routes.values()):
            # A valid token of the same keys, for another router's queue: not ours to act on.
            logger.warning(
                "ack token refused: no route for queue %r subscriber %r", queue, subscriber
            )
            await reply(send, "undeclared")
            return None
        return queue, delivery

    async def _ack(self, receive: Receive, send: Send) -> None:
        loaded = await self._token_from(receive, send)
        if loaded is None:
            return None
        queue, delivery = loaded
        runtime = self.shared.background.current()
        key = (delivery.message_id, delivery.subscriber_name or "")
        try:  # mark handled and pick up the newest reservation seen for the message
            newest = await self.shared.store.complete(
                key, outcome="acked", ttl=self.shared.settings.dedupe_ttl, delivery=delivery
            )
            future = await runtime.outbox.put_ack(queue, newest)
        except Exception as exc:
            return await self._store_failed(send, exc)
        try:
            with anyio.fail_after(self.shared.settings.ack_wait):
                result = await asyncio.shield(future)
        except TimeoutError:
            return await reply(send, "ack_queued")
        situation: Situation = "ack_failed" if result == "failed" else "ack_done"
        return await reply(send, situation, json_body(status=result))

    async def _release(self, receive: Receive, send: Send) -> None:
        loaded = await self._token_from(receive, send)
        if loaded is None:
            return None
        _, delivery = loaded
        key = (delivery.message_id, delivery.subscriber_name or "")
        try:
            released = await self.shared.store.release(key, None)
        except Exception as exc:
            return await self._store_failed(send, exc)
        body = json_body(status="released" if released else "not_held")
        return await reply(send, "released", body)

    async def _store_failed(self, send: Send, exc: Exception) -> None:
        if isinstance(exc, StoreUnavailable):
            logger.warning("ack endpoint: store unavailable: %s", exc)
        else:
            logger.exception("ack endpoint: store failed")
        await reply(send, "store_unavailable")
