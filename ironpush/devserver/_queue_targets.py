"""Subscriber URLs that are not HTTP endpoints: ``ironmq://`` queues, ``ironworker://`` tasks.

Here they are parsed and checked; the pusher delivers to them (:mod:`._pusher` posts into a
queue of this server, :mod:`._push_wire` to another server's). The URL forms of the v3
push-queue reference, all accepted and stored as given:

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

from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from .._errors import APIError
from ._masking import shown_url

NO_IRONWORKER = (
    "ironworker:// subscribers cannot be delivered by the dev server (there is no IronWorker "
    "here): use an http(s):// or ironmq:// subscriber to test this queue"
)


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
                raise APIError(400, f"subscriber url {shown_url(url)!r} has no host")
            parts.port  # noqa: B018 (raises ValueError on a bad port)
            return
        if parts.scheme == "ironmq":
            parse_queue_url(url)
            return
    except ValueError as exc:
        raise APIError(400, f"invalid subscriber url {shown_url(url)!r}: {exc}") from None
    if parts.scheme == "ironworker":
        return
    raise APIError(
        400,
        f"unsupported subscriber url scheme {parts.scheme!r} (http, https, ironmq or ironworker)",
    )
