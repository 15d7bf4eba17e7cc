"""Sans-I/O operations: every IronMQ v3 call, written once for both client twins.

An operation is a generator that yields :class:`~ironpush.protocol.Request` values and receives
:class:`~ironpush.protocol.Reply` values, then returns the parsed result. The sync client drives
it with ``httpx.Client`` and the async client with ``httpx.AsyncClient``; neither knows any
endpoint. Multi-step calls (``update`` that creates a missing queue, removing subscribers by
URL) are ordinary Python control flow inside one generator::

    op = operations.reserve("jobs", n=10)
    request = next(op)   # Request(method="POST", path="/queues/jobs/reservations", ...)
    op.send(Reply(200, {"messages": []}))   # raises StopIteration(value=[])
"""

from __future__ import annotations

import math
from collections.abc import Generator, Iterable, Mapping
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import quote

from ..errors import NotFound, ValidationError
from ..protocol import (
    MAX_DELAY,
    PUSH_TYPES,
    QUEUE_TYPES,
    Delivery,
    Reply,
    Request,
    encodable,
    error_for,
    validate_push_headers,
)
from .models import Alert, Message, PushStatus, QueueInfo, Subscriber

T = TypeVar("T")
Op = Generator[Request, Reply, T]

MessageInput = str | bytes | Mapping[str, Any]
SubscriberInput = str | Subscriber | Mapping[str, Any]
AlertInput = Alert | Mapping[str, Any]


# --------------------------------------------------------------------------- helpers


def queue_path(name: str, *rest: str) -> str:
    """``/queues/{name}/...`` with every segment percent-escaped (spaces, ``/``, ``?``, ``#``)."""
    if not isinstance(name, str) or not name:
        raise ValidationError("a queue name must be a non-empty string")
    segments = [quote(name, safe="")] + [quote(r, safe="") for r in rest]
    return "/queues/" + "/".join(segments)


def call(request: Request) -> Op[Any]:
    """Send one request and return its JSON data; error statuses raise the typed APIError."""
    reply = yield request
    if reply.status_code >= 400:
        raise error_for(request, reply)
    return reply.data


def _mapping(data: Any, key: str) -> Mapping[str, Any]:
    value = data.get(key) if isinstance(data, Mapping) else None
    return value if isinstance(value, Mapping) else {}


def _list(data: Any, key: str) -> list[Any]:
    value = data.get(key) if isinstance(data, Mapping) else None
    return value if isinstance(value, list) else []


def _number(name: str, value: Any, *, low: float, high: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise ValidationError(f"{name} must be a number")
    if value < low or (high is not None and value > high):
        bounds = f"{low}..{high}" if high is not None else f">= {low}"
        raise ValidationError(f"{name} must be {bounds}, got {value}")
    return value


def _seconds(value: float) -> int | float:
    # Send whole seconds as integers (what the hosted service documents); keep fractions for the
    # dev server, which accepts them for fast tests.
    return int(value) if float(value).is_integer() else float(value)


def _text_body(body: Any) -> str:
    if isinstance(body, str):
        if not encodable(body):
            raise ValidationError("a message body must be valid Unicode text (no lone surrogates)")
        return body
    if isinstance(body, bytes | bytearray):
        try:
            return bytes(body).decode("utf-8")
        except UnicodeDecodeError:
            raise ValidationError(
                "message bodies travel as JSON strings: bytes must be UTF-8 (base64-encode binary)"
            ) from None
    raise ValidationError(
        f"a message body must be str or bytes, not {type(body).__name__} (json.dumps it first)"
    )


def message_json(message: MessageInput) -> dict[str, Any]:
    """The v3 JSON for one message to post: ``{"body", "delay"?, "push_headers"?}``."""
    if isinstance(message, str | bytes | bytearray):
        return {"body": _text_body(message)}
    if not isinstance(message, Mapping):
        raise ValidationError(f"cannot post a {type(message).__name__}: give str, bytes or a dict")
    unknown = set(message) - {"body", "delay", "push_headers"}
    if unknown:
        raise ValidationError(
            f"unsupported message field(s) {sorted(unknown)} on v3 "
            "(per-message timeout/expires_in were removed; set them on the queue)"
        )
    if "body" not in message:
        raise ValidationError("a message dict needs a 'body'")
    out: dict[str, Any] = {"body": _text_body(message["body"])}
    if message.get("delay") is not None:
        out["delay"] = _seconds(_number("delay", message["delay"], low=0, high=MAX_DELAY))
    if message.get("push_headers"):
        out["push_headers"] = validate_push_headers(message["push_headers"])
    return out


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


def queue_options(
    *,
    type: str | None = None,
    message_timeout: float | None = None,
    message_expiration: float | None = None,
    subscribers: Iterable[SubscriberInput] | None = None,
    retries: int | None = None,
    retries_delay: float | None = None,
    error_queue: str | None = None,
    dead_letter: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``{"queue": {...}}`` body of create/update, from keyword options."""
    queue: dict[str, Any] = {}
    if type is not None:
        if type not in QUEUE_TYPES:
            raise ValidationError(f"queue type must be one of {', '.join(QUEUE_TYPES)}")
        queue["type"] = type
    if message_timeout is not None:
        queue["message_timeout"] = _seconds(_number("message_timeout", message_timeout, low=0))
    if message_expiration is not None:
        queue["message_expiration"] = _seconds(
            _number("message_expiration", message_expiration, low=0)
        )
    push: dict[str, Any] = {}
    if subscribers is not None:
        push["subscribers"] = subscribers_json(subscribers)
    if retries is not None:
        push["retries"] = int(_number("retries", retries, low=0, high=100))
    if retries_delay is not None:
        push["retries_delay"] = _seconds(_number("retries_delay", retries_delay, low=0))
    if error_queue is not None:
        push["error_queue"] = error_queue
    if push:
        queue["push"] = push
    if dead_letter is not None:
        queue["dead_letter"] = dict(dead_letter)
    return {"queue": queue}


def _queue_info(data: Any, name: str) -> QueueInfo:
    body = _mapping(data, "queue") or (data if isinstance(data, Mapping) else {})
    info = QueueInfo.from_json(body)
    return info if info.name else QueueInfo.from_json({**body, "name": name})


# --------------------------------------------------------------------------- queues


def list_queues(
    *, prefix: str | None = None, per_page: int | None = None, previous: str | None = None
) -> Op[list[str]]:
    """``GET /queues``: one page of queue names, alphabetical."""
    params: dict[str, str] = {}
    if prefix:
        params["prefix"] = prefix
    if per_page is not None:
        params["per_page"] = str(int(_number("per_page", per_page, low=1)))
    if previous:
        params["previous"] = previous
    data = yield from call(Request("GET", "/queues", params=params or None))
    return [str(q["name"]) for q in _list(data, "queues") if isinstance(q, Mapping)]


def get_queue(name: str) -> Op[QueueInfo]:
    data = yield from call(Request("GET", queue_path(name)))
    return _queue_info(data, name)


def create_queue(name: str, **options: Any) -> Op[QueueInfo]:
    body = queue_options(**options)
    push = body["queue"].get("push")
    if push is not None and "type" not in body["queue"]:
        body["queue"]["type"] = "multicast"
    if body["queue"].get("type") in PUSH_TYPES and not (push or {}).get("subscribers"):
        raise ValidationError("a push queue needs at least one subscriber when it is created")
    data = yield from call(Request("PUT", queue_path(name), json=body))
    return _queue_info(data, name)


def update_queue(name: str, **options: Any) -> Op[QueueInfo]:
    if options.get("type") is not None:
        raise ValidationError("v3 cannot change a queue's type; delete and re-create the queue")
    data = yield from call(Request("PATCH", queue_path(name), json=queue_options(**options)))
    return _queue_info(data, name)


def update_push_queue(
    name: str,
    *,
    subscribers: Iterable[SubscriberInput] | None = None,
    push_type: str | None = None,
    **options: Any,
) -> Op[QueueInfo]:
    """The original binding's ``update``: make/adjust a push queue, creating it when missing.

    Refuses to change the type of an existing v3 queue (the hosted service fixes it at creation).
    """
    subs = list(subscribers) if subscribers is not None else None
    if push_type is not None and push_type not in PUSH_TYPES:
        raise ValidationError(f"push_type must be one of {', '.join(PUSH_TYPES)}")
    try:
        current = yield from get_queue(name)
    except NotFound:
        if not subs:
            raise ValidationError(
                f"queue {name!r} does not exist; give subscribers to create it as a push queue"
            ) from None
        return (
            yield from create_queue(
                name, type=push_type or "multicast", subscribers=subs, **options
            )
        )
    if push_type is not None and current.type != push_type:
        raise ValidationError(
            f"queue {name!r} is a {current.type} queue and v3 cannot change a queue's type; "
            f"delete it and re-create it as {push_type}"
        )
    if subs is not None and not current.is_push:
        raise ValidationError(f"queue {name!r} is a pull queue; v3 cannot add subscribers to it")
    return (yield from update_queue(name, subscribers=subs, **options))


def delete_queue(name: str) -> Op[None]:
    yield from call(Request("DELETE", queue_path(name)))


# --------------------------------------------------------------------------- messages


def post(name: str, messages: Iterable[MessageInput]) -> Op[list[str]]:
    """``POST /messages``: ids in request order. Never retried blindly (it would duplicate)."""
    body = [message_json(m) for m in messages]
    if not body:
        raise ValidationError("post needs at least one message")
    request = Request(
        "POST", queue_path(name, "messages"), json={"messages": body}, idempotent=False
    )
    data = yield from call(request)
    return [str(i) for i in _list(data, "ids")]


def reserve(
    name: str,
    *,
    n: int = 1,
    timeout: float | None = None,
    wait: float | None = None,
    delete: bool = False,
) -> Op[list[Message]]:
    """``POST /reservations``: up to ``n`` messages, each with a ``reservation_id``."""
    body: dict[str, Any] = {"n": int(_number("max", n, low=1, high=100))}
    if timeout is not None:
        body["timeout"] = _seconds(_number("timeout", timeout, low=0, high=86400))
    if wait is not None:
        body["wait"] = _seconds(_number("wait", wait, low=0, high=30))
    if delete:
        body["delete"] = True
    # A lost reply to a plain reservation only delays those messages until the reservation
    # times out, so retrying is safe; with delete=true a retry could silently lose messages.
    request = Request(
        "POST",
        queue_path(name, "reservations"),
        json=body,
        idempotent=not delete,
        read_timeout=(wait + 10) if wait else None,
    )
    data = yield from call(request)
    return [Message.from_json(m) for m in _list(data, "messages") if isinstance(m, Mapping)]


def get_message(name: str, message_id: str) -> Op[Message]:
    data = yield from call(Request("GET", queue_path(name, "messages", message_id)))
    return Message.from_json(_mapping(data, "message") or data)


def peek(name: str, *, n: int = 1) -> Op[list[Message]]:
    params = {"n": str(int(_number("max", n, low=1, high=100)))}
    data = yield from call(Request("GET", queue_path(name, "messages"), params=params))
    return [Message.from_json(m) for m in _list(data, "messages") if isinstance(m, Mapping)]


def touch(
    name: str, message_id: str, reservation_id: str, *, timeout: float | None = None
) -> Op[str]:
    """Extend a reservation; returns the **new** reservation id (the old one stops working)."""
    body: dict[str, Any] = {"reservation_id": _required("reservation_id", reservation_id)}
    if timeout is not None:
        body["timeout"] = _seconds(_number("timeout", timeout, low=0, high=86400))
    request = Request(
        "POST", queue_path(name, "messages", message_id, "touch"), json=body, idempotent=False
    )
    data = yield from call(request)
    return str(data.get("reservation_id", "")) if isinstance(data, Mapping) else ""


def release(name: str, message_id: str, reservation_id: str, *, delay: float = 0) -> Op[None]:
    body: dict[str, Any] = {"reservation_id": _required("reservation_id", reservation_id)}
    if delay:
        body["delay"] = _seconds(_number("delay", delay, low=0, high=MAX_DELAY))
    request = Request(
        "POST", queue_path(name, "messages", message_id, "release"), json=body, idempotent=False
    )
    yield from call(request)


def delete(
    name: str,
    message_id: str,
    *,
    reservation_id: str | None = None,
    subscriber_name: str | None = None,
) -> Op[None]:
    """Delete a message; with ``subscriber_name`` this is the v3 acknowledgement of a 202 push."""
    body: dict[str, Any] = {}
    if reservation_id:
        body["reservation_id"] = reservation_id
    if subscriber_name:
        if not reservation_id:
            raise ValidationError("acknowledging a push needs its reservation_id too")
        body["subscriber_name"] = subscriber_name
    yield from call(Request("DELETE", queue_path(name, "messages", message_id), json=body or None))


def delete_many(name: str, items: Iterable[str | Message | Mapping[str, Any]]) -> Op[None]:
    """``DELETE /messages`` with ``{"ids": [...]}``; an empty list is refused (it would clear)."""
    ids: list[dict[str, str]] = []
    for item in items:
        if isinstance(item, str):
            ids.append({"id": _required("message id", item)})
        elif isinstance(item, Message):
            entry = {"id": item.id}
            if item.reservation_id:
                entry["reservation_id"] = item.reservation_id
            ids.append(entry)
        elif isinstance(item, Mapping) and item.get("id"):
            entry = {"id": str(item["id"])}
            if item.get("reservation_id"):
                entry["reservation_id"] = str(item["reservation_id"])
            ids.append(entry)
        else:
            raise ValidationError(
                f"cannot delete {item!r}: give ids, Messages or {{id, reservation_id}}"
            )
    if not ids:
        raise ValidationError(
            "delete_multiple needs at least one id (an empty list would clear the queue)"
        )
    if len(ids) > 100:
        raise ValidationError("delete_multiple takes at most 100 ids per call")
    yield from call(Request("DELETE", queue_path(name, "messages"), json={"ids": ids}))


def clear(name: str) -> Op[None]:
    yield from call(Request("DELETE", queue_path(name, "messages"), json={}))


def _required(what: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValidationError(f"{what} is required")
    return value


# --------------------------------------------------------------------------- push queues


def add_subscribers(name: str, subscribers: Iterable[SubscriberInput]) -> Op[None]:
    body = {"subscribers": subscribers_json(subscribers)}
    yield from call(Request("POST", queue_path(name, "subscribers"), json=body))


def replace_subscribers(name: str, subscribers: Iterable[SubscriberInput]) -> Op[None]:
    body = {"subscribers": subscribers_json(subscribers)}
    yield from call(Request("PUT", queue_path(name, "subscribers"), json=body))


def remove_subscribers(name: str, names_or_urls: Iterable[str | Subscriber]) -> Op[None]:
    """Remove subscribers by name, or by URL (looked up on the queue: v3 removes by name)."""
    wanted = [
        s.name if isinstance(s, Subscriber) else _required("subscriber", s) for s in names_or_urls
    ]
    if not wanted:
        raise ValidationError("give at least one subscriber name or URL")
    names = list(wanted)
    if any("://" in w for w in wanted):
        info = yield from get_queue(name)
        by_url = {s.url: s.name for s in info.subscribers}
        known = {s.name for s in info.subscribers}
        names = []
        for w in wanted:
            if w in known or "://" not in w:
                names.append(w)
            elif w in by_url:
                names.append(by_url[w])
            else:
                raise ValidationError(f"queue {name!r} has no subscriber with that URL")
    body = {"subscribers": [{"name": n} for n in dict.fromkeys(names)]}
    yield from call(Request("DELETE", queue_path(name, "subscribers"), json=body))


def push_statuses(name: str, message_id: str) -> Op[list[PushStatus]]:
    data = yield from call(Request("GET", queue_path(name, "messages", message_id, "subscribers")))
    return [PushStatus.from_json(s) for s in _list(data, "subscribers") if isinstance(s, Mapping)]


def acknowledge(name: str, delivery: Delivery) -> Op[None]:
    """Acknowledge a push answered with 202.

    v3: ``DELETE /messages/{id}`` with the delivery's reservation id and subscriber name.
    Legacy v1/v2: ``DELETE`` on the delivery's ``Iron-Subscriber-Message-Url``, verbatim.
    """
    if delivery.flavour == "legacy":
        if not delivery.subscriber_message_url:
            raise ValidationError(
                "a legacy push without Iron-Subscriber-Message-Url cannot be acked"
            )
        yield from call(Request("DELETE", delivery.subscriber_message_url))
        return
    if not delivery.reservation_id or not delivery.subscriber_name:
        raise ValidationError("a v3 push ack needs Iron-Reservation-Id and Iron-Subscriber-Name")
    yield from delete(
        name,
        delivery.message_id,
        reservation_id=delivery.reservation_id,
        subscriber_name=delivery.subscriber_name,
    )


# --------------------------------------------------------------------------- alerts


def add_alerts(name: str, alerts: Iterable[AlertInput]) -> Op[None]:
    """``PATCH /queues/{q}`` with ``{"queue": {"alerts": [...]}}`` (Ruby, Java and 0.9 agree)."""
    body = {"queue": {"alerts": alerts_json(alerts)}}
    yield from call(Request("PATCH", queue_path(name), json=body))


def replace_alerts(name: str, alerts: Iterable[AlertInput]) -> Op[None]:
    """``PUT /queues/{q}/alerts`` with ``{"alerts": [...]}``; an empty list removes every alert."""
    body = {"alerts": [a.to_json() if isinstance(a, Alert) else dict(a) for a in alerts]}
    yield from call(Request("PUT", queue_path(name, "alerts"), json=body))


def remove_alerts(name: str, alert_ids: Iterable[str | Alert]) -> Op[None]:
    ids = [a.id if isinstance(a, Alert) else a for a in alert_ids]
    if not ids or not all(isinstance(i, str) and i for i in ids):
        raise ValidationError("give the ids of the alerts to remove")
    body = {"alerts": [{"id": i} for i in ids]}
    yield from call(Request("DELETE", queue_path(name, "alerts"), json=body))


def remove_alert(name: str, alert_id: str) -> Op[None]:
    yield from call(Request("DELETE", queue_path(name, "alerts", _required("alert id", alert_id))))


# --------------------------------------------------------------------------- keystone


def keystone_token(
    server: str, *, tenant: str, username: str, password: str
) -> Op[tuple[str, datetime | None]]:
    """Exchange Keystone credentials for a token (iron_core's scheme): ``(token, expires_at)``."""
    body = {
        "auth": {
            "tenantName": tenant,
            "passwordCredentials": {"username": username, "password": password},
        }
    }
    data = yield from call(Request("POST", server.rstrip("/") + "/tokens", json=body))
    token = _mapping(_mapping(data, "access"), "token")
    if not token.get("id"):
        raise ValidationError("the Keystone server answered without access.token.id")
    expires: datetime | None = None
    if token.get("expires"):
        try:
            expires = datetime.fromisoformat(str(token["expires"]).replace("Z", "+00:00"))
        except ValueError:
            expires = None
    return str(token["id"]), expires
