"""How a relayed push is told: the local service's answer, the line per push, and the
error-queue report of a message that failed for good (IronMQ's v3 shape, protocol §3.6).

The report names the listener's own subscriber and the local URL, so that it is never taken
for a failure of a production subscriber (``ironpush replay`` of it finds no such subscriber
once the listener is gone)::

    {"source_msg_id": "<relayed id>", "body": "...", "headers": {...},
     "subscribers": [{"name": "listen-laptop-1a2b3c4d", "url": "http://127.0.0.1:8000/...",
                      "code": 500, "msg": "boom"}], "relay_queue": "orders--listen-..."}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .._protocol import PUSH_CONTENT_TYPE, PUSHER_USER_AGENT
from .._redact import redact_url
from ..client._models import Message
from ._events import ms
from ._plan import Relay


@dataclass(frozen=True, slots=True)
class Answer:
    """The local service's answer to one push: ``status`` (None: no answer), ``error`` (why it
    failed: the start of the answer, or the connection error) and the ``latency`` in seconds."""

    status: int | None
    error: str | None
    latency: float

    def text(self) -> str:
        if self.status is None:
            return f"no answer ({self.error})"
        if self.error and self.error != f"HTTP {self.status}":
            return f"{self.status} ({self.error[:60]})"
        return str(self.status)


def push_text(
    relay: Relay, message_id: str, attempt: int, total: int, answer: Answer, result: str
) -> str:
    """``push orders 6295… → billing try 1/4: 503 (busy) in 2.1 ms → retrying in 60s``."""
    then = {
        "deleted": "deleted",
        "acked by the service": "acked by the service",
        "deferred": f"reserved until the service acks ({relay.retries_delay:g}s)",
        "retrying": f"retrying in {relay.retries_delay:g}s",
        "failed": "failed for good",
        "lost": "the relay reservation ran out",
    }.get(result, result)
    return (
        f"push {relay.queue} {message_id} → {relay.subscriber} try {attempt}/{total}: "
        f"{answer.text()} in {ms(answer.latency):g} ms → {then}"
    )


def error_report(
    relay: Relay, message: Message, push_headers: Mapping[str, str], answer: Answer
) -> dict[str, Any]:
    """The v3 error-queue report for a relayed message that failed for good."""
    headers = {"User-Agent": PUSHER_USER_AGENT, "Content-Type": PUSH_CONTENT_TYPE}
    headers.update(push_headers)
    return {
        "source_msg_id": message.id,
        "body": message.body,
        "headers": headers,
        "subscribers": [
            {
                "name": relay.name.subscriber_name,
                "url": redact_url(relay.target.url),
                "code": answer.status,
                "msg": answer.error or f"HTTP {answer.status}",
            }
        ],
        "relay_queue": relay.relay_queue,
    }
