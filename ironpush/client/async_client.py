"""The async twin: :class:`AsyncIronMQ` and :class:`AsyncQueue` over ``httpx.AsyncClient``.

Same names, arguments and results as :mod:`ironpush.client`; both drive the operations in
:mod:`ironpush.client.operations`.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, Literal
from urllib.parse import urlencode

import anyio
import httpx

from ..config import Settings
from ..errors import TransportError
from ..protocol import Delivery, Reply, Request
from . import operations as ops
from .base import (
    ClientBase,
    T,
    config_kwargs,
    load_ack_token,
    parse_reply,
    push_summary,
    unsent,
)
from .lean import HTTPFailure, LeanHTTPClient
from .models import Message, PushStatus, QueueInfo, Subscriber
from .operations import AlertInput, MessageInput, Op, SubscriberInput
from .retry import RetryPolicy

__all__ = ["AsyncIronMQ", "AsyncQueue"]


class AsyncIronMQ(ClientBase):
    """Asynchronous IronMQ v3 client over ``httpx.AsyncClient`` (the twin of :class:`IronMQ`).

    Same arguments and methods as :class:`IronMQ`, as coroutines::

        async with AsyncIronMQ() as mq:
            await mq.queue("orders").post("hello")

    ``backend="lean"`` sends the calls over :class:`~ironpush.client.lean.LeanHTTPClient` instead
    of httpx: several times less CPU per call, which is what a busy receiver's ack outbox
    needs. It ignores ``transport``, ``max_connections`` and proxy environment variables, uses
    one total deadline per call (connect + read timeouts), and ``APIError.response`` is
    ``None``.
    """

    def __init__(
        self,
        *,
        project_id: str | None = None,
        token: str | None = None,
        host: str | None = None,
        protocol: str | None = None,
        port: int | None = None,
        api_version: int | None = None,
        path_prefix: str | None = None,
        cloud: str | None = None,
        keystone: Mapping[str, str] | None = None,
        config_file: str | None = None,
        secret_keys: Sequence[str] | None = None,
        settings: Settings | None = None,
        timeout: float | httpx.Timeout | None = None,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        max_connections: int = 20,
        backend: Literal["httpx", "lean"] = "httpx",
    ) -> None:
        config = config_kwargs(
            project_id=project_id,
            token=token,
            host=host,
            protocol=protocol,
            port=port,
            api_version=api_version,
            path_prefix=path_prefix,
            cloud=cloud,
            keystone=keystone,
            config_file=config_file,
            secret_keys=secret_keys,
        )
        super().__init__(settings=settings, timeout=timeout, retry=retry, config=config)
        limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        )
        self._http = httpx.AsyncClient(transport=transport, limits=limits, follow_redirects=False)
        if backend not in ("httpx", "lean"):
            raise ValueError("backend must be 'httpx' or 'lean'")
        self._lean = LeanHTTPClient() if backend == "lean" else None

    async def run(self, op: Op[T]) -> T:
        """Drive a sans-I/O operation from :mod:`ironpush.client.operations` to its result."""
        try:
            request = next(op)
            while True:
                request = op.send(await self._send(request))
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]

    async def _send(self, request: Request) -> Reply:
        login = self._keystone_op()
        if login is not None:
            self._store_keystone(await self._drive_plain(login))
        attempt = 0
        while True:
            attempt += 1
            try:
                reply = await self._exchange(request)
            except TransportError as exc:
                delay = self._retry_delay(request, attempt, None, unsent=exc.unsent)
                if delay is None:
                    raise
                await anyio.sleep(delay)
                continue
            delay = self._retry_delay(request, attempt, reply.status_code)
            if delay is None:
                return reply
            await anyio.sleep(delay)

    async def _exchange(self, request: Request) -> Reply:
        """One attempt, no retries: the transport boundary where I/O errors are translated."""
        if self._lean is not None:
            return await self._exchange_lean(self._lean, request)
        try:
            response = await self._http.send(self._build(self._http, request))
        except httpx.TransportError as exc:
            raise self._transport_error(request, exc, unsent=unsent(exc)) from exc
        return self._reply(response)

    async def _exchange_lean(self, lean: LeanHTTPClient, request: Request) -> Reply:
        url = self._url(request)
        if request.params:
            url += "?" + urlencode(request.params)
        headers = self._headers(request, url)
        body = b""
        if request.json is not None:
            body = json.dumps(request.json).encode()
            headers["Content-Type"] = "application/json"
        timeout = self._timeout_for(request)
        try:
            response = await lean.request(
                request.method,
                url,
                headers=list(headers.items()),
                body=body,
                timeout=(timeout.connect or 0.0) + (timeout.read or 30.0),
                resend_stale=request.idempotent,
            )
        except HTTPFailure as exc:
            raise self._transport_error(request, exc, unsent=exc.unsent) from exc
        raw = {k.decode("latin-1"): v.decode("latin-1") for k, v in response.headers}
        return parse_reply(response.status, response.body, raw, None)

    async def _drive_plain(self, op: Op[T]) -> T:
        # Keystone login: no token yet, so no recursion through _keystone_op().
        try:
            request = next(op)
            while True:
                request = op.send(await self._exchange(request))
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]

    async def aclose(self) -> None:
        """Close the pooled connections."""
        await self._http.aclose()
        if self._lean is not None:
            self._lean.close()

    async def __aenter__(self) -> AsyncIronMQ:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def queues(
        self, *, prefix: str | None = None, per_page: int | None = None, previous: str | None = None
    ) -> list[str]:
        """One page of queue names, alphabetical; ``previous`` = last name of the prior page."""
        return await self.run(ops.list_queues(prefix=prefix, per_page=per_page, previous=previous))

    async def iter_queues(
        self, *, prefix: str | None = None, per_page: int = 100
    ) -> AsyncIterator[str]:
        """Every queue name, following pages until the last one."""
        previous: str | None = None
        while True:
            page = await self.queues(prefix=prefix, per_page=per_page, previous=previous)
            for name in page:
                yield name
            if len(page) < per_page:
                return
            previous = page[-1]

    def queue(self, name: str) -> AsyncQueue:
        """A handle on the queue ``name`` (no call is made)."""
        return AsyncQueue(self, name)

    async def create_queue(self, name: str, **options: Any) -> QueueInfo:
        """Create a queue (``PUT``); options as :meth:`IronMQ.create_queue`."""
        return await self.run(ops.create_queue(name, **options))

    async def update_queue(self, name: str, **options: Any) -> QueueInfo:
        """Change a queue's settings (``PATCH``); the type of a v3 queue cannot change."""
        return await self.run(ops.update_queue(name, **options))

    async def delete_queue(self, name: str) -> None:
        """Delete a queue and its messages."""
        await self.run(ops.delete_queue(name))

    async def acknowledge(self, queue: str, delivery: Delivery) -> None:
        """Acknowledge a push that was answered with 202; see :meth:`IronMQ.acknowledge`."""
        await self.run(ops.acknowledge(queue, delivery))

    async def ack(self, token: str, *, max_age: float | None = None) -> None:
        """Verify an ack token and acknowledge its push; see :meth:`IronMQ.ack`."""
        queue, delivery = load_ack_token(self.settings, token, max_age)
        await self.acknowledge(queue, delivery)


class AsyncQueue:
    """A queue on an :class:`AsyncIronMQ` client; the async twin of :class:`Queue`."""

    def __init__(self, client: AsyncIronMQ, name: str) -> None:
        self.client = client
        self.name = name

    def __repr__(self) -> str:
        return f"AsyncQueue({self.name!r})"

    async def _run(self, op: Op[T]) -> T:
        return await self.client.run(op)

    async def info(self) -> QueueInfo:
        """Everything the server says about the queue."""
        return await self._run(ops.get_queue(self.name))

    async def size(self) -> int:
        """Messages currently on the queue."""
        return (await self.info()).size or 0

    async def total_messages(self) -> int:
        """Messages ever posted to the queue."""
        return (await self.info()).total_messages or 0

    async def id(self) -> str | None:
        """The queue id, or ``None`` (v3 queues have no id in the documented shape)."""
        return (await self.info()).id

    async def create(self, **options: Any) -> QueueInfo:
        """Create this queue; see :meth:`IronMQ.create_queue` for the options."""
        return await self._run(ops.create_queue(self.name, **options))

    async def delete_queue(self) -> None:
        """Delete the queue and all its messages."""
        await self._run(ops.delete_queue(self.name))

    async def clear(self) -> None:
        """Remove every message, reserved ones included."""
        await self._run(ops.clear(self.name))

    async def post(self, *messages: MessageInput) -> list[str]:
        """Post messages; see :meth:`Queue.post`."""
        return await self._run(ops.post(self.name, messages))

    async def reserve(
        self,
        max: int = 1,
        timeout: float | None = None,
        wait: float | None = None,
        delete: bool = False,
    ) -> list[Message]:
        """Reserve up to ``max`` messages; see :meth:`Queue.reserve`."""
        return await self._run(
            ops.reserve(self.name, n=max, timeout=timeout, wait=wait, delete=delete)
        )

    get = reserve

    async def get_message_by_id(self, message_id: str) -> Message:
        """One message by id (informational)."""
        return await self._run(ops.get_message(self.name, message_id))

    async def peek(self, max: int = 1) -> list[Message]:
        """Up to ``max`` messages without reserving them."""
        return await self._run(ops.peek(self.name, n=max))

    async def touch(
        self, message_id: str, reservation_id: str, timeout: float | None = None
    ) -> str:
        """Extend a reservation; returns the **new** reservation id."""
        return await self._run(ops.touch(self.name, message_id, reservation_id, timeout=timeout))

    async def release(self, message_id: str, reservation_id: str, delay: float = 0) -> None:
        """Put a reserved message back on the queue after ``delay`` seconds."""
        await self._run(ops.release(self.name, message_id, reservation_id, delay=delay))

    async def delete(
        self,
        message_id: str,
        reservation_id: str | None = None,
        subscriber_name: str | None = None,
    ) -> None:
        """Delete a message, or acknowledge a 202 push with ``subscriber_name``."""
        await self._run(
            ops.delete(
                self.name,
                message_id,
                reservation_id=reservation_id,
                subscriber_name=subscriber_name,
            )
        )

    async def delete_multiple(self, *ids: str | Message | Mapping[str, Any]) -> None:
        """Delete several messages; an empty call raises instead of clearing the queue."""
        await self._run(ops.delete_many(self.name, ids))

    async def update(
        self,
        *,
        subscribers: Iterable[SubscriberInput] | None = None,
        push_type: str | None = None,
        **options: Any,
    ) -> QueueInfo:
        """Make or adjust a push queue, creating it when missing; see :meth:`Queue.update`."""
        return await self._run(
            ops.update_push_queue(
                self.name, subscribers=subscribers, push_type=push_type, **options
            )
        )

    async def subscribers(self) -> tuple[Subscriber, ...]:
        """The queue's current subscribers."""
        return (await self.info()).subscribers

    async def add_subscribers(self, *subscribers: SubscriberInput) -> None:
        """Add subscribers (a subscriber with an existing name is updated)."""
        await self._run(ops.add_subscribers(self.name, subscribers))

    async def replace_subscribers(self, *subscribers: SubscriberInput) -> None:
        """Replace every subscriber with these."""
        await self._run(ops.replace_subscribers(self.name, subscribers))

    async def remove_subscribers(self, *names_or_urls: str | Subscriber) -> None:
        """Remove subscribers, by name or by URL."""
        await self._run(ops.remove_subscribers(self.name, names_or_urls))

    async def get_message_push_statuses(self, message_id: str) -> list[PushStatus]:
        """Each subscriber's delivery status for one pushed message."""
        return await self._run(ops.push_statuses(self.name, message_id))

    async def delete_message_push_status(
        self, message_id: str, reservation_id: str, subscriber_name: str
    ) -> None:
        """Acknowledge a push answered with 202."""
        await self.delete(message_id, reservation_id, subscriber_name)

    async def wait_for_push(
        self, message_id: str, *, timeout: float = 30.0, interval: float = 0.05
    ) -> list[PushStatus]:
        """Poll push statuses until every subscriber is done; see :meth:`Queue.wait_for_push`."""
        deadline = time.monotonic() + timeout
        while True:
            statuses = await self.get_message_push_statuses(message_id)
            if statuses and all(s.done for s in statuses):
                return statuses
            if time.monotonic() >= deadline:
                raise TimeoutError(f"push of {message_id} not finished: {push_summary(statuses)}")
            await anyio.sleep(interval)

    async def add_alerts(self, *alerts: AlertInput) -> None:
        """Add alerts (pull queues; hosted v3 support is uncertain)."""
        await self._run(ops.add_alerts(self.name, alerts))

    async def update_alerts(self, *alerts: AlertInput) -> None:
        """Replace every alert with these."""
        await self._run(ops.replace_alerts(self.name, alerts))

    async def remove_alerts(self, *alert_ids: str) -> None:
        """Remove alerts by id."""
        await self._run(ops.remove_alerts(self.name, alert_ids))

    async def remove_alert(self, alert_id: str) -> None:
        """Remove one alert by id."""
        await self._run(ops.remove_alert(self.name, alert_id))
