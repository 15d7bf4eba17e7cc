"""The push-queue endpoints: push statuses, acknowledgements, subscribers and alerts.

Routed by :data:`~._routes.ROUTES`, like the queue and message endpoints (:mod:`._api`); each
takes a :class:`~._call.Call` and returns ``(status, json)``.
"""

from __future__ import annotations

from ..client._models import Subscriber
from ._call import DELETED, UPDATED, Call, Result
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

# --------------------------------------------------------------------------- push


async def push_statuses(c: Call) -> Result:
    q = c.queue()
    m = c.engine.message(q, c.params["id"], finished=True)
    return 200, {"subscribers": [p.to_json(q.retries_delay) for p in m.push or ()]}


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
    await c.engine.ack(q, c.params["id"], c.params["name"], reservation_id, via="url")
    return 200, DELETED


async def _subscribers(c: Call, *, names_only: bool = False) -> list[Subscriber]:
    """The body's subscribers, once the push queue is known to exist (a 404 comes first)."""
    c.engine.push_queue(c.project, c.name)
    return parse_subscribers(obj(await c.json()).get("subscribers"), names_only=names_only)


async def add_subscribers(c: Call) -> Result:
    await c.engine.add_subscribers(c.project, c.name, await _subscribers(c))
    return 200, UPDATED


async def replace_subscribers(c: Call) -> Result:
    await c.engine.replace_subscribers(c.project, c.name, await _subscribers(c))
    return 200, UPDATED


async def remove_subscribers(c: Call) -> Result:
    subs = await _subscribers(c, names_only=True)
    await c.engine.remove_subscribers(c.project, c.name, subs)
    return 200, UPDATED


# --------------------------------------------------------------------------- alerts


async def add_alerts(c: Call) -> Result:  # v1-style POST /alerts; v3 clients PATCH the queue
    c.queue()
    alerts = parse_alerts(obj(await c.json()).get("alerts"))
    await c.engine.update_queue(c.project, c.name, QueuePatch(alerts=alerts))
    return 200, {"msg": "Alerts were added."}


async def replace_alerts(c: Call) -> Result:
    c.queue()
    alerts = parse_alerts(obj(await c.json()).get("alerts"), allow_empty=True)
    await c.engine.replace_alerts(c.project, c.name, alerts)
    return 200, {"msg": "Alerts were replaced."}


async def remove_alerts(c: Call) -> Result:
    c.queue()
    ids = parse_alert_ids(await c.json())
    await c.engine.remove_alerts(c.project, c.name, ids)
    return 200, {"msg": "Alerts were deleted."}


async def remove_alert(c: Call) -> Result:
    await c.engine.remove_alerts(c.project, c.name, [c.params["aid"]])
    return 200, {"msg": "Alerts were deleted."}
