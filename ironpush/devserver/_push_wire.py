"""One push try on the wire: the headers a subscriber receives, the POST, and its answer.

Per try, the subscriber receives the message body as posted, with ``User-Agent: IronMQ Pusherd``
and ``Content-Type: text/plain; encoding=utf-8`` (both overridable by the subscriber's
``headers``), then the subscriber's headers, the message's ``push_headers`` (these win over
subscriber headers of the same name) and last the pusher's own ``Iron-Message-Id``,
``Iron-Reservation-Id`` (new on every try), ``Iron-Subscriber-Name`` and
``Iron-Subscriber-Message-Url``. The ack URL is
``{base}/3/projects/{p}/queues/{q}/messages/{id}/subscribers/{name}?reservation_id={rid}``;
``DELETE`` on it acknowledges a 202 with no body (the reservation id, unguessable and valid for
``retries_delay`` seconds, names the delivery; a server started with a token wants it too, as
``Authorization`` or ``&oauth=``: the URL never carries it).

Redirects are not followed; a connection error or no answer within the push timeout is an
:class:`~._records.Outcome` without a status code. An ``ironmq://`` subscriber on another
server gets the message by the v3 API (:func:`post_remote`; see :mod:`._queue_targets`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from urllib.parse import quote

from .._protocol import Delivery, build_push_headers
from ..client._lean import HTTPFailure, LeanHTTPClient
from ._queue_targets import QueueTarget
from ._records import MessageRecord, Outcome, PushRecord

# Only the start of a subscriber's answer is kept (it becomes the push status' message).
PUSH_ERROR_BODY = 1024


async def send_try(
    m: MessageRecord,
    p: PushRecord,
    *,
    ack_url: str,
    sub_headers: Mapping[str, str],
    client: LeanHTTPClient,
    timeout: float,
) -> Outcome:
    """POST ``m`` to the subscriber of ``p`` (its reservation id already set) and classify it."""
    assert p.reservation_id is not None
    delivery = Delivery(m.id, p.reservation_id, p.name, ack_url)
    headers = build_push_headers(
        delivery, subscriber_headers=sub_headers, push_headers=m.push_headers
    )
    try:
        response = await client.request(
            "POST",
            p.url,
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


async def post_remote(
    target: QueueTarget, m: MessageRecord, project: str, client: LeanHTTPClient, timeout: float
) -> Outcome:
    """Deliver ``m`` to a queue of another server (its 201 counts as a 200)."""
    assert target.host is not None
    scheme = "https" if target.port in (None, 443) else "http"
    host = f"[{target.host}]" if ":" in target.host else target.host
    port = f":{target.port}" if target.port is not None else ""
    path = f"/3/projects/{quote(target.project or project, safe='')}/queues/"
    url = f"{scheme}://{host}{port}{path}{quote(target.queue, safe='')}/messages"
    message: dict[str, object] = {"body": m.body}
    if m.push_headers:
        message["push_headers"] = dict(m.push_headers)
    headers = [("Content-Type", "application/json"), ("Accept", "application/json")]
    if target.token:
        headers.append(("Authorization", f"OAuth {target.token}"))
    body = json.dumps({"messages": [message]}).encode()
    try:
        response = await client.request(
            "POST", url, headers=headers, body=body, timeout=timeout, max_body=1024, truncate=True
        )
    except HTTPFailure as exc:
        return Outcome(None, str(exc), str(exc))
    if response.status in (200, 201):
        return Outcome(200, None)
    text = response.body.decode("utf-8", "replace").strip()[:200] or f"HTTP {response.status}"
    return Outcome(response.status, text, text)
