"""The simulator's stand-in for IronMQ: an ``httpx.MockTransport`` handler that records the
acks and posts a router makes and answers them like IronMQ."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import httpx

from ._pushes import new_message_id


@dataclass(frozen=True, slots=True)
class RecordedAck:
    """An acknowledgement the router sent (v3 delete, or ``url`` for a legacy push)."""

    queue: str | None
    message_id: str | None
    reservation_id: str | None
    subscriber_name: str | None
    url: str
    status_code: int


@dataclass(frozen=True, slots=True)
class RecordedPost:
    """A message the router posted (a ``Drop`` to the dead-letter queue)."""

    queue: str
    body: str


class FakeIronMQ:
    """The transport behind the simulator's client: answers acks and posts like IronMQ."""

    def __init__(self, ack_status: int | Callable[[RecordedAck], int]) -> None:
        self.ack_status = ack_status
        self.acks: list[RecordedAck] = []
        self.posts: list[RecordedPost] = []
        # Set (and replaced) on every request; asyncio's Event binds to no loop until awaited.
        self.changed = asyncio.Event()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        try:
            return self._answer(request)
        finally:
            self.changed.set()
            self.changed = asyncio.Event()

    def _answer(self, request: httpx.Request) -> httpx.Response:
        parts = [unquote(p) for p in urlsplit(str(request.url)).path.split("/")]
        queue = parts[parts.index("queues") + 1] if "queues" in parts else None
        if request.method == "POST" and parts[-1] == "messages" and queue:
            bodies = json.loads(request.content).get("messages", [])
            self.posts.extend(RecordedPost(queue, str(m.get("body", ""))) for m in bodies)
            ids = [new_message_id() for _ in bodies]
            return httpx.Response(201, json={"ids": ids, "msg": "Messages put on queue."})
        if request.method == "DELETE":
            return self._ack(request, queue, parts)
        return httpx.Response(404, json={"msg": "not simulated"})

    def _ack(self, request: httpx.Request, queue: str | None, parts: list[str]) -> httpx.Response:
        data = json.loads(request.content) if request.content else {}
        message_id = parts[parts.index("messages") + 1] if "messages" in parts else None
        ack = RecordedAck(
            queue=queue,
            message_id=message_id,
            reservation_id=data.get("reservation_id"),
            subscriber_name=data.get("subscriber_name"),
            url=str(request.url),
            status_code=0,
        )
        status = self.ack_status(ack) if callable(self.ack_status) else self.ack_status
        self.acks.append(
            RecordedAck(
                ack.queue, ack.message_id, ack.reservation_id, ack.subscriber_name, ack.url, status
            )
        )
        if status == 200:
            return httpx.Response(200, json={"msg": "Deleted"})
        msg = "Reservation timed out" if status == 403 else "Message not found"
        return httpx.Response(status, json={"msg": msg})
