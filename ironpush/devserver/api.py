"""The v3 endpoints (paths relative to ``/3/projects/{project_id}``), one small function each.

Request and response shapes follow protocol §2b and the client's operations (what it
sends). Every handler takes a :class:`Call` and returns ``(status, json)``; an
:class:`~ironpush.errors.APIError` raised anywhere becomes ``{"msg": ...}`` with its status.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import APIError
from .entities import QueueState
from .pusher import Pusher
from .state import Store
from .validation import (
    NewMessage,
    QueuePatch,
    bad,
    integer,
    number,
    obj,
    optional_str,
    parse_alerts,
    parse_json,
    parse_messages,
    parse_queue_patch,
    parse_subscribers,
    webhook_headers,
)

__all__ = ["ROUTES", "Call", "Handler"]

Result = tuple[int, Any]


@dataclass
class Call:
    """One API request, already routed: path parameters decoded, body not yet read."""

    store: Store
    pusher: Pusher
    project: str
    params: dict[str, str]
    query: Mapping[str, str]
    headers: Mapping[str, str]
    read_body: Callable[[], Awaitable[bytes]]
    max_message_size: int
    _body: bytes | None = field(default=None, repr=False)

    async def body(self) -> bytes:
        if self._body is None:
            self._body = await self.read_body()
        return self._body

    async def json(self) -> Any:
        return parse_json(await self.body())

    def queue(self) -> QueueState:
        return self.store.queue(self.project, self.params["q"])

    def query_int(self, name: str, *, default: int, low: int, high: int) -> int:
        raw = self.query.get(name)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            raise bad(f"{name} must be an integer") from None
        if not low <= value <= high:
            raise bad(f"{name} must be {low}..{high}")
        return value


Handler = Callable[[Call], Awaitable[Result]]
DELETED = {"msg": "Deleted"}
UPDATED = {"msg": "Updated"}


# --------------------------------------------------------------------------- queues


async def list_queues(c: Call) -> Result:
    per_page = c.query_int("per_page", default=30, low=1, high=100)
    queues = c.store.list_queues(
        c.project, prefix=c.query.get("prefix"), previous=c.query.get("previous"), per_page=per_page
    )
    return 200, {"queues": [{"project_id": q.project, "name": q.name} for q in queues]}


async def get_queue(c: Call) -> Result:
    return 200, {"queue": c.queue().to_json()}


async def create_queue(c: Call) -> Result:
    patch = parse_queue_patch(await c.json())
    q = c.store.put_queue(c.project, c.params["q"], patch)
    await c.store.durable()
    return 200, {"queue": q.to_json(counts=False)}


async def update_queue(c: Call) -> Result:
    patch = parse_queue_patch(await c.json())
    q = c.store.update_queue(c.project, c.params["q"], patch)
    await c.store.durable()
    return 200, {"queue": q.to_json()}


async def delete_queue(c: Call) -> Result:
    c.store.delete_queue(c.project, c.params["q"])
    await c.store.durable()
    return 200, DELETED


# --------------------------------------------------------------------------- messages


async def post_messages(c: Call) -> Result:
    items = parse_messages(await c.json(), max_size=c.max_message_size)
    ids = c.store.post(c.project, c.params["q"], items)
    await c.store.durable()
    return 201, {"ids": ids, "msg": "Messages put on queue."}


async def webhook(c: Call) -> Result:
    raw = await c.body()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise bad("webhook body must be UTF-8 text") from None
    if len(raw) > c.max_message_size:
        raise bad(f"message body is larger than {c.max_message_size} bytes")
    message = NewMessage(text, 0.0, webhook_headers(c.headers))
    ids = c.store.post(c.project, c.params["q"], [message])
    await c.store.durable()
    return 201, {"id": ids[0], "ids": ids, "msg": "Message put on queue."}


async def reserve(c: Call) -> Result:
    q = c.queue()
    body = obj(await c.json())
    n = integer(body, "n", low=1, high=100) or 1
    timeout = number(body, "timeout", low=0, high=86_400, strict_low=True)
    wait = number(body, "wait", low=0, high=30) or 0.0
    delete = body.get("delete", False)
    if not isinstance(delete, bool):
        raise bad("delete must be true or false")
    messages = c.store.reserve(q, n=n, timeout=timeout, delete=delete)
    if not messages and wait > 0:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while not messages and (left := deadline - loop.time()) > 0:
            try:
                await asyncio.wait_for(c.store.waiter(q), left)
            except TimeoutError:
                break
            messages = c.store.reserve(q, n=n, timeout=timeout, delete=delete)
    await c.store.durable()
    return 200, {"messages": [m.to_json(reservation=not delete) for m in messages]}


async def peek(c: Call) -> Result:
    n = c.query_int("n", default=1, low=1, high=100)
    return 200, {"messages": [m.to_json() for m in c.store.peek(c.queue(), n)]}


async def get_message(c: Call) -> Result:
    m = c.store.message(c.queue(), c.params["id"], finished=True)
    return 200, {"message": m.to_json()}


async def delete_message(c: Call) -> Result:
    q = c.queue()
    body = obj(await c.json())
    reservation_id = optional_str(body, "reservation_id") or None
    subscriber = optional_str(body, "subscriber_name") or None
    if subscriber is not None:
        if reservation_id is None:
            raise bad("reservation_id is required with subscriber_name")
        c.pusher.ack(q, c.params["id"], reservation_id, subscriber)
    else:
        c.store.delete(q, c.params["id"], reservation_id)
    await c.store.durable()
    return 200, DELETED


async def delete_many(c: Call) -> Result:
    """``{"ids": [...]}`` deletes those; no body, ``{}`` or an empty list clears the queue."""
    q = c.queue()
    body = obj(await c.json())
    ids = body.get("ids")
    if ids is None or ids == []:
        c.store.clear(q)
        await c.store.durable()
        return 200, {"msg": "Cleared"}
    if not isinstance(ids, list):
        raise bad("ids must be an array")
    if len(ids) > 100:
        raise bad("at most 100 ids per request")
    items: list[tuple[str, str | None]] = []
    for item in ids:
        if isinstance(item, str) and item:
            items.append((item, None))
            continue
        entry = obj(item, "each id")
        mid = optional_str(entry, "id")
        if not mid:
            raise bad("each entry of ids needs an id")
        items.append((mid, optional_str(entry, "reservation_id") or None))
    c.store.delete_many(q, items)
    await c.store.durable()
    return 200, DELETED


async def touch(c: Call) -> Result:
    body = obj(await c.json())
    reservation_id = _reservation_id(body)
    timeout = number(body, "timeout", low=0, high=86_400, strict_low=True)
    new = c.store.touch(c.queue(), c.params["id"], reservation_id, timeout)
    await c.store.durable()
    return 200, {"reservation_id": new, "msg": "Touched"}


async def release(c: Call) -> Result:
    body = obj(await c.json())
    reservation_id = _reservation_id(body)
    delay = number(body, "delay", low=0, high=604_800) or 0.0
    c.store.release(c.queue(), c.params["id"], reservation_id, delay)
    await c.store.durable()
    return 200, {"msg": "Released"}


def _reservation_id(body: Mapping[str, Any]) -> str:
    reservation_id = optional_str(body, "reservation_id")
    if not reservation_id:
        raise bad("reservation_id is required")
    return reservation_id


# --------------------------------------------------------------------------- push


async def push_statuses(c: Call) -> Result:
    q = c.queue()
    m = c.store.message(q, c.params["id"], finished=True)
    return 200, {"subscribers": [ps.to_json(q.retries_delay) for ps in m.push or ()]}


async def ack_url(c: Call) -> Result:
    """``DELETE`` on an ``Iron-Subscriber-Message-Url``: no token and no body needed."""
    reservation_id = c.query.get("reservation_id")
    if not reservation_id:
        raw = await c.body()
        reservation_id = optional_str(obj(parse_json(raw)), "reservation_id") if raw else None
    if not reservation_id:
        raise bad("reservation_id is required (query parameter or JSON body)")
    c.pusher.ack(c.queue(), c.params["id"], reservation_id, c.params["name"])
    await c.store.durable()
    return 200, DELETED


async def add_subscribers(c: Call) -> Result:
    subs = parse_subscribers(obj(await c.json()).get("subscribers"))
    c.store.add_subscribers(c.project, c.params["q"], subs)
    await c.store.durable()
    return 200, UPDATED


async def replace_subscribers(c: Call) -> Result:
    subs = parse_subscribers(obj(await c.json()).get("subscribers"))
    c.store.replace_subscribers(c.project, c.params["q"], subs)
    await c.store.durable()
    return 200, UPDATED


async def remove_subscribers(c: Call) -> Result:
    subs = parse_subscribers(obj(await c.json()).get("subscribers"), names_only=True)
    c.store.remove_subscribers(c.project, c.params["q"], subs)
    await c.store.durable()
    return 200, UPDATED


# --------------------------------------------------------------------------- alerts


async def add_alerts(c: Call) -> Result:  # v1-style POST /alerts; v3 clients PATCH the queue
    alerts = parse_alerts(obj(await c.json()).get("alerts"))
    c.store.update_queue(c.project, c.params["q"], QueuePatch(alerts=alerts))
    await c.store.durable()
    return 200, {"msg": "Alerts were added."}


async def replace_alerts(c: Call) -> Result:
    alerts = parse_alerts(obj(await c.json()).get("alerts"), allow_empty=True)
    c.store.replace_alerts(c.project, c.params["q"], alerts)
    await c.store.durable()
    return 200, {"msg": "Alerts were replaced."}


async def remove_alerts(c: Call) -> Result:
    items = obj(await c.json()).get("alerts")
    if not isinstance(items, list) or not items:
        raise bad("alerts must be a non-empty array of {id}")
    ids = [optional_str(obj(a, "each alert"), "id") for a in items]
    if not all(ids):
        raise bad("each alert to remove needs an id")
    c.store.remove_alerts(c.project, c.params["q"], [i for i in ids if i])
    await c.store.durable()
    return 200, {"msg": "Alerts were deleted."}


async def remove_alert(c: Call) -> Result:
    c.store.remove_alerts(c.project, c.params["q"], [c.params["aid"]])
    await c.store.durable()
    return 200, {"msg": "Alerts were deleted."}


# --------------------------------------------------------------------------- routing table

# (method, path segments after /3/projects/{p}; "{x}" captures a percent-decoded segment)
ROUTES: list[tuple[str, tuple[str, ...], Handler]] = [
    ("GET", ("queues",), list_queues),
    ("GET", ("queues", "{q}"), get_queue),
    ("PUT", ("queues", "{q}"), create_queue),
    ("PATCH", ("queues", "{q}"), update_queue),
    ("DELETE", ("queues", "{q}"), delete_queue),
    ("POST", ("queues", "{q}", "messages"), post_messages),
    ("GET", ("queues", "{q}", "messages"), peek),
    ("DELETE", ("queues", "{q}", "messages"), delete_many),
    ("POST", ("queues", "{q}", "webhook"), webhook),
    ("POST", ("queues", "{q}", "messages", "webhook"), webhook),
    ("POST", ("queues", "{q}", "reservations"), reserve),
    ("GET", ("queues", "{q}", "messages", "{id}"), get_message),
    ("DELETE", ("queues", "{q}", "messages", "{id}"), delete_message),
    ("POST", ("queues", "{q}", "messages", "{id}", "touch"), touch),
    ("POST", ("queues", "{q}", "messages", "{id}", "release"), release),
    ("GET", ("queues", "{q}", "messages", "{id}", "subscribers"), push_statuses),
    ("DELETE", ("queues", "{q}", "messages", "{id}", "subscribers", "{name}"), ack_url),
    ("POST", ("queues", "{q}", "subscribers"), add_subscribers),
    ("PUT", ("queues", "{q}", "subscribers"), replace_subscribers),
    ("DELETE", ("queues", "{q}", "subscribers"), remove_subscribers),
    ("POST", ("queues", "{q}", "alerts"), add_alerts),
    ("PUT", ("queues", "{q}", "alerts"), replace_alerts),
    ("DELETE", ("queues", "{q}", "alerts"), remove_alerts),
    ("DELETE", ("queues", "{q}", "alerts", "{aid}"), remove_alert),
]

# Routes reachable without the token: the ack URL carries its own credential.
NO_AUTH: frozenset[Handler] = frozenset({ack_url})


def match(method: str, segments: list[str]) -> tuple[Handler, dict[str, str]] | APIError | None:
    """The handler and parameters for a request; an APIError 405 when only the method is wrong."""
    path_known = False
    for route_method, pattern, handler in ROUTES:
        if len(pattern) != len(segments):
            continue
        params: dict[str, str] = {}
        for part, seg in zip(pattern, segments, strict=True):
            if part.startswith("{"):
                if not seg:
                    break
                params[part[1:-1]] = seg
            elif part != seg:
                break
        else:
            if route_method == method:
                return handler, params
            path_known = True
    return APIError(405, "Method not allowed") if path_known else None
