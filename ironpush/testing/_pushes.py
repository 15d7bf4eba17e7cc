"""Building pushes: the headers, body and query IronMQ would send to one route of a router."""

from __future__ import annotations

import itertools
import json
import time
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx

from .._protocol import Delivery, build_push_headers, message_url
from .._signing import push_secret
from ..receiver._router import PushRouter
from ..receiver._routes import Route

_ids = itertools.count(1)
#: The default of optional arguments whose ``None`` means something (e.g. ``secret=None``).
DEFAULT: Any = object()
FAKE_IRONMQ = "http://ironmq.test"
FAKE_PROJECT = "test"


def new_message_id() -> str:
    """A realistic-looking numeric message id, unique per process and run."""
    return f"{int(time.time() * 1000)}{next(_ids):06d}"


def build_push(
    router: PushRouter,
    path: str,
    body: str | bytes | Any = b"",
    *,
    message_id: str | None = None,
    reservation_id: str | None = None,
    subscriber: str | None = None,
    secret: str | None = DEFAULT,
    secret_in: str = "header",  # noqa: S107 - where the secret goes, not a secret
    legacy: bool = False,
    headers: Mapping[str, str] | None = None,
    ironmq_url: str = FAKE_IRONMQ,
) -> tuple[dict[str, str], bytes, str]:
    """The headers, body and query string IronMQ would send to ``path`` of ``router``.

    ``body`` may be bytes, text, or any JSON-able value (dumped). The push secret is computed
    from the router's keys unless ``secret`` is given (``None`` leaves it out). ``legacy=True``
    builds a v1/v2 push (``Iron-Subscriber-Message-Id`` and ``-Url``, no reservation);
    ``headers`` are applied last (to test malformed pushes)::

        headers, content, query = build_push(router, "/orders", {"id": 1})
    """
    route = _route(router, path)
    message_id = message_id or new_message_id()
    name = subscriber or route.subscriber
    if legacy:
        url = f"{ironmq_url}/1/projects/{FAKE_PROJECT}/queues/{quote(route.queue, safe='')}"
        delivery = Delivery(
            message_id=message_id,
            subscriber_message_id=message_id,
            subscriber_message_url=f"{url}/messages/{quote(message_id, safe='')}",
            flavour="legacy",
        )
    else:
        reservation = reservation_id or uuid.uuid4().hex[:16]
        delivery = Delivery(
            message_id=message_id,
            reservation_id=reservation,
            subscriber_name=name,
            subscriber_message_url=message_url(
                ironmq_url, FAKE_PROJECT, route.queue, message_id, name, reservation
            ),
        )
    if secret is DEFAULT:
        secret = push_secret(route.queue, route.subscriber, router.keys) if router.keys else None
    secret_headers: dict[str, str] = {}
    query = ""
    if secret is not None and secret_in == "header":
        secret_headers[router.secret_header] = secret
    elif secret is not None:
        query = str(httpx.QueryParams({router.secret_param: secret}))
    out = build_push_headers(delivery, subscriber_headers=secret_headers)
    out.update(headers or {})
    return out, _content(body), query


def _content(body: str | bytes | Any) -> bytes:
    if isinstance(body, str):
        return body.encode()
    if isinstance(body, bytes | bytearray):
        return bytes(body)
    return json.dumps(body).encode()


def _route(router: PushRouter, path: str) -> Route:
    for route in router.routes:
        if route.path == (path.rstrip("/") or "/"):
            return route
    raise ValueError(f"the router has no route {path!r}; routes: {[r.path for r in router.routes]}")
