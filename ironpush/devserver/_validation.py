"""Checking request bodies: every malformed field becomes a precise 400 ``{"msg": ...}``.

Push headers are checked with :func:`ironpush._protocol.validate_push_headers`, the same function
the client uses, so a message the client accepts is never refused here and vice versa. Durations
and sizes follow :class:`~ironpush.devserver._limits.Limits` (relaxed, or hosted with ``strict``).
Fields an official client sends that the v3 API no longer uses (a message's ``timeout`` and
``expires_in``, a queue's ``name``/``size``/``total_messages`` in a create body) are ignored,
as hosted IronMQ does (the Ruby client's own push tests post ``timeout`` and expect 201).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .._errors import APIError, ValidationError
from .._protocol import (
    FORBIDDEN_PUSH_HEADERS,
    MAX_DELAY,
    MAX_MESSAGES_PER_CALL,
    QUEUE_TYPES,
    validate_push_headers,
)
from ..client._models import Subscriber, derive_subscriber_name
from ._limits import (
    HOSTED_MIN_RETRIES_DELAY,
    HOSTED_MIN_TIMEOUT,
    MAX_EXPIRATION,
    MAX_TIMEOUT,
    Limits,
)
from ._queue_targets import check_subscriber_url

MAX_RETRIES = 100
MAX_ALERTS = 5
ALERT_TYPES = ("fixed", "progressive")
ALERT_DIRECTIONS = ("asc", "desc")
# The pusher owns these (subscriber headers may still override Content-Type and User-Agent).
_IRON_HEADERS = frozenset(h for h in FORBIDDEN_PUSH_HEADERS if h.startswith("iron-"))


def _is_token(name: str) -> bool:
    return bool(name) and all(c.isascii() and (c.isalnum() or c in "!#$%&'*+-.^_`|~") for c in name)


def bad(msg: str) -> APIError:
    return APIError(400, msg)


# A "\ud800" escape (or surrogate bytes, which json.loads lets through in UTF-8 and UTF-16)
# gives a str that cannot be encoded again: stored, it would break every later answer naming it.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def parse_json(raw: bytes, *, empty: Any = None) -> Any:
    """The request's JSON; an empty body is ``empty``; anything unparsable is a 400."""
    if not raw.strip():
        return empty
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: e.g. b"[" * 100_000
        raise bad("Invalid JSON in request body") from None
    if not raw.isascii() or _SURROGATE_ESCAPE.search(raw):
        try:
            json.dumps(data, ensure_ascii=False).encode()
        except (ValueError, RecursionError):
            raise bad("Invalid JSON in request body: lone surrogates are not text") from None
    return data


def obj(data: Any, what: str = "request body") -> Mapping[str, Any]:
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise bad(f"{what} must be a JSON object")
    return data


def objects(
    value: Any, what: str, *, limit: tuple[int, str] | None = None, allow_empty: bool = False
) -> Iterator[Mapping[str, Any]]:
    """The objects of the JSON array ``value`` of ``what`` ("messages"), checked one by one.

    Not empty (unless ``allow_empty``), at most ``limit`` = (count, "per request") entries;
    lazy, so each entry is checked before the next one is looked at.
    """
    if not isinstance(value, list) or (not value and not allow_empty):
        raise bad(f"{what} must be a non-empty array")
    if limit is not None and len(value) > limit[0]:
        raise bad(f"at most {limit[0]} {what} {limit[1]}")
    for item in value:
        yield obj(item, f"each {what.removesuffix('s')}")


def number(
    data: Mapping[str, Any], key: str, *, low: float, high: float, strict_low: bool = False
) -> float | None:
    """An optional number field in ``low..high`` (fractions allowed: the dev server is fast)."""
    value = data.get(key)
    if value is None:
        return None
    # isfinite only on floats: math.isfinite(10**400) raises OverflowError.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad(f"{key} must be a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise bad(f"{key} must be a number")
    if value < low or value > high or (strict_low and value == low):
        lower = f"> {low}" if strict_low else f">= {low}"
        raise bad(f"{key} must be {lower} and <= {high}, got {value}")
    return float(value)


def integer(data: Mapping[str, Any], key: str, *, low: int, high: int) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise bad(f"{key} must be an integer")
    if not low <= value <= high:
        raise bad(f"{key} must be {low}..{high}, got {value}")
    return int(value)


def optional_str(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise bad(f"{key} must be a string")
    return value


# --------------------------------------------------------------------------- messages


@dataclass(frozen=True, slots=True)
class NewMessage:
    body: str
    delay: float = 0.0
    push_headers: dict[str, str] = field(default_factory=dict)


def push_headers(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    try:
        return validate_push_headers(value)
    except ValidationError as exc:
        raise bad(str(exc)) from None


def parse_messages(data: Any, *, limits: Limits) -> list[NewMessage]:
    """``{"messages": [{"body", "delay"?, "push_headers"?}, ...]}``: 1..100 messages."""
    max_size = limits.max_message_size
    out = []
    limit = (MAX_MESSAGES_PER_CALL, "per request")
    for message in objects(obj(data).get("messages"), "messages", limit=limit):
        body = message.get("body")
        if not isinstance(body, str):
            raise bad("each message needs a string body")
        if len(body.encode()) > max_size:
            raise bad(f"message body is larger than {max_size} bytes")
        delay = limits.seconds(message, "delay", high=MAX_DELAY) or 0.0
        out.append(NewMessage(body, delay, push_headers(message.get("push_headers"))))
    return out


def webhook_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """``X-Subscribers-*`` request headers → push headers; invalid ones are dropped (as v3)."""
    out: dict[str, str] = {}
    for name, value in headers.items():
        if name.lower().startswith("x-subscribers-") and len(out) < 5:
            candidate = {name[len("x-subscribers-") :]: value}
            try:
                out.update(validate_push_headers(candidate))
            except ValidationError:
                continue
    return out


# --------------------------------------------------------------------------- queues


@dataclass
class QueuePatch:
    """The settings a create (PUT) or update (PATCH) names; ``None`` = not given."""

    type: str | None = None
    message_timeout: float | None = None
    message_expiration: float | None = None
    push_given: bool = False
    subscribers: list[Subscriber] | None = None
    retries: int | None = None
    retries_delay: float | None = None
    error_queue: str | None = None
    dead_letter: dict[str, Any] | None = None
    alerts: list[dict[str, Any]] | None = None


def parse_queue_patch(data: Any, *, limits: Limits) -> QueuePatch:
    """``{"queue": {...}}`` of create/update (a bare settings object is accepted too).

    ``message_timeout``/``message_expiration`` of 0 mean "not given" (the default on create,
    unchanged on update): the official Go client sends both, as 0 when unset.
    """
    body = obj(data)
    queue = obj(body.get("queue"), "queue") if "queue" in body else body
    patch = QueuePatch()
    qtype = queue.get("type")
    if qtype is not None and qtype not in QUEUE_TYPES:
        raise bad(f"type must be one of {', '.join(QUEUE_TYPES)}")
    patch.type = qtype
    patch.message_timeout = limits.seconds(
        queue,
        "message_timeout",
        high=MAX_TIMEOUT,
        hosted_min=HOSTED_MIN_TIMEOUT,
        zero_is_default=True,
    )
    patch.message_expiration = limits.seconds(
        queue, "message_expiration", high=MAX_EXPIRATION, zero_is_default=True
    )
    if queue.get("push") is not None:
        push = obj(queue["push"], "push")
        patch.push_given = True
        if "subscribers" in push:
            patch.subscribers = parse_subscribers(push.get("subscribers"))
        patch.retries = integer(push, "retries", low=0, high=MAX_RETRIES)
        patch.retries_delay = limits.seconds(
            push, "retries_delay", high=MAX_TIMEOUT, hosted_min=HOSTED_MIN_RETRIES_DELAY
        )
        patch.error_queue = optional_str(push, "error_queue")
    if queue.get("dead_letter") is not None:
        dead = obj(queue["dead_letter"], "dead_letter")
        name = optional_str(dead, "queue_name")
        if not name:
            raise bad("dead_letter needs a queue_name")
        limit = integer(dead, "max_reservations", low=1, high=1000) or 10
        patch.dead_letter = {"queue_name": name, "max_reservations": limit}
    if queue.get("alerts") is not None:
        patch.alerts = parse_alerts(queue["alerts"])
    return patch


def parse_subscribers(value: Any, *, names_only: bool = False) -> list[Subscriber]:
    """A subscribers array. ``names_only`` (removal) needs just ``name`` (or ``url``).

    Names may repeat: hosted IronMQ keeps both entries (the Ruby client's
    ``test_post_and_instantiate`` creates two subscribers of one name and expects two). A
    missing or empty name (the Go client sends ``""`` when unset) is derived from the URL.
    """
    out: list[Subscriber] = []
    for sub in objects(value, "subscribers"):
        url = sub.get("url")
        name = sub.get("name")
        if name is not None and not isinstance(name, str):
            raise bad("a subscriber name must be a string")
        if names_only:
            if not name and not isinstance(url, str):
                raise bad("each subscriber to remove needs a name")
            out.append(Subscriber(name or "", url if isinstance(url, str) else ""))
            continue
        if not isinstance(url, str) or not url:
            raise bad("each subscriber needs a url")
        check_subscriber_url(url)
        out.append(Subscriber(name or derive_subscriber_name(url), url, sub_headers(sub)))
    return out


def sub_headers(sub: Mapping[str, Any]) -> dict[str, str]:
    headers = sub.get("headers")
    if headers is None:
        return {}
    if not isinstance(headers, Mapping):
        raise bad("subscriber headers must be an object")
    out: dict[str, str] = {}
    for name, value in headers.items():
        if not isinstance(value, str):
            raise bad(f"subscriber header {name!r} must be a string")
        if not _is_token(name):
            raise bad(f"subscriber header name {name!r} is not a valid HTTP header name")
        if name.lower() in _IRON_HEADERS:
            raise bad(f"subscriber header {name!r} is set by the pusher")
        if any(c in value for c in "\r\n\x00"):
            raise bad(f"subscriber header {name!r} value contains a line break")
        out[name] = value
    return out


def parse_alerts(value: Any, *, allow_empty: bool = False) -> list[dict[str, Any]]:
    out = []
    limit = (MAX_ALERTS, "per queue")
    for alert in objects(value, "alerts", limit=limit, allow_empty=allow_empty):
        atype = alert.get("type")
        if atype not in ALERT_TYPES:
            raise bad("alert type must be fixed or progressive")
        trigger = integer(alert, "trigger", low=1, high=2**31)
        if trigger is None:
            raise bad("alert trigger is required")
        queue = optional_str(alert, "queue")
        if not queue:
            raise bad("alert queue is required")
        direction = alert.get("direction") or "asc"
        if direction not in ALERT_DIRECTIONS:
            raise bad("alert direction must be asc or desc")
        parsed: dict[str, Any] = {
            "type": atype,
            "trigger": trigger,
            "queue": queue,
            "direction": direction,
        }
        snooze = integer(alert, "snooze", low=0, high=2**31)
        if snooze is not None:
            parsed["snooze"] = snooze
        out.append(parsed)
    keys = [(a["type"], a["direction"], a["trigger"]) for a in out]
    if len(set(keys)) != len(keys):
        raise bad("At least one new alert duplicates current queue alerts.")
    return out


def parse_alert_ids(data: Any) -> list[str]:
    """The ids of an alert removal: ``{"alerts": [{"id": ...}]}`` (Ruby, Java, the v1 docs) or
    iron-mq 0.9's ``{"queue": {"alerts": ["<id>", ...]}}`` (Iron.io's own test of that client
    expects ``Alerts were deleted.``); entries may be ids or ``{"id"}`` objects in either."""
    body = obj(data)
    if "queue" in body and "alerts" not in body:
        body = obj(body["queue"], "queue")
    items = body.get("alerts")
    if not isinstance(items, list) or not items:
        raise bad("alerts must be a non-empty array of ids or {id} objects")
    ids = []
    for item in items:
        alert_id = item if isinstance(item, str) else optional_str(obj(item, "each alert"), "id")
        if not alert_id:
            raise bad("each alert to remove needs an id")
        ids.append(alert_id)
    return ids
