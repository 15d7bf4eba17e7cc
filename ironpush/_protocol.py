"""The IronMQ wire protocol, without I/O.

Header names, limits, push-header rules, a push delivery's headers parsed and built (and its
JSON form for stores and ack tokens), the v3 ack URL, the request
and reply values the client exchanges with a server, and the mapping of error statuses to the
exception tree. The client, the dev server and the receiver all use these, so they cannot drift.
See ``shared/reference/ironmq-protocol.md`` for the sources.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal
from urllib.parse import quote

from ._errors import (
    APIError,
    BadRequest,
    NotFound,
    ReservationExpired,
    ServiceUnavailable,
    Unauthorized,
    ValidationError,
)
from ._frozen import slot_init
from ._json import loads as loads_json
from ._redact import redact_url

DEFAULT_HOST = "mq-aws-us-east-1-1.iron.io"
DEFAULT_API_VERSION = 3

# Headers IronMQ's pusher sends to a subscriber (protocol §3.2).
HEADER_MESSAGE_ID = "Iron-Message-Id"
HEADER_RESERVATION_ID = "Iron-Reservation-Id"
HEADER_SUBSCRIBER_NAME = "Iron-Subscriber-Name"
HEADER_SUBSCRIBER_MESSAGE_URL = "Iron-Subscriber-Message-Url"
HEADER_SUBSCRIBER_MESSAGE_ID = "Iron-Subscriber-Message-Id"  # v1/v2 only
PUSHER_USER_AGENT = "IronMQ Pusherd"
PUSH_CONTENT_TYPE = "text/plain; encoding=utf-8"

# Per-message push_headers rules of v3 (protocol §3.2): at most 5, names 1..64 bytes,
# values 1..1024 bytes, and never one of the headers the pusher owns.
MAX_PUSH_HEADERS = 5
MAX_PUSH_HEADER_NAME = 64
MAX_PUSH_HEADER_VALUE = 1024
FORBIDDEN_PUSH_HEADERS = frozenset(
    h.lower()
    for h in (
        "Content-Type",
        "User-Agent",
        HEADER_MESSAGE_ID,
        HEADER_RESERVATION_ID,
        HEADER_SUBSCRIBER_NAME,
        HEADER_SUBSCRIBER_MESSAGE_URL,
    )
)

# Limits of the hosted service (protocol §2b, §3.11), enforced by the dev server and checked by
# the client where a mistake would otherwise cost a round trip.
MAX_MESSAGES_PER_CALL = 100
MAX_DELAY = 604_800
MIN_RETRIES_DELAY_HOSTED = 3
DEFAULT_RETRIES = 3
DEFAULT_RETRIES_DELAY = 60
DEFAULT_MESSAGE_TIMEOUT = 60
DEFAULT_MESSAGE_EXPIRATION = 604_800
PUSH_TYPES = ("multicast", "unicast")
QUEUE_TYPES = ("pull", *PUSH_TYPES)


def _is_token(name: str) -> bool:
    # RFC 9110 token characters: what may legally appear in a header name.
    return bool(name) and all(c.isascii() and (c.isalnum() or c in "!#$%&'*+-.^_`|~") for c in name)


def encodable(text: str) -> bool:
    # Lone surrogates (e.g. from os.fsdecode) cannot be encoded as UTF-8 for the wire.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def validate_push_headers(headers: Any) -> dict[str, str]:
    """Check per-message ``push_headers`` against IronMQ v3's rules and return them as a dict.

    Raises :class:`~ironpush._errors.ValidationError` naming the first rule broken: more than five
    headers, an empty or over-long name or value, a name that is not a valid HTTP token, a value
    with CR/LF (header injection), or a header the pusher owns (``Content-Type``, ``User-Agent``,
    ``Iron-*``).
    """
    if not isinstance(headers, Mapping):
        raise ValidationError("push_headers must be an object of header name to value")
    if len(headers) > MAX_PUSH_HEADERS:
        raise ValidationError(f"at most {MAX_PUSH_HEADERS} push_headers per message")
    out: dict[str, str] = {}
    for name, value in headers.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise ValidationError("push_headers names and values must be strings")
        if not encodable(name) or not encodable(value):
            raise ValidationError(f"push header {name!r} is not valid Unicode text")
        if not name or len(name.encode()) > MAX_PUSH_HEADER_NAME:
            raise ValidationError(f"push header name must be 1..{MAX_PUSH_HEADER_NAME} bytes")
        if not _is_token(name):
            raise ValidationError(f"push header name {name!r} is not a valid HTTP header name")
        if name.lower() in FORBIDDEN_PUSH_HEADERS:
            raise ValidationError(f"push header {name!r} is set by the pusher and cannot be sent")
        if not value or len(value.encode()) > MAX_PUSH_HEADER_VALUE:
            raise ValidationError(
                f"push header {name!r} value must be 1..{MAX_PUSH_HEADER_VALUE} bytes"
            )
        if any(c in value for c in "\r\n\x00"):
            raise ValidationError(f"push header {name!r} value contains a line break")
        out[name] = value
    return out


# --------------------------------------------------------------------------- deliveries


@slot_init
@dataclass(frozen=True, slots=True)
class Delivery:
    """The IronMQ part of a push request's headers.

    ``flavour`` is ``"v3"`` when ``Iron-Reservation-Id``/``Iron-Subscriber-Name`` are present
    (acknowledged with the API delete), ``"legacy"`` for v1/v2 pushes (acknowledged by ``DELETE``
    on ``subscriber_message_url``).
    """

    message_id: str
    reservation_id: str | None = None
    subscriber_name: str | None = None
    subscriber_message_url: str | None = None
    subscriber_message_id: str | None = None
    flavour: Literal["v3", "legacy"] = "v3"


# The slots' own setters: delivery_from_raw sets them without the __init__ call.
_set_message_id, _set_reservation_id, _set_subscriber_name, _set_url, _set_sub_id, _set_flavour = (
    Delivery.__dict__[f.name].__set__ for f in fields(Delivery)
)


# Lower-cased once: parse_delivery runs on every push.
_MESSAGE_ID = HEADER_MESSAGE_ID.lower()
_SUBSCRIBER_MESSAGE_ID = HEADER_SUBSCRIBER_MESSAGE_ID.lower()
_RESERVATION_ID = HEADER_RESERVATION_ID.lower()
_SUBSCRIBER_NAME = HEADER_SUBSCRIBER_NAME.lower()
_SUBSCRIBER_MESSAGE_URL = HEADER_SUBSCRIBER_MESSAGE_URL.lower()
_IRON_NAMES = (
    _MESSAGE_ID,
    _RESERVATION_ID,
    _SUBSCRIBER_NAME,
    _SUBSCRIBER_MESSAGE_URL,
    _SUBSCRIBER_MESSAGE_ID,
)


def parse_delivery(headers: Mapping[str, str]) -> Delivery:
    """Read a push's ``Iron-*`` headers (case-insensitively) into a :class:`Delivery`.

    Raises :class:`~ironpush._errors.ValidationError` when ``Iron-Message-Id`` is missing or empty
    (a legacy push's ``Iron-Subscriber-Message-Id`` is accepted in its place).
    """
    return parse_lowered_delivery({k.lower(): v for k, v in headers.items()})


def parse_lowered_delivery(lowered: Mapping[str, str]) -> Delivery:
    """:func:`parse_delivery` for headers whose names are lower-cased already."""
    return delivery_from_values(
        lowered.get(_MESSAGE_ID, ""),
        lowered.get(_RESERVATION_ID, ""),
        lowered.get(_SUBSCRIBER_NAME, ""),
        lowered.get(_SUBSCRIBER_MESSAGE_URL, ""),
        lowered.get(_SUBSCRIBER_MESSAGE_ID, ""),
    )


def delivery_from_values(
    message_id: str,
    reservation_id: str,
    subscriber_name: str,
    url: str,
    subscriber_message_id: str,
    subscriber: str | None = None,
) -> Delivery:
    """:func:`parse_delivery` from the five ``Iron-*`` header values (``""`` when absent), in
    the order of :class:`Delivery`'s fields; ``subscriber`` is the name of a push that names
    none (a legacy push: the route's)."""
    message_id = message_id.strip()
    sub_msg_id = subscriber_message_id.strip() or None if subscriber_message_id else None
    reservation = reservation_id.strip() or None if reservation_id else None
    name = (subscriber_name.strip() if subscriber_name else "") or subscriber
    sub_url = url.strip() or None if url else None
    if not message_id:
        message_id = sub_msg_id or ""
    if not message_id:
        raise ValidationError(f"push without {HEADER_MESSAGE_ID} header")
    legacy = reservation is None and (sub_msg_id is not None or sub_url is not None)
    return Delivery(
        message_id, reservation, name, sub_url, sub_msg_id, "legacy" if legacy else "v3"
    )


# The Iron-* names as an ASGI server gives them (lower-cased bytes).
_RAW_MESSAGE_ID, _RAW_RESERVATION_ID, _RAW_SUBSCRIBER_NAME, _RAW_URL, _RAW_SUBSCRIBER_MESSAGE_ID = (
    name.encode("latin-1") for name in _IRON_NAMES
)


def delivery_from_raw(headers: Mapping[bytes, bytes], subscriber: str | None = None) -> Delivery:
    """:func:`delivery_from_values` from a push's headers as an ASGI server gives them: names
    lower-cased, values latin-1 bytes (the receiver's one pass over the headers)::

        delivery_from_raw({b"iron-message-id": b"m1"}, "billing")
    """
    # delivery_from_values' rules, written out once more: this runs on every push (a test
    # checks that both functions agree).
    get = headers.get
    raw = get(_RAW_MESSAGE_ID)
    message_id = raw.decode("latin-1").strip() if raw else ""
    raw = get(_RAW_RESERVATION_ID)
    reservation = (raw.decode("latin-1").strip() or None) if raw else None
    raw = get(_RAW_SUBSCRIBER_NAME)
    name = (raw.decode("latin-1").strip() if raw else "") or subscriber
    raw = get(_RAW_URL)
    sub_url = (raw.decode("latin-1").strip() or None) if raw else None
    raw = get(_RAW_SUBSCRIBER_MESSAGE_ID)
    sub_msg_id = (raw.decode("latin-1").strip() or None) if raw else None
    if not message_id:
        message_id = sub_msg_id or ""
        if not message_id:
            raise ValidationError(f"push without {HEADER_MESSAGE_ID} header")
    legacy = reservation is None and (sub_msg_id is not None or sub_url is not None)
    # Delivery.__init__'s work without its call (the type call and its frame cost as much as
    # two of the six slot setters).
    delivery = _new(Delivery)
    _set_message_id(delivery, message_id)
    _set_reservation_id(delivery, reservation)
    _set_subscriber_name(delivery, name)
    _set_url(delivery, sub_url)
    _set_sub_id(delivery, sub_msg_id)
    _set_flavour(delivery, "legacy" if legacy else "v3")
    return delivery


_new = object.__new__


def message_url(
    base_url: str, project_id: str, queue: str, message_id: str, subscriber: str, reservation: str
) -> str:
    """The v3 ``Iron-Subscriber-Message-Url``: ``DELETE`` on it acknowledges this push.

    ::

        message_url("http://127.0.0.1:8080", "p", "orders", "m1", "billing", "r1")
        # http://127.0.0.1:8080/3/projects/p/queues/orders/messages/m1/subscribers/billing?reservation_id=r1
    """
    return (
        f"{base_url.rstrip('/')}/3/projects/{quote(project_id, safe='')}/queues/"
        f"{quote(queue, safe='')}/messages/{quote(message_id, safe='')}/subscribers/"
        f"{quote(subscriber, safe='')}?reservation_id={quote(reservation, safe='')}"
    )


def build_push_headers(
    delivery: Delivery,
    *,
    subscriber_headers: Mapping[str, str] | None = None,
    push_headers: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The headers IronMQ's pusher sends with a push of ``delivery`` (protocol §3.2).

    Order of precedence, as the pusher applies them: the pusher's ``User-Agent`` and
    ``Content-Type``, then the subscriber's custom headers, then the message's ``push_headers``,
    and last the ``Iron-*`` headers of the delivery (which nothing can override). A legacy
    delivery gets the v1/v2 pair ``Iron-Subscriber-Message-Id`` and ``-Url``::

        headers = build_push_headers(Delivery("m1", "r1", "billing", url))
    """
    out = {"User-Agent": PUSHER_USER_AGENT, "Content-Type": PUSH_CONTENT_TYPE}
    out.update(subscriber_headers or {})
    out.update(push_headers or {})
    out[HEADER_MESSAGE_ID] = delivery.message_id
    if delivery.flavour == "legacy":
        out[HEADER_SUBSCRIBER_MESSAGE_ID] = delivery.subscriber_message_id or delivery.message_id
    else:
        if delivery.reservation_id is not None:
            out[HEADER_RESERVATION_ID] = delivery.reservation_id
        if delivery.subscriber_name is not None:
            out[HEADER_SUBSCRIBER_NAME] = delivery.subscriber_name
    if delivery.subscriber_message_url is not None:
        out[HEADER_SUBSCRIBER_MESSAGE_URL] = delivery.subscriber_message_url
    return out


def delivery_to_dict(delivery: Delivery) -> dict[str, str]:
    """A compact JSON-able form of a :class:`Delivery` (unset fields omitted)."""
    out = {"m": delivery.message_id, "f": delivery.flavour}
    if (value := delivery.reservation_id) is not None:
        out["r"] = value
    if (value := delivery.subscriber_name) is not None:
        out["s"] = value
    if (value := delivery.subscriber_message_url) is not None:
        out["u"] = value
    if (value := delivery.subscriber_message_id) is not None:
        out["i"] = value
    return out


def delivery_from_dict(data: Mapping[str, Any]) -> Delivery:
    """The inverse of :func:`delivery_to_dict`; raises ``ValueError`` on a malformed mapping."""
    get = data.get
    message_id, flavour = get("m"), get("f", "v3")
    if not isinstance(message_id, str) or not message_id or flavour not in ("v3", "legacy"):
        raise ValueError("not a delivery")
    optional = (get("r"), get("s"), get("u"), get("i"))
    for value in optional:  # (a loop, not a generator: a store decodes one per outbox item)
        if value is not None and not isinstance(value, str):
            raise ValueError("not a delivery")
    return Delivery(message_id, *optional, flavour="legacy" if flavour == "legacy" else "v3")


_quote_json = json.encoder.encode_basestring_ascii  # the C escaper: 4-5x json.dumps for a str


def delivery_to_json(delivery: Delivery) -> str:
    """The JSON text a store keeps for a delivery (compact keys, see :func:`delivery_to_dict`)::

    delivery_from_json(delivery_to_json(d)) == d

    ``json.dumps(delivery_to_dict(d), separators=(",", ":"))``, written out: a store encodes
    a delivery twice per push (its claim, its completion's comparison), without a dict and a
    generator per call (bench_receiver_stores' instruction counts)."""
    text = f'{{"m":{_quote_json(delivery.message_id)},"f":{_quote_json(delivery.flavour)}'
    if (value := delivery.reservation_id) is not None:
        text = f'{text},"r":{_quote_json(value)}'
    if (value := delivery.subscriber_name) is not None:
        text = f'{text},"s":{_quote_json(value)}'
    if (value := delivery.subscriber_message_url) is not None:
        text = f'{text},"u":{_quote_json(value)}'
    if (value := delivery.subscriber_message_id) is not None:
        text = f'{text},"i":{_quote_json(value)}'
    return text + "}"


def delivery_from_json(text: str | bytes) -> Delivery:
    """The inverse of :func:`delivery_to_json`; raises ``ValueError`` on anything else."""
    data = loads_json(text)  # orjson when installed: a store decodes one per outbox item
    if not isinstance(data, dict):
        raise ValueError("not a delivery")
    return delivery_from_dict(data)


# --------------------------------------------------------------------------- requests


@slot_init
@dataclass(frozen=True, slots=True)
class Request:
    """One API call, relative to the project: ``method`` and ``path`` like ``/queues/a%20b``.

    ``idempotent`` says whether the transport may retry it on 503/504 or a connection error;
    posting messages is never retried blindly. ``read_timeout`` extends the read timeout for
    long polls (reserve with ``wait``).
    """

    method: str
    path: str
    params: Mapping[str, str] | None = None
    json: Any = None
    idempotent: bool = True
    read_timeout: float | None = None


@slot_init
@dataclass(frozen=True, slots=True)
class Reply:
    """A server's answer, reduced to what the parsers need."""

    status_code: int
    data: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    response: Any = field(default=None, repr=False, compare=False)  # the transport's own object


def error_message(data: Any) -> str:
    """The ``msg`` of an error body, or a short rendering of whatever came back."""
    if isinstance(data, Mapping) and data.get("msg") is not None:
        return str(data["msg"])
    if isinstance(data, str) and data.strip():
        return data.strip()[:200]
    return "no message"


def error_for(request: Request, reply: Reply) -> APIError:
    """Build the typed :class:`~ironpush._errors.APIError` for an error reply."""
    msg = error_message(reply.data)
    code = reply.status_code
    cls: type[APIError]
    if code == 400:
        cls = BadRequest
    elif code == 401:
        cls = Unauthorized
    elif code == 404:
        cls = NotFound
    elif code == 403 and "reservation" in msg.lower():
        cls = ReservationExpired
    elif code in (503, 504):
        cls = ServiceUnavailable
    else:
        cls = APIError
    path = redact_url(request.path)  # absolute URLs (legacy acks) may carry credentials
    return cls(code, msg, method=request.method, path=path, response=reply.response)
