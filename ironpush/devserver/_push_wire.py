"""One push try on the wire: the headers a subscriber receives, the POST, and its answer.

Per try, the subscriber receives the message body as posted, with ``User-Agent: IronMQ Pusherd``
and ``Content-Type: text/plain; encoding=utf-8`` (both overridable by the subscriber's
``headers``), then the subscriber's headers, the message's ``push_headers`` (these win over
subscriber headers of the same name) and last the pusher's own ``Iron-Message-Id``,
``Iron-Reservation-Id`` (new on every try), ``Iron-Subscriber-Name`` and
``Iron-Subscriber-Message-Url``. The ack URL is
``{base}/3/projects/{p}/queues/{q}/messages/{id}/subscribers/{name}?reservation_id={rid}``;
``DELETE`` on it acknowledges a 202 with no body and no token (the reservation id, unguessable and
valid for ``retries_delay`` seconds, is the credential).

Redirects are not followed; a connection error or no answer within the push timeout is an
:class:`Outcome` without a status code. ``ironmq://`` and ``ironworker://`` subscribers go
through :mod:`.fanout` instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from .._protocol import Delivery, build_push_headers
from ..client._lean import HTTPFailure, LeanHTTPClient
from . import _fanout as fanout
from ._entities import MessageState, PushState, QueueState
from ._state import Store

__all__ = ["PUSH_ERROR_BODY", "Outcome", "send_try"]

# Only the start of a subscriber's answer is kept (it becomes the push status' message).
PUSH_ERROR_BODY = 1024


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one try got back: a status code (None: no HTTP answer) and the failure message."""

    code: int | None  # None: no HTTP answer (connection error, timeout)
    msg: str | None
    answer: str = ""  # the start of the answer's body, whatever the status
    headers: dict[str, str] = field(default_factory=dict)  # what was sent


async def send_try(
    m: MessageState,
    q: QueueState,
    ps: PushState,
    *,
    ack_url: str,
    sub_headers: Mapping[str, str],
    store: Store,
    client: LeanHTTPClient,
    timeout: float,
) -> Outcome:
    """POST ``m`` to the subscriber of ``ps`` (its reservation id already set) and classify it."""
    if not ps.url.startswith(("http:", "https:")):  # ironmq://, ironworker:// (fanout.py)
        code, msg = await fanout.deliver(ps.url, m, q, store=store, client=client, timeout=timeout)
        return Outcome(code, msg, msg or "")
    assert ps.reservation_id is not None
    delivery = Delivery(m.id, ps.reservation_id, ps.name, ack_url)
    headers = build_push_headers(
        delivery, subscriber_headers=sub_headers, push_headers=m.push_headers
    )
    try:
        response = await client.request(
            "POST",
            ps.url,
            headers=list(headers.items()),
            body=m.body.encode(),
            timeout=timeout,
            max_body=PUSH_ERROR_BODY,
            truncate=True,
        )
    except HTTPFailure as exc:
        return Outcome(None, str(exc), headers=headers)
    text = response.body.decode("utf-8", "replace").strip()[:200]
    if response.status in (200, 202):
        return Outcome(response.status, None, text, headers)
    return Outcome(response.status, text or f"HTTP {response.status}", text, headers)
