"""The router's own endpoints under its mount: ``/_health``, ``/_metrics``, ``/_ack``,
``/_release`` (user route paths may not start with ``/_``, so these never collide).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

import anyio

from ..errors import ConfigError, SignatureError
from ..protocol import Delivery
from ..signing import load_ack_token
from .asgi import (
    JSON_HEADERS,
    STATUS,
    Disconnected,
    Receive,
    Scope,
    Send,
    TooLarge,
    json_body,
    read_body,
    respond,
)
from .deferred import Runtime, delivery_json
from .metrics import PIP_HINT, Counters, prometheus_text
from .stores.legacy import Store

__all__ = ["InternalEndpoints"]

logger = logging.getLogger("ironpush.receiver")


class InternalEndpoints:
    """Health, metrics and the external-worker ack endpoints (a mixin of PushRouter)."""

    keys: tuple[str | bytes, ...]
    store: Store
    dedupe: bool
    dedupe_ttl: float
    ack_wait: float
    ack_token_max_age: float | None
    counters: Counters
    _closed: bool
    _runtime: Runtime | None
    _routes: Mapping[str, Any]

    def _runtime_now(self) -> Runtime:
        raise NotImplementedError

    async def _store(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    async def _internal(self, path: str, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["method"]
        endpoints: Mapping[str, tuple[str, Callable[..., Any]]] = {
            "/_health": ("GET", self._health),
            "/_metrics": ("GET", self._metrics),
            "/_ack": ("POST", self._ack),
            "/_release": ("POST", self._release),
        }
        entry = endpoints.get(path)
        if entry is None:
            await respond(send, 404, json_body(error="not found"))
            return
        allowed, endpoint = entry
        if method != allowed and not (allowed == "GET" and method == "HEAD"):
            await respond(
                send,
                405,
                json_body(error="method not allowed"),
                [*JSON_HEADERS, (b"allow", allowed.encode())],
            )
            return
        await endpoint(receive, send)

    async def _gauges(self) -> dict[str, float]:
        runtime = self._runtime
        depth = await self._store(self.store.depth)
        return {
            "outbox_depth": float(depth),
            "inflight_jobs": float(runtime.runner.in_flight if runtime else 0),
        }

    async def _health(self, receive: Receive, send: Send) -> None:
        gauges = await self._gauges()
        draining = self._closed or (
            self._runtime is not None and not self._runtime.runner.accepting
        )
        payload = {
            "status": "draining" if draining else "ok",
            "routes": len(self._routes),
            "counters": self.counters.snapshot(),
            "outbox_depth": int(gauges["outbox_depth"]),
            "inflight_jobs": int(gauges["inflight_jobs"]),
        }
        await respond(send, 200, json.dumps(payload).encode())

    async def _metrics(self, receive: Receive, send: Send) -> None:
        gauges = await self._gauges()
        try:
            text = prometheus_text(self.counters, lambda: gauges)
        except ConfigError:
            await respond(send, 501, (PIP_HINT + "\n").encode(), [(b"content-type", b"text/plain")])
            return
        await respond(
            send, 200, text, [(b"content-type", b"text/plain; version=0.0.4; charset=utf-8")]
        )

    async def _token_from(self, receive: Receive, send: Send) -> tuple[str, Delivery] | None:
        try:
            raw = (await read_body(receive, 16 * 1024)).strip()
        except (TooLarge, Disconnected):
            await respond(send, 413, json_body(error="body too large"))
            return None
        if raw.startswith(b"{"):
            with contextlib.suppress(ValueError, AttributeError, RecursionError):
                raw = str(json.loads(raw).get("token", "")).encode()
        try:
            if not self.keys:
                raise SignatureError("no secret keys configured")
            return load_ack_token(raw, self.keys, max_age=self.ack_token_max_age)
        except SignatureError as exc:
            logger.warning("ack token refused: %s", exc)
            await respond(send, 403, json_body(error=str(exc)))
            return None

    async def _ack(self, receive: Receive, send: Send) -> None:
        loaded = await self._token_from(receive, send)
        if loaded is None:
            return
        queue, delivery = loaded
        runtime = self._runtime_now()
        text = delivery_json(delivery)
        if self.dedupe:  # mark handled and pick up the newest reservation seen for the message
            key = (delivery.message_id, delivery.subscriber_name or "")
            text = await self._store(
                self.store.complete, key, outcome="acked", ttl=self.dedupe_ttl, delivery=text
            )
        future = await runtime.outbox.put_ack(queue, text)
        try:
            with anyio.fail_after(self.ack_wait):
                result = await asyncio.shield(future)
        except TimeoutError:
            await respond(send, 202, STATUS["queued"])
            return
        await respond(send, 502 if result == "failed" else 200, json_body(status=result))

    async def _release(self, receive: Receive, send: Send) -> None:
        loaded = await self._token_from(receive, send)
        if loaded is None:
            return
        _, delivery = loaded
        released = False
        if self.dedupe:
            key = (delivery.message_id, delivery.subscriber_name or "")
            released = await self._store(self.store.release, key, None)
        await respond(send, 200, json_body(status="released" if released else "not_held"))
