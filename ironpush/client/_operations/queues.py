"""Queue operations: list, get, create, update (push settings too), delete, and alerts."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..._errors import NotFound, ValidationError
from ..._protocol import PUSH_TYPES, QUEUE_TYPES, Request
from .._models import Alert, QueueInfo
from .base import (
    AlertInput,
    Op,
    SubscriberInput,
    alerts_json,
    call,
    list_at,
    mapping_at,
    number,
    queue_path,
    required,
    seconds,
    subscribers_json,
)


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
        queue["message_timeout"] = seconds(number("message_timeout", message_timeout, low=0))
    if message_expiration is not None:
        queue["message_expiration"] = seconds(
            number("message_expiration", message_expiration, low=0)
        )
    push: dict[str, Any] = {}
    if subscribers is not None:
        push["subscribers"] = subscribers_json(subscribers)
    if retries is not None:
        push["retries"] = int(number("retries", retries, low=0, high=100))
    if retries_delay is not None:
        push["retries_delay"] = seconds(number("retries_delay", retries_delay, low=0))
    if error_queue is not None:
        push["error_queue"] = error_queue
    if push:
        queue["push"] = push
    if dead_letter is not None:
        queue["dead_letter"] = dict(dead_letter)
    return {"queue": queue}


def _queue_info(data: Any, name: str) -> QueueInfo:
    body = mapping_at(data, "queue") or (data if isinstance(data, Mapping) else {})
    info = QueueInfo.from_json(body)
    return info if info.name else QueueInfo.from_json({**body, "name": name})


def list_queues(
    *, prefix: str | None = None, per_page: int | None = None, previous: str | None = None
) -> Op[list[str]]:
    """``GET /queues``: one page of queue names, alphabetical."""
    params: dict[str, str] = {}
    if prefix:
        params["prefix"] = prefix
    if per_page is not None:
        params["per_page"] = str(int(number("per_page", per_page, low=1)))
    if previous:
        params["previous"] = previous
    data = yield from call(Request("GET", "/queues", params=params or None))
    return [str(q["name"]) for q in list_at(data, "queues") if isinstance(q, Mapping)]


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
    yield from call(Request("DELETE", queue_path(name, "alerts", required("alert id", alert_id))))
