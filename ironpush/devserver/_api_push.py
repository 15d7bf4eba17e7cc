"""The push-queue endpoints: push statuses, acknowledgements, subscribers and alerts.

Routed by :data:`ironpush.devserver._api.ROUTES`, like the queue and message endpoints; each
takes a :class:`~ironpush.devserver._api.Call` and returns ``(status, json)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._entities import MessageState
from ._queues import timed_out
from ._validation import (
    QueuePatch,
    bad,
    obj,
    optional_str,
    parse_alert_ids,
    parse_alerts,
    parse_json,
    parse_subscribers,
)

if TYPE_CHECKING:
    from ..client._models import Subscriber
    from ._api import Call

__all__ = [
    "DELETED",
    "UPDATED",
    "ack_url",
    "add_alerts",
    "add_subscribers",
    "only_reservation",
    "push_statuses",
    "remove_alert",
    "remove_alerts",
    "remove_subscribers",
    "replace_alerts",
    "replace_subscribers",
]

Result = tuple[int, Any]
DELETED = {"msg": "Deleted"}
UPDATED = {"msg": "Updated"}


def only_reservation(m: MessageState, name: str) -> str:
    """The one live 202 reservation of subscriber ``name`` (an ack by name alone)."""
    named = [ps for ps in m.push or () if ps.name == name]
    if named and all(ps.status == "deleted" for ps in named):
        return named[0].reservation_id or ""  # already acknowledged: the repeat is harmless
    live = [
        ps.reservation_id
        for ps in named
        if ps.status == "reserved" and not ps.in_flight and ps.reservation_id
    ]
    if len(live) > 1:
        raise bad(
            f"subscriber {name!r} holds {len(live)} reservations of this message "
            "(subscribers share the name): give reservation_id"
        )
    if live:
        return live[0]
    if named:
        raise timed_out()
    return ""  # no push to that subscriber: the ack answers 404


# --------------------------------------------------------------------------- push


async def push_statuses(c: Call) -> Result:
    q = c.queue()
    m = c.store.message(q, c.params["id"], finished=True)
    return 200, {"subscribers": [ps.to_json(q.retries_delay) for ps in m.push or ()]}


async def ack_url(c: Call) -> Result:
    """``DELETE`` on an ``Iron-Subscriber-Message-Url``: no body needed.

    Like every call it needs the token when the server requires one: the ``Authorization``
    header, or the URL's own ``?oauth=<token>`` (the query credential of the v1 reference).
    """
    q = c.queue()
    reservation_id = c.query.get("reservation_id")
    if not reservation_id:
        raw = await c.body()
        reservation_id = optional_str(obj(parse_json(raw)), "reservation_id") if raw else None
    if not reservation_id:
        raise bad("reservation_id is required (query parameter or JSON body)")
    c.pusher.ack(q, c.params["id"], reservation_id, c.params["name"], via="url")
    await c.store.durable()
    return 200, DELETED


async def _subscribers(c: Call, *, names_only: bool = False) -> list[Subscriber]:
    """The body's subscribers, once the push queue is known to exist (a 404 comes first)."""
    c.store.push_queue(c.project, c.params["q"])
    return parse_subscribers(obj(await c.json()).get("subscribers"), names_only=names_only)


async def add_subscribers(c: Call) -> Result:
    c.store.add_subscribers(c.project, c.params["q"], await _subscribers(c))
    await c.store.durable()
    return 200, UPDATED


async def replace_subscribers(c: Call) -> Result:
    c.store.replace_subscribers(c.project, c.params["q"], await _subscribers(c))
    await c.store.durable()
    return 200, UPDATED


async def remove_subscribers(c: Call) -> Result:
    subs = await _subscribers(c, names_only=True)
    c.store.remove_subscribers(c.project, c.params["q"], subs)
    await c.store.durable()
    return 200, UPDATED


# --------------------------------------------------------------------------- alerts


async def add_alerts(c: Call) -> Result:  # v1-style POST /alerts; v3 clients PATCH the queue
    c.queue()
    alerts = parse_alerts(obj(await c.json()).get("alerts"))
    c.store.update_queue(c.project, c.params["q"], QueuePatch(alerts=alerts))
    await c.store.durable()
    return 200, {"msg": "Alerts were added."}


async def replace_alerts(c: Call) -> Result:
    c.queue()
    alerts = parse_alerts(obj(await c.json()).get("alerts"), allow_empty=True)
    c.store.replace_alerts(c.project, c.params["q"], alerts)
    await c.store.durable()
    return 200, {"msg": "Alerts were replaced."}


async def remove_alerts(c: Call) -> Result:
    c.queue()
    ids = parse_alert_ids(await c.json())
    c.store.remove_alerts(c.project, c.params["q"], ids)
    await c.store.durable()
    return 200, {"msg": "Alerts were deleted."}


async def remove_alert(c: Call) -> Result:
    c.store.remove_alerts(c.project, c.params["q"], [c.params["aid"]])
    await c.store.durable()
    return 200, {"msg": "Alerts were deleted."}
