"""The async twin: :class:`AsyncIronMQ` and :class:`AsyncQueue`.

Same names, arguments and results as :mod:`ironpush.client`; both drive the operations in
:mod:`ironpush.client._operations` and send through a transport (:mod:`.transports`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Iterable,
    Mapping,
    Sequence,
)
from typing import Any, Literal, Unpack

import anyio
import httpx

from .. import _json, _tracing
from .._errors import TransportError, ValidationError
from .._protocol import Delivery, Reply, Request
from . import _operations as ops
from ._base import ClientBase, ClientOptions, T, push_summary
from ._models import Message, PushStatus, QueueInfo, Subscriber
from ._operations import AlertInput, MessageInput, Op, SubscriberInput
from ._tracing import sent, start_send
from ._transports import (
    AsyncTransport,
    HTTPFailure,
    HttpxTransport,
    LeanTransport,
    Response,
    WireBatch,
)


class AsyncIronMQ(ClientBase):
    """Asynchronous IronMQ v3 client (the twin of :class:`IronMQ`).

    Same options (:class:`~ironpush.client._base.ClientOptions`) and methods as
    :class:`IronMQ`, as coroutines::

        async with AsyncIronMQ() as mq:
            await mq.queue("orders").post("hello")

    Calls go through ``transport``: an ironpush
    :class:`~ironpush.client._transports.AsyncTransport` (``MockTransport`` in tests,
    ``LeanTransport``), or an httpx transport (``httpx.MockTransport``,
    ``httpx.ASGITransport``), used through ``httpx.AsyncClient``. Without one, ``backend``
    chooses: ``"httpx"`` (the default) or ``"lean"``, ironpush's own HTTP/1.1 client
    (:class:`~ironpush.client._transports.LeanTransport`): several times less CPU per call,
    which a busy receiver's ack outbox needs; it ignores ``max_connections`` and proxy
    environment variables, uses one total deadline per call (connect + read timeouts), and
    ``APIError.response`` is ``None``.
    """

    def __init__(
        self,
        *,
        transport: AsyncTransport | httpx.AsyncBaseTransport | None = None,
        backend: Literal["httpx", "lean"] = "httpx",
        **options: Unpack[ClientOptions],
    ) -> None:
        super().__init__(**options)
        self.transport: AsyncTransport = _transport(transport, backend, self.max_connections)

    def run(self, op: Op[T]) -> Coroutine[Any, Any, T]:
        """Drive a sans-I/O operation from :mod:`ironpush.client._operations` to its result
        (await it). The driving coroutine itself, not one more around it: an outbox acks
        every deferred push through here."""
        return self._drive(op, self._send)

    @staticmethod
    async def _drive(
        op: Op[T], exchange: Callable[[Request], Awaitable[Reply]], request: Request | None = None
    ) -> T:
        try:
            if request is None:  # else the operation is under way: ``request`` is its next
                request = next(op)
            while True:
                try:
                    reply = await exchange(request)
                except TransportError as exc:  # the operation may handle it (a relayed ack)
                    request = op.throw(exc)
                else:
                    request = op.send(reply)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]

    async def _send(self, request: Request, answer: Response | HTTPFailure | None = None) -> Reply:
        """``request``'s reply, retried as the policy says; ``answer``: its first attempt's,
        already sent (:meth:`acknowledge_all`)."""
        login = self._keystone_op()
        if login is not None:
            # Keystone login: no token yet, so one plain exchange per step (no login recursion).
            self._store_keystone(await self._drive(login, self._exchange))
        attempt = 0
        while True:
            attempt += 1
            try:
                if answer is None:
                    reply = await self._exchange(request)
                else:  # the first attempt's answer; the next attempt is an exchange
                    first, answer = answer, None
                    reply = self._answered(request, first)
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
        try:
            response = await self.transport.send(self._wire(request))
        except HTTPFailure as exc:
            raise self._transport_error(request, exc) from exc
        return self._reply(response)

    def _answered(self, request: Request, answer: Response | HTTPFailure) -> Reply:
        """The reply of an attempt sent already (a failure raises, as :meth:`_exchange`)."""
        if isinstance(answer, HTTPFailure):
            raise self._transport_error(request, answer) from answer
        return self._reply(answer)

    async def _resume(self, op: Op[None], request: Request, answer: Response | HTTPFailure) -> None:
        """Drive ``op`` on from ``request``, whose first attempt came back with ``answer``."""
        try:
            try:
                reply = await self._send(request, answer)
            except TransportError as exc:
                request = op.throw(exc)
            else:
                request = op.send(reply)
        except StopIteration:
            return
        await self._drive(op, self._send, request)

    async def aclose(self) -> None:
        """Close the pooled connections."""
        await self.transport.aclose()

    async def __aenter__(self) -> AsyncIronMQ:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
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
        await self.run(ops.acknowledge(queue, delivery, api_origin=self.settings.origin))

    async def acknowledge_all(self, acks: Sequence[tuple[str, Delivery]]) -> list[Exception | None]:
        """Acknowledge several pushes answered with 202, each as :meth:`acknowledge` does,
        their first requests sent together: the lean transport (``backend="lean"``) pipelines
        them, one write per connection, with no coroutine per ack; others send them
        concurrently. An ack whose answer calls for more (a retry, a relayed push's second
        ``DELETE``) goes on alone. Each ack's error (what :meth:`acknowledge` would raise), or
        None, in order::

            errors = await mq.acknowledge_all([("orders", first), ("orders", second)])
        """
        send_all = getattr(self.transport, "send_all", None)
        if send_all is None or self._keystone_op() is not None:
            calls = (self.acknowledge(queue, delivery) for queue, delivery in acks)
            return list(await asyncio.gather(*map(_error_of, calls)))
        errors: list[Exception | None] = [None] * len(acks)
        by_queue: dict[str, list[int]] = {}
        alone: list[int] = []  # legacy, unackable or a bad queue name: after the batches
        for index, (queue, delivery) in enumerate(acks):
            if ops.v3_ackable(delivery):
                by_queue.setdefault(queue, []).append(index)
            else:
                alone.append(index)
        batches: list[tuple[list[int], Request, WireBatch]] = []
        for queue, indexes in by_queue.items():
            try:
                batches.append((indexes, *self._ack_batch(queue, [acks[i][1] for i in indexes])))
            except ValidationError:  # the queue's name: each ack raises it, alone
                alone.extend(indexes)
        if len(batches) == 1:  # the usual case: acks of one queue
            answered = [await send_all(batches[0][2])]
        else:
            answered = list(await asyncio.gather(*(send_all(batch) for *_, batch in batches)))
        rest: dict[int, Awaitable[None]] = {i: self.acknowledge(*acks[i]) for i in alone}
        should_retry = self.retry.should_retry
        for (indexes, first, _), answers in zip(batches, answered, strict=True):
            for index, answer in zip(indexes, answers, strict=True):
                if isinstance(answer, Response):
                    status = answer.status_code
                    # (Every request of a batch retries as its first would.)
                    if status < 400 and not should_retry(first, 1, status):
                        continue  # acknowledged: the common case, no operation of its own
                # The operation takes it from here: its first request went in the batch.
                queue, delivery = acks[index]
                op = ops.acknowledge(queue, delivery, api_origin=self.settings.origin)
                request = next(op)
                rest[index] = self._resume(op, request, answer)
        if rest:
            ended = await asyncio.gather(*map(_error_of, rest.values()))
            for index, error in zip(rest, ended, strict=True):
                errors[index] = error
        return errors

    def _ack_batch(self, queue: str, deliveries: list[Delivery]) -> tuple[Request, WireBatch]:
        """The first ack's request, and the batch of every ack of ``queue``: the first one's
        wire form (as :meth:`acknowledge` sends it), the others differing from it only in
        the path's last segment and the body (``ops.ack_item``), encoded as ``_wire`` does."""
        first = ops.ack_request(queue, deliveries[0])
        assert first is not None  # the caller took v3 ackable deliveries only
        wire = self._wire(first)
        cut = wire.url.rfind("/") + 1  # (the message id is escaped: no "/" in it)
        items = [(wire.url[cut:], wire.body)]
        dumps = _json.dumps
        for delivery in deliveries[1:]:
            leaf, body = ops.ack_item(delivery)
            items.append((leaf, dumps(body)))
        return first, WireBatch(wire.method, wire.url[:cut], wire.headers, items, wire.timeout)


async def _error_of(call: Awaitable[None]) -> Exception | None:
    try:
        await call
    except Exception as exc:
        return exc
    return None


def _transport(
    transport: AsyncTransport | httpx.AsyncBaseTransport | None,
    backend: str,
    max_connections: int,
) -> AsyncTransport:
    if backend not in ("httpx", "lean"):
        raise ValueError("backend must be 'httpx' or 'lean'")
    if isinstance(transport, httpx.AsyncBaseTransport):
        if backend == "lean":
            raise ValueError(
                "backend='lean' does not send through httpx transports: pass an ironpush "
                "transport (ironpush.client._transports.MockTransport) instead"
            )
        return HttpxTransport(transport=transport, max_connections=max_connections)
    if transport is not None:
        return transport
    if backend == "lean":
        return LeanTransport()
    return HttpxTransport(max_connections=max_connections)


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
        client = self.client
        sending = start_send(client.settings, self.name, messages) if client.tracing else None
        if sending is None:
            return await self._run(ops.post(self.name, messages))
        span, carried = sending  # a "send" span: its context rides in the push_headers
        with _tracing.activate(span):
            ids = await self._run(ops.post(self.name, carried))
            sent(span, ids)
        return ids

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
