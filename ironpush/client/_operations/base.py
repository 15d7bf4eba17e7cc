"""What every operation shares: the :data:`Op` type, :func:`call`, paths, input checks."""

from __future__ import annotations

import math
import re
from collections.abc import Generator, Iterable, Mapping
from typing import Any, TypeVar
from urllib.parse import quote

from ..._errors import ValidationError
from ..._protocol import Reply, Request, error_for
from .._models import Alert, Subscriber

T = TypeVar("T")
# What quote(text, safe="") leaves as it is (RFC 3986 unreserved characters).
_PLAIN_SEGMENT = re.compile(r"[A-Za-z0-9_.~-]*")
Op = Generator[Request, Reply, T]

MessageInput = str | bytes | Mapping[str, Any]
SubscriberInput = str | Subscriber | Mapping[str, Any]
AlertInput = Alert | Mapping[str, Any]


def queue_path(name: str, *rest: str) -> str:
    """``/queues/{name}/...`` with every segment percent-escaped (spaces, ``/``, ``?``, ``#``)."""
    if not isinstance(name, str) or not name:
        raise ValidationError("a queue name must be a non-empty string")
    segments = [segment(name), *map(segment, rest)]
    return "/queues/" + "/".join(segments)


def segment(text: str) -> str:
    """``text`` as one path segment, percent-escaped: ``segment("a b/c")`` is ``"a%20b%2Fc"``."""
    # Most names and ids need no escaping: skip quote() (several µs per call on an ack), and
    # for letters and digits alone (ids, "messages") the pattern too.
    if text.isalnum() and text.isascii():
        return text
    return text if _PLAIN_SEGMENT.fullmatch(text) else quote(text, safe="")


def call(request: Request) -> Op[Any]:
    """Send one request and return its JSON data; error statuses raise the typed APIError."""
    reply = yield request
    if reply.status_code >= 400:
        raise error_for(request, reply)
    return reply.data


def mapping_at(data: Any, key: str) -> Mapping[str, Any]:
    """``data[key]`` when both are JSON objects, else ``{}`` (replies are never trusted)."""
    value = data.get(key) if isinstance(data, Mapping) else None
    return value if isinstance(value, Mapping) else {}


def list_at(data: Any, key: str) -> list[Any]:
    """``data[key]`` when it is a JSON list, else ``[]``."""
    value = data.get(key) if isinstance(data, Mapping) else None
    return value if isinstance(value, list) else []


def number(name: str, value: Any, *, low: float, high: float | None = None) -> float:
    """``value`` checked to be a number in ``low..high``; ``ValidationError`` names ``name``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise ValidationError(f"{name} must be a number")
    if value < low or (high is not None and value > high):
        bounds = f"{low}..{high}" if high is not None else f">= {low}"
        raise ValidationError(f"{name} must be {bounds}, got {value}")
    return value


def seconds(value: float) -> int | float:
    """A duration as the wire wants it."""
    # Send whole seconds as integers (what the hosted service documents); keep fractions for the
    # dev server, which accepts them for fast tests.
    return int(value) if float(value).is_integer() else float(value)


def required(what: str, value: Any) -> str:
    """``value`` checked to be a non-empty string."""
    if not isinstance(value, str) or not value:
        raise ValidationError(f"{what} is required")
    return value


def subscribers_json(subscribers: Iterable[SubscriberInput]) -> list[dict[str, Any]]:
    out = [Subscriber.coerce(s).to_json() for s in subscribers]
    if not out:
        raise ValidationError("give at least one subscriber")
    return out


def alerts_json(alerts: Iterable[AlertInput]) -> list[dict[str, Any]]:
    out = [a.to_json() if isinstance(a, Alert) else dict(a) for a in alerts]
    if not out:
        raise ValidationError("give at least one alert")
    return out
