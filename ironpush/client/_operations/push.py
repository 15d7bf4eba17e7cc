"""Push operations: a push queue's subscribers, push statuses, and acknowledging a 202 push."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

from ..._errors import NotFound, ReservationExpired, TransportError, ValidationError
from ..._protocol import Delivery, Request
from .._models import PushStatus, Subscriber
from .base import (
    Op,
    SubscriberInput,
    call,
    list_at,
    queue_path,
    required,
    segment,
    subscribers_json,
)
from .queues import get_queue


def add_subscribers(name: str, subscribers: Iterable[SubscriberInput]) -> Op[None]:
    body = {"subscribers": subscribers_json(subscribers)}
    yield from call(Request("POST", queue_path(name, "subscribers"), json=body))


def replace_subscribers(name: str, subscribers: Iterable[SubscriberInput]) -> Op[None]:
    body = {"subscribers": subscribers_json(subscribers)}
    yield from call(Request("PUT", queue_path(name, "subscribers"), json=body))


def remove_subscribers(name: str, names_or_urls: Iterable[str | Subscriber]) -> Op[None]:
    """Remove subscribers by name, or by URL (looked up on the queue: v3 removes by name)."""
    wanted = [
        s.name if isinstance(s, Subscriber) else required("subscriber", s) for s in names_or_urls
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
    return [PushStatus.from_json(s) for s in list_at(data, "subscribers") if isinstance(s, Mapping)]


def acknowledge(name: str, delivery: Delivery, *, api_origin: str | None = None) -> Op[None]:
    """Acknowledge a push answered with 202.

    v3: ``DELETE /messages/{id}`` with the delivery's reservation id and subscriber name. When
    IronMQ refuses it (403/404) and the push's ``Iron-Subscriber-Message-Url`` is on another
    origin than ``api_origin`` (the API's), the push was relayed (``ironpush listen``: the id
    is the relay queue's, which this queue does not hold), so the same ``DELETE`` goes to that
    URL, as the v3 push reference allows; the client never sends the token to another origin.
    If that URL does not answer (the relay stopped), IronMQ's refusal is raised.
    Legacy v1/v2: ``DELETE`` on the delivery's ``Iron-Subscriber-Message-Url``, verbatim.
    """
    if delivery.flavour == "legacy":
        if not delivery.subscriber_message_url:
            raise ValidationError(
                "a legacy push without Iron-Subscriber-Message-Url cannot be acked"
            )
        yield from call(Request("DELETE", delivery.subscriber_message_url))
        return
    request = ack_request(name, delivery)
    if request is None:
        raise ValidationError("a v3 push ack needs Iron-Reservation-Id and Iron-Subscriber-Name")
    try:
        yield from call(request)
    except (NotFound, ReservationExpired) as refused:
        url = delivery.subscriber_message_url
        if not url or api_origin is None or _origin(url) in ("", _origin(api_origin)):
            raise
        try:
            yield from call(Request("DELETE", url, json=request.json))
        except TransportError:
            raise refused from None  # the relay is gone: nobody holds the message any more


def ack_request(name: str, delivery: Delivery) -> Request | None:
    """The v3 ack of ``delivery`` on queue ``name`` (:func:`acknowledge`'s first request):
    ``DELETE /messages/{id}`` with its reservation id and subscriber name; None for a legacy
    push or one without those::

        ack_request("orders", Delivery("6295...", "r-1", subscriber_name="billing"))
    """
    if not v3_ackable(delivery):
        return None
    # messages.delete's request, built here: an outbox sends one per deferred push.
    leaf, body = ack_item(delivery)
    return Request("DELETE", messages_dir(name) + leaf, json=body)


def v3_ackable(delivery: Delivery) -> bool:
    """Whether :func:`ack_request` makes a request for ``delivery`` (a v3 push with its
    reservation id and subscriber name)."""
    return bool(
        delivery.flavour != "legacy" and delivery.reservation_id and delivery.subscriber_name
    )


def ack_item(delivery: Delivery) -> tuple[str, dict[str, str | None]]:
    """What tells apart the :func:`ack_request` of ``delivery`` from another's on its queue:
    the path's last segment (its message id, escaped) and the JSON body; the rest of the
    path is :func:`messages_dir`'s::

        ack_item(Delivery("m 1", "r-1", subscriber_name="billing"))
        # ("m%201", {"reservation_id": "r-1", "subscriber_name": "billing"})
    """
    body = {"reservation_id": delivery.reservation_id, "subscriber_name": delivery.subscriber_name}
    return segment(delivery.message_id), body


def messages_dir(name: str) -> str:
    """``/queues/{name}/messages/``, escaped as :func:`queue_path` escapes it (once per queue:
    an outbox acks on a few queues, a call per deferred push)."""
    path = _MESSAGES.get(name)
    if path is None:
        if len(_MESSAGES) >= 1024:  # bounded whatever the queues
            _MESSAGES.clear()
        path = _MESSAGES[name] = queue_path(name, "messages") + "/"
    return path


#: :func:`messages_dir` by queue name.
_MESSAGES: dict[str, str] = {}


def _origin(url: str) -> str:
    """``scheme://host[:port]`` of an http(s) URL, lower-cased; ``""`` for anything else."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return ""
    return f"{parts.scheme}://{parts.netloc}".lower()
