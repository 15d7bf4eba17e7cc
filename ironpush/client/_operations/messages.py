"""Message operations: post, reserve, get, peek, touch, release, delete, delete many, clear."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..._errors import ValidationError
from ..._protocol import MAX_DELAY, Request, encodable, validate_push_headers
from .._models import Message
from .base import MessageInput, Op, call, list_at, mapping_at, number, queue_path, required, seconds


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
        out["delay"] = seconds(number("delay", message["delay"], low=0, high=MAX_DELAY))
    if message.get("push_headers"):
        out["push_headers"] = validate_push_headers(message["push_headers"])
    return out


def post(name: str, messages: Iterable[MessageInput]) -> Op[list[str]]:
    """``POST /messages``: ids in request order. Never retried blindly (it would duplicate)."""
    body = [message_json(m) for m in messages]
    if not body:
        raise ValidationError("post needs at least one message")
    request = Request(
        "POST", queue_path(name, "messages"), json={"messages": body}, idempotent=False
    )
    data = yield from call(request)
    return [str(i) for i in list_at(data, "ids")]


def reserve(
    name: str,
    *,
    n: int = 1,
    timeout: float | None = None,
    wait: float | None = None,
    delete: bool = False,
) -> Op[list[Message]]:
    """``POST /reservations``: up to ``n`` messages, each with a ``reservation_id``."""
    body: dict[str, Any] = {"n": int(number("max", n, low=1, high=100))}
    if timeout is not None:
        body["timeout"] = seconds(number("timeout", timeout, low=0, high=86400))
    if wait is not None:
        body["wait"] = seconds(number("wait", wait, low=0, high=30))
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
    return [Message.from_json(m) for m in list_at(data, "messages") if isinstance(m, Mapping)]


def get_message(name: str, message_id: str) -> Op[Message]:
    data = yield from call(Request("GET", queue_path(name, "messages", message_id)))
    return Message.from_json(mapping_at(data, "message") or data)


def peek(name: str, *, n: int = 1) -> Op[list[Message]]:
    params = {"n": str(int(number("max", n, low=1, high=100)))}
    data = yield from call(Request("GET", queue_path(name, "messages"), params=params))
    return [Message.from_json(m) for m in list_at(data, "messages") if isinstance(m, Mapping)]


def touch(
    name: str, message_id: str, reservation_id: str, *, timeout: float | None = None
) -> Op[str]:
    """Extend a reservation; returns the **new** reservation id (the old one stops working)."""
    body: dict[str, Any] = {"reservation_id": required("reservation_id", reservation_id)}
    if timeout is not None:
        body["timeout"] = seconds(number("timeout", timeout, low=0, high=86400))
    request = Request(
        "POST", queue_path(name, "messages", message_id, "touch"), json=body, idempotent=False
    )
    data = yield from call(request)
    return str(data.get("reservation_id", "")) if isinstance(data, Mapping) else ""


def release(name: str, message_id: str, reservation_id: str, *, delay: float = 0) -> Op[None]:
    body: dict[str, Any] = {"reservation_id": required("reservation_id", reservation_id)}
    if delay:
        body["delay"] = seconds(number("delay", delay, low=0, high=MAX_DELAY))
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
            ids.append({"id": required("message id", item)})
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
