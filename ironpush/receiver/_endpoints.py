"""The router's own endpoints under its mount: ``/_health``, ``/_metrics``, ``/_ack``,
``/_release`` (user route paths may not start with ``/_``, so these never collide).

- ``GET /_health/live``: 200 while the process serves (no store call: a slow or stopped
  store never fails it);
- ``GET /_health/ready`` (and ``GET /_health``, its old name): can it take pushes now? 200
  ``"ok"``, 200 ``"degraded"`` (slow but working) or **503 ``"failing"``** with the reasons,
  per check, with the counters and gauges (see :mod:`._health`);
- ``GET /_metrics``: Prometheus text (501 with a pip hint without ``prometheus-client``);
- ``POST /_ack`` / ``POST /_release`` with an ack token: acknowledge with the newest
  reservation, or let the next push run the handler again, through the one ack-token path
  (:mod:`._acks`, whose answer is the body's ``status``); only for a ``(queue, subscriber)``
  the router declares (404 otherwise, nothing sent to IronMQ)::

      curl -X POST --data "$TOKEN" https://svc.example.com/ironmq/_ack
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping

from .._errors import ConfigError, SignatureError, StoreUnavailable
from .._protocol import Delivery
from ._acks import AckResult, TokenAcks, outbox_sender
from ._answers import Situation, json_body, reply
from ._asgi import JSON_HEADERS, Disconnected, Receive, Scope, Send, TooLarge, read_body
from ._health import StoreProbe, check_of, readiness_json
from ._metrics import PIP_HINT, prometheus_text
from ._routes import Route
from ._runtime import Shared

logger = logging.getLogger("ironpush.receiver")

Endpoint = Callable[[Receive, Send], Awaitable[None]]
_TOKEN_LIMIT = 16 * 1024

#: The answer row of each result of the ack-token path (the body says which result).
_SITUATIONS: Mapping[AckResult, Situation] = {
    AckResult.DONE: "ack_done",
    AckResult.ACKED: "ack_done",
    AckResult.LATE: "ack_done",
    AckResult.QUEUED: "ack_queued",
    AckResult.FAILED: "ack_failed",
    AckResult.RELEASED: "released",
    AckResult.NOT_HELD: "released",
}


class InternalEndpoints:
    """Health, metrics and the external-worker ack endpoints of one router."""

    def __init__(self, shared: Shared, *, routes: Mapping[str, Route]) -> None:
        self.shared = shared
        self.routes = routes  # the router's own mapping: routes declared later count too
        health = shared.settings.health
        self.probe = StoreProbe(shared.store, timeout=health.timeout, slow=health.slow)
        settings = shared.settings
        self.acks = TokenAcks(
            keys=settings.keys,
            store=shared.store,
            ttl=settings.leases.dedupe_ttl,
            max_age=settings.ack_tokens.max_age,
            # A completion the store did not record waits in the runtime, retried until it is.
            completions=lambda: shared.background.current().completions,
            wait=settings.ack_tokens.wait,
        )
        self._endpoints: Mapping[str, tuple[str, Endpoint]] = {
            "/_health": ("GET", self._ready),
            "/_health/ready": ("GET", self._ready),
            "/_health/live": ("GET", self._live),
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
            "pending_completions": float(runtime.completions.count if runtime else 0),
        }

    async def _gauges(self) -> dict[str, float]:
        gauges = self.gauges_now()
        depth = (await self.probe.run()).depth
        if depth is not None:
            gauges["outbox_depth"] = float(depth)
        return gauges

    async def readiness(self) -> dict[str, object]:
        """The JSON of ``/_health/ready``: status, reasons, checks, counters and gauges."""
        probe = await self.probe.run()
        runtime = self.shared.background.running  # its problems(): its parts' reasons
        threshold = self.shared.settings.health.unhealthy_refusals
        checks = {
            "store": probe.check,
            "pushes": self.shared.refusals.check(threshold=threshold),
            "runtime": await check_of(runtime),
        }
        gauges = self.gauges_now()
        if probe.depth is not None:
            gauges["outbox_depth"] = float(probe.depth)
        return {
            **readiness_json(checks, draining=self.shared.background.draining),
            "routes": len(self.routes),
            "counters": self.shared.counters.snapshot(),
            **{name: int(value) for name, value in gauges.items()},  # outbox_depth, ...
        }

    async def _ready(self, receive: Receive, send: Send) -> None:
        payload = await self.readiness()
        failing = payload["status"] == "failing"
        if failing:
            logger.warning("health: failing: %s", payload["reason"])
        await reply(send, "unhealthy" if failing else "healthy", json.dumps(payload).encode())

    async def _live(self, receive: Receive, send: Send) -> None:
        # Nothing but this answer: a process that can send it serves.
        status = "draining" if self.shared.background.draining else "ok"
        await reply(send, "healthy", json_body(status=status))

    async def _metrics(self, receive: Receive, send: Send) -> None:
        gauges = await self._gauges()
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
            queue, delivery = self.acks.verify(raw)
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
        outbox = self.shared.background.current().outbox
        sender = outbox_sender(outbox, wait=self.shared.settings.ack_tokens.wait)
        try:
            result = await self.acks.ack_push(queue, delivery, sender)
        except Exception as exc:
            return await self._store_failed(send, exc)
        return await reply(send, _SITUATIONS[result], json_body(status=result.value))

    async def _release(self, receive: Receive, send: Send) -> None:
        loaded = await self._token_from(receive, send)
        if loaded is None:
            return None
        _, delivery = loaded
        try:
            result = await self.acks.release_push(delivery)
        except Exception as exc:
            return await self._store_failed(send, exc)
        return await reply(send, _SITUATIONS[result], json_body(status=result.value))

    async def _store_failed(self, send: Send, exc: Exception) -> None:
        if isinstance(exc, StoreUnavailable):
            logger.warning("ack endpoint: store unavailable: %s", exc)
        else:
            logger.exception("ack endpoint: store failed")
        await reply(send, "store_unavailable")
