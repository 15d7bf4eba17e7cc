"""Subscribers that are not HTTP endpoints: ``ironmq://`` queues and ``ironworker://`` tasks.

The URL forms of the v3 push-queue reference, all accepted and stored as given:

- ``ironmq:///orders`` — the queue ``orders`` of the same project, on this server;
- ``ironmq://PROJECT:TOKEN@/orders`` — a queue of another project on this server (the token
  is checked when the server requires one; a server serving one ``project_id`` refuses others);
- ``ironmq://PROJECT:TOKEN@HOST[:PORT]/orders`` — a queue on another IronMQ-compatible server,
  delivered with ``POST /3/projects/PROJECT/queues/orders/messages`` (``Authorization: OAuth
  TOKEN``) over **https** when the port is absent or 443 and plain **http** otherwise (another
  dev server on ``127.0.0.1:8081``). Its ``201`` is a delivery (shown as ``200``); anything
  else, or no answer, is a failed try like an HTTP subscriber's;
- ``ironworker://...`` — hosted IronMQ starts an IronWorker task; there is no IronWorker here,
  so every try fails with the message :data:`NO_IRONWORKER`, then retries, ``error`` status
  and the error queue follow as for any failing subscriber.

The message keeps its body and ``push_headers`` in the target queue. ::

    parse_queue_url("ironmq://p2:t0k@127.0.0.1:8081/orders")
    # QueueTarget(project='p2', token='t0k', host='127.0.0.1', port=8081, queue='orders')
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote, urlsplit

from .._errors import APIError
from ..client._lean import HTTPFailure, LeanHTTPClient

if TYPE_CHECKING:
    from ._entities import MessageState, QueueState
    from ._state import Store

__all__ = ["NO_IRONWORKER", "QueueTarget", "check_subscriber_url", "deliver", "parse_queue_url"]

NO_IRONWORKER = (
    "ironworker:// subscribers cannot be delivered by the dev server (there is no IronWorker "
    "here): use an http(s):// or ironmq:// subscriber to test this queue"
)
Result = tuple[int | None, str | None]


@dataclass(frozen=True, slots=True)
class QueueTarget:
    """Where an ``ironmq://`` subscriber delivers (``None``: the pushing queue's own)."""

    project: str | None
    token: str | None = field(repr=False)  # a secret: never in reprs
    host: str | None
    port: int | None
    queue: str

    @property
    def is_local(self) -> bool:
        return self.host is None


def parse_queue_url(url: str) -> QueueTarget:
    """An ``ironmq://`` URL's parts; ``ValueError`` when it names no queue."""
    parts = urlsplit(url)
    if parts.scheme != "ironmq":
        raise ValueError("not an ironmq:// url")
    name = unquote(parts.path.strip("/"))
    if not name:
        raise ValueError("an ironmq:// url names a queue: ironmq:///queue_name")
    project = unquote(parts.username) if parts.username else None
    token = unquote(parts.password) if parts.password else None
    port = parts.port  # ValueError on a bad port
    return QueueTarget(project, token, parts.hostname or None, port, name)


def check_subscriber_url(url: str) -> None:
    """400 unless ``url`` is http(s) with a host, a valid ``ironmq://`` or ``ironworker://``."""
    try:
        parts = urlsplit(url)
        if parts.scheme in ("http", "https"):
            if not parts.hostname:
                raise APIError(400, f"subscriber url {url!r} has no host")
            parts.port  # noqa: B018 (raises ValueError on a bad port)
            return
        if parts.scheme == "ironmq":
            parse_queue_url(url)
            return
    except ValueError as exc:
        raise APIError(400, f"invalid subscriber url {url!r}: {exc}") from None
    if parts.scheme == "ironworker":
        return
    raise APIError(
        400,
        f"unsupported subscriber url scheme {parts.scheme!r} (http, https, ironmq or ironworker)",
    )


async def deliver(
    url: str,
    m: MessageState,
    q: QueueState,
    *,
    store: Store,
    client: LeanHTTPClient,
    timeout: float,
) -> Result:
    """One try to a non-HTTP subscriber: ``(status code or None, failure message or None)``."""
    if url.startswith("ironworker:"):
        return None, NO_IRONWORKER
    target = parse_queue_url(url)
    if target.is_local:
        return _post_here(target, m, q, store)
    return await _post_remote(target, m, q, client, timeout)


def _post_here(target: QueueTarget, m: MessageState, q: QueueState, store: Store) -> Result:
    config = store.config
    project = target.project or q.project
    if project != q.project:
        if config.project_id is not None and project != config.project_id:
            return 404, "Project not found"
        given = (target.token or "").encode()
        if config.token is not None and not hmac.compare_digest(given, config.token.encode()):
            return 401, "Invalid token"
    store.post_internal(project, target.queue, m.body, dict(m.push_headers))
    return 200, None


async def _post_remote(
    target: QueueTarget, m: MessageState, q: QueueState, client: LeanHTTPClient, timeout: float
) -> Result:
    assert target.host is not None
    scheme = "https" if target.port in (None, 443) else "http"
    host = f"[{target.host}]" if ":" in target.host else target.host
    port = f":{target.port}" if target.port is not None else ""
    project = quote(target.project or q.project, safe="")
    url = f"{scheme}://{host}{port}/3/projects/{project}/queues/{quote(target.queue, safe='')}"
    message: dict[str, object] = {"body": m.body}
    if m.push_headers:
        message["push_headers"] = dict(m.push_headers)
    headers = [("Content-Type", "application/json"), ("Accept", "application/json")]
    if target.token:
        headers.append(("Authorization", f"OAuth {target.token}"))
    try:
        response = await client.request(
            "POST",
            url + "/messages",
            headers=headers,
            body=json.dumps({"messages": [message]}).encode(),
            timeout=timeout,
            max_body=1024,
            truncate=True,
        )
    except HTTPFailure as exc:
        return None, str(exc)
    if response.status in (200, 201):
        return 200, None
    text = response.body.decode("utf-8", "replace").strip()[:200]
    return response.status, text or f"HTTP {response.status}"
