"""Typed results of IronMQ calls: messages, queues, subscribers, push statuses, alerts.

They are frozen dataclasses built by the parsers in :mod:`ironpush.client._operations`. Each
keeps the server's original JSON in ``raw`` (excluded from ``repr`` and equality) for fields
ironpush does not model. Parsers are lenient: IronMQ's documented shapes disagree in places
(protocol §3.9), so every field a server may omit is optional.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from .._redact import masked_repr, redact_headers, redact_url


def _opt_int(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _opt_float(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _str_dict(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): str(v) for k, v in value.items()}


def derive_subscriber_name(url: str) -> str:
    """A stable, readable subscriber name for a URL given without a name.

    The same URL always gives the same name (so adding it twice updates one subscriber), and the
    hash suffix keeps two URLs on the same host apart::

        >>> derive_subscriber_name("https://api.example.com/ironmq/orders?x=1")
        'api.example.com-ironmq-orders-...'
    """
    parts = urlsplit(url)
    slug = re.sub(r"[^A-Za-z0-9.]+", "-", f"{parts.hostname or ''}{parts.path}").strip("-")
    digest = hashlib.sha256(url.encode()).hexdigest()[:8]
    return f"{slug[:48]}-{digest}" if slug else f"subscriber-{digest}"


@dataclass(frozen=True, slots=True)
class Subscriber:
    """A push-queue subscriber: where IronMQ POSTs, under which name, with which extra headers.

    Header values that hold secrets (e.g. ironpush's push-secret header) and secret query
    parameters are masked in ``repr``.
    """

    name: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:
        return masked_repr(self, url=redact_url, headers=redact_headers)

    def to_json(self) -> dict[str, Any]:
        """The v3 wire shape ``{"name", "url", "headers"?}``."""
        out: dict[str, Any] = {"name": self.name, "url": self.url}
        if self.headers:
            out["headers"] = dict(self.headers)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Subscriber:
        url = str(data.get("url", ""))
        name = data.get("name") or data.get("subscriber_name") or derive_subscriber_name(url)
        return cls(name=str(name), url=url, headers=_str_dict(data.get("headers")))

    @classmethod
    def coerce(cls, value: str | Subscriber | Mapping[str, Any]) -> Subscriber:
        """Accept a URL (named by :func:`derive_subscriber_name`), a dict or a Subscriber."""
        if isinstance(value, Subscriber):
            return value
        if isinstance(value, str):
            return cls(name=derive_subscriber_name(value), url=value)
        if isinstance(value, Mapping) and value.get("url"):
            return cls.from_json(value)
        raise TypeError(
            f"a subscriber is a URL string or a {{name, url, headers}} dict, not {value!r}"
        )


@dataclass(frozen=True, slots=True)
class PushConfig:
    """The ``push`` part of a v3 push queue."""

    subscribers: tuple[Subscriber, ...] = ()
    retries: int | None = None
    retries_delay: float | None = None
    error_queue: str | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PushConfig:
        subs = data.get("subscribers") or []
        return cls(
            subscribers=tuple(Subscriber.from_json(s) for s in subs if isinstance(s, Mapping)),
            retries=_opt_int(data.get("retries")),
            retries_delay=_opt_float(data.get("retries_delay")),
            error_queue=_opt_str(data.get("error_queue")),
        )


@dataclass(frozen=True, slots=True)
class Alert:
    """A queue alert (pull queues only; hosted v3 support is uncertain, see the README)."""

    type: str
    trigger: int
    queue: str
    direction: str = "asc"
    snooze: int | None = None
    id: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": self.type,
            "trigger": self.trigger,
            "queue": self.queue,
            "direction": self.direction,
        }
        if self.snooze is not None:
            out["snooze"] = self.snooze
        if self.id is not None:
            out["id"] = self.id
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Alert:
        return cls(
            type=str(data.get("type", "")),
            trigger=_opt_int(data.get("trigger")) or 0,
            queue=str(data.get("queue", "")),
            direction=str(data.get("direction") or "asc"),
            snooze=_opt_int(data.get("snooze")),
            id=_opt_str(data.get("id")),
        )


@dataclass(frozen=True, slots=True)
class QueueInfo:
    """What ``GET /queues/{name}`` says about a queue.

    ``type`` is ``"pull"``, ``"multicast"`` or ``"unicast"``; ``push`` is set on push queues only.
    ``id`` is ``None`` on v3, whose documented shape has no queue id.
    """

    name: str
    project_id: str | None = None
    size: int | None = None
    total_messages: int | None = None
    message_timeout: int | None = None
    message_expiration: int | None = None
    type: str = "pull"
    push: PushConfig | None = None
    alerts: tuple[Alert, ...] = ()
    id: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def is_push(self) -> bool:
        return self.type in ("multicast", "unicast")

    @property
    def subscribers(self) -> tuple[Subscriber, ...]:
        return self.push.subscribers if self.push else ()

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> QueueInfo:
        push = data.get("push")
        qtype = data.get("type") or data.get("push_type")
        if not qtype:
            qtype = "multicast" if isinstance(push, Mapping) else "pull"
        return cls(
            name=str(data.get("name", "")),
            project_id=_opt_str(data.get("project_id")),
            size=_opt_int(data.get("size")),
            total_messages=_opt_int(data.get("total_messages")),
            message_timeout=_opt_int(data.get("message_timeout")),
            message_expiration=_opt_int(data.get("message_expiration")),
            type=str(qtype),
            push=PushConfig.from_json(push) if isinstance(push, Mapping) else None,
            alerts=tuple(
                Alert.from_json(a) for a in data.get("alerts") or [] if isinstance(a, Mapping)
            ),
            id=_opt_str(data.get("id")),
            raw=dict(data),
        )


@dataclass(frozen=True, slots=True)
class Message:
    """A message as returned by reserve, peek or get-by-id.

    ``reservation_id`` is set on reserved messages only and is what ``touch``, ``release`` and
    ``delete`` need on v3.
    """

    id: str
    body: str
    reserved_count: int = 0
    reservation_id: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Message:
        return cls(
            id=str(data.get("id", "")),
            body=str(data.get("body", "")),
            reserved_count=_opt_int(data.get("reserved_count")) or 0,
            reservation_id=_opt_str(data.get("reservation_id")),
            raw=dict(data),
        )


@dataclass(frozen=True, slots=True)
class PushStatus:
    """One subscriber's delivery state for one message.

    ``status`` is one of ``queued``, ``retrying``, ``reserved``, ``deleted``, ``error`` on the
    servers we know, but unknown values are kept as they are. Field names are read leniently
    (``name``/``subscriber_name``, ``tries``/``retries_total``).
    """

    subscriber_name: str | None
    url: str | None = None
    status: str | None = None
    status_code: int | None = None
    tries: int | None = None
    retries_remaining: int | None = None
    retries_delay: float | None = field(default=None, repr=False)
    last_try_at: str | None = None
    msg: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def __repr__(self) -> str:
        # A subscriber URL may carry the push secret in its query string.
        return masked_repr(self, url=redact_url)

    @property
    def done(self) -> bool:
        """The push ended for this subscriber: delivered (``deleted``) or given up (``error``)."""
        return self.status in ("deleted", "error")

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PushStatus:
        tries = data.get("tries", data.get("retries_total"))
        return cls(
            subscriber_name=_opt_str(data.get("name", data.get("subscriber_name"))),
            url=_opt_str(data.get("url")),
            status=_opt_str(data.get("status")),
            status_code=_opt_int(data.get("status_code")),
            tries=_opt_int(tries),
            retries_remaining=_opt_int(data.get("retries_remaining")),
            retries_delay=_opt_float(data.get("retries_delay")),
            last_try_at=_opt_str(data.get("last_try_at")),
            msg=_opt_str(data.get("msg")),
            raw=dict(data),
        )


@dataclass(frozen=True, slots=True)
class FailedSubscriber:
    """A subscriber that gave up on a message, as listed in an error-queue report."""

    name: str | None
    url: str | None
    code: int | None
    msg: str | None

    def __repr__(self) -> str:
        return masked_repr(self, url=redact_url)


@dataclass(frozen=True, slots=True)
class ErrorReport:
    """The body of a message IronMQ posts to a push queue's ``error_queue``.

    Parses the v3 shape (``code``/``msg`` per subscriber) and the v1/v2 shape (``code``/``msg`` at
    the top level). ``source_msg_id`` is the failed message's id on the source queue.
    """

    source_msg_id: str
    body: str
    headers: Mapping[str, str]
    subscribers: tuple[FailedSubscriber, ...]

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ErrorReport:
        top_code, top_msg = _opt_int(data.get("code")), _opt_str(data.get("msg"))
        subs = tuple(
            FailedSubscriber(
                name=_opt_str(s.get("name", s.get("subscriber_name"))),
                url=_opt_str(s.get("url")),
                code=_opt_int(s.get("code", top_code)),
                msg=_opt_str(s.get("msg", top_msg)),
            )
            for s in data.get("subscribers") or []
            if isinstance(s, Mapping)
        )
        return cls(
            source_msg_id=str(data.get("source_msg_id", "")),
            body=str(data.get("body", "")),
            headers=_str_dict(data.get("headers")),
            subscribers=subs,
        )

    @classmethod
    def parse(cls, body: str) -> ErrorReport:
        """Parse an error-queue message body; raises ``ValueError`` if it is not a report."""
        data = json.loads(body)
        if not isinstance(data, Mapping) or "source_msg_id" not in data:
            raise ValueError("not an IronMQ error-queue report (no source_msg_id)")
        return cls.from_json(data)
