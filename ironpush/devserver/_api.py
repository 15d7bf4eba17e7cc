"""The v3 queue and message endpoints (paths relative to ``/3/projects/{project_id}``).

Request and response shapes follow protocol §2b and what the official clients send (iron-mq
0.9, iron_mq_java, iron_mq_ruby, iron_go3). Every handler takes a :class:`~._call.Call` and
returns ``(status, json)``; an :class:`~ironpush._errors.APIError` raised anywhere becomes
``{"msg": ...}`` with its status. A handler on an existing queue looks the queue up before it
reads the body, so a missing queue is a 404 whatever the body holds. The push-queue endpoints
are :mod:`._api_push`; the table that routes both is :mod:`._routes`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._protocol import MAX_DELAY
from ._call import DELETED, Call, Result
from ._limits import MAX_WAIT
from ._validation import (
    NewMessage,
    bad,
    integer,
    obj,
    optional_str,
    parse_messages,
    parse_queue_patch,
    webhook_headers,
)

# v3 documents no maximum; the Go client's suite asks for 101. Larger asks get 100 (the v1
# maximum) rather than a 400.
MAX_PER_PAGE = 100


# --------------------------------------------------------------------------- queues


async def list_queues(c: Call) -> Result:
    """``{"queues": [{"name"}, ...]}``: names only, as documented (Java's tests assert it)."""
    page = c.query.get("page")
    if page not in (None, "", "0"):
        # v3 dropped page (the docs' Changes list); page=0 is the first page either way, but
        # answering page=2 with the first page would make an old client loop forever.
        raise bad("page is not supported by the v3 API: pass previous=<last name of the page>")
    per_page = c.query_int("per_page", default=30, low=1, high=2**31)
    queues = c.engine.list_queues(
        c.project,
        prefix=c.query.get("prefix"),
        previous=c.query.get("previous"),
        per_page=min(per_page, MAX_PER_PAGE),
    )
    return 200, {"queues": [{"name": q.name} for q in queues]}


async def get_queue(c: Call) -> Result:
    return 200, {"queue": c.queue().to_json()}


async def create_queue(c: Call) -> Result:
    patch = parse_queue_patch(await c.json(), limits=c.engine.limits)
    q = await c.engine.put_queue(c.project, c.name, patch)
    return 200, {"queue": q.to_json(counts=False)}


async def update_queue(c: Call) -> Result:
    c.queue()
    patch = parse_queue_patch(await c.json(), limits=c.engine.limits)
    q = await c.engine.update_queue(c.project, c.name, patch)
    return 200, {"queue": q.to_json()}


async def delete_queue(c: Call) -> Result:
    await c.engine.delete_queue(c.project, c.name)
    return 200, DELETED


# --------------------------------------------------------------------------- messages


async def post_messages(c: Call) -> Result:
    items = parse_messages(await c.json(), limits=c.engine.limits)
    ids = await c.engine.post(c.project, c.name, items)
    return 201, {"ids": ids, "msg": "Messages put on queue."}


async def webhook(c: Call) -> Result:
    raw = await c.body()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise bad("webhook body must be UTF-8 text") from None
    limit = c.engine.limits.max_message_size
    if len(raw) > limit:
        raise bad(f"message body is larger than {limit} bytes")
    message = NewMessage(text, 0.0, webhook_headers(c.headers))
    ids = await c.engine.post(c.project, c.name, [message])
    return 201, {"id": ids[0], "ids": ids, "msg": "Message put on queue."}


async def reserve(c: Call) -> Result:
    q = c.queue()
    body = obj(await c.json())
    n = integer(body, "n", low=1, high=100) or 1
    timeout = c.reservation_timeout(body)
    wait = c.engine.limits.seconds(body, "wait", high=MAX_WAIT) or 0.0
    delete = body.get("delete", False)
    if not isinstance(delete, bool):
        raise bad("delete must be true or false")
    messages = await c.engine.reserve(
        q, n=n, timeout=timeout, delete=delete, wait=wait, gone=c.disconnected
    )
    return 200, {"messages": [m.to_json(reservation=not delete) for m in messages]}


async def peek(c: Call) -> Result:
    n = c.query_int("n", default=1, low=1, high=100)
    return 200, {"messages": [m.to_json() for m in c.engine.peek(c.queue(), n)]}


async def get_message(c: Call) -> Result:
    m = c.engine.message(c.queue(), c.params["id"], finished=True)
    return 200, {"message": m.to_json()}


async def delete_message(c: Call) -> Result:
    """Delete (pull), or acknowledge a 202'd push with ``subscriber_name``.

    ``subscriber_name`` without ``reservation_id`` (the Ruby client's ``Subscriber#delete``)
    acknowledges the one reservation that subscriber holds right now: a push whose reservation
    already ran out (being pushed again, or waiting to be) gets 403 ``Reservation timed out``,
    exactly as a stale reservation id would, and two live reservations under one name (two
    subscribers sharing it) are a 400 asking for the id.
    """
    q = c.queue()
    body = obj(await c.json())
    reservation_id = optional_str(body, "reservation_id") or None
    subscriber = optional_str(body, "subscriber_name") or None
    if subscriber is not None:
        await c.engine.ack(q, c.params["id"], subscriber, reservation_id, via="api")
    else:
        await c.engine.delete(q, c.params["id"], reservation_id)
    return 200, DELETED


async def delete_many(c: Call) -> Result:
    """``{"ids": [...]}`` deletes those; no body or ``{}`` clears the queue.

    An empty or non-array ``ids`` is a 400: a client that built an empty list by mistake must
    not wipe the queue (clearing is ``{}`` only).
    """
    q = c.queue()
    body = obj(await c.json())
    if "ids" not in body:
        await c.engine.clear(q)
        return 200, {"msg": "Cleared"}
    ids = body["ids"]
    if not isinstance(ids, list):
        raise bad("ids must be an array")
    if not ids:
        raise bad("ids must not be empty (to clear the queue, send {})")
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
    await c.engine.delete_many(q, items)
    return 200, DELETED


async def touch(c: Call) -> Result:
    q = c.queue()
    body = obj(await c.json())
    reservation_id = _reservation_id(body)
    timeout = c.reservation_timeout(body)
    new = await c.engine.touch(q, c.params["id"], reservation_id, timeout)
    return 200, {"reservation_id": new, "msg": "Touched"}


async def release(c: Call) -> Result:
    q = c.queue()
    body = obj(await c.json())
    reservation_id = _reservation_id(body)
    delay = c.engine.limits.seconds(body, "delay", high=MAX_DELAY) or 0.0
    await c.engine.release(q, c.params["id"], reservation_id, delay)
    return 200, {"msg": "Released"}


def _reservation_id(body: Mapping[str, Any]) -> str:
    reservation_id = optional_str(body, "reservation_id")
    if not reservation_id:
        raise bad("reservation_id is required")
    return reservation_id
