"""IronMQ v3 clients: :class:`AsyncIronMQ` / :class:`AsyncQueue` and the sync twins
:class:`IronMQ` / :class:`Queue`.

Both twins drive the same sans-I/O operations (:mod:`ironpush.client._operations`), so a method
cannot behave differently between them, and both send the same wire requests through a
transport (:mod:`ironpush.client._transports`); only the I/O differs (``httpx.Client`` vs an
async transport, ``time.sleep`` vs ``anyio.sleep``)::

    from ironpush import IronMQ, AsyncIronMQ

    with IronMQ() as mq:                      # settings from iron.json / IRON_* env / arguments
        ids = mq.queue("orders").post("hello", {"body": "later", "delay": 30})

    async with AsyncIronMQ() as mq:
        for message in await mq.queue("orders").reserve(max=10, wait=5):
            ...
            await mq.queue("orders").delete(message.id, message.reservation_id)

Connections are kept alive and reused, every call has a timeout, and idempotent calls are
retried on 503/504 and connection errors with jittered exponential backoff (posting messages is
never retried once it may have reached the server, so it cannot duplicate messages).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Unpack

import httpx

from .. import _tracing
from .._errors import TransportError
from .._protocol import Delivery, Reply, Request
from . import _operations as ops
from ._base import ClientBase, ClientOptions, T, push_summary
from ._models import Message, PushStatus, QueueInfo, Subscriber
from ._operations import AlertInput, MessageInput, Op, SubscriberInput
from ._tracing import sent, start_send
from ._transports import HTTPFailure, HttpxSyncTransport, SyncTransport


class IronMQ(ClientBase):
    """Synchronous IronMQ v3 client (the twin of :class:`AsyncIronMQ`).

    Configuration is read like the official clients (``~/.iron.json``, ``IRON_*`` and
    ``IRON_MQ_*`` env, ``./iron.json``, ``config_file=``, then these keyword arguments); set
    ``IRONMQ_EMULATOR_HOST`` to point every client at a local dev server::

        mq = IronMQ(project_id="...", token="...")            # or IronMQ() with iron.json
        mq = IronMQ(cloud="http://127.0.0.1:8080")            # one URL sets scheme/host/port
        print(mq.queues())

    The options (``timeout``, ``retry``, ``max_connections``...) are
    :class:`~ironpush.client._base.ClientOptions`, the same for both twins. ``transport`` is
    the test seam: an httpx transport (``httpx.MockTransport``; for the async twin also
    ``httpx.ASGITransport``) or an ironpush :class:`~ironpush.client._transports.SyncTransport`.
    """

    def __init__(
        self,
        *,
        transport: SyncTransport | httpx.BaseTransport | None = None,
        **options: Unpack[ClientOptions],
    ) -> None:
        super().__init__(**options)
        self.transport: SyncTransport
        if transport is None or isinstance(transport, httpx.BaseTransport):
            self.transport = HttpxSyncTransport(
                transport=transport, max_connections=self.max_connections
            )
        else:
            self.transport = transport

    # --- driving operations ---------------------------------------------------------------

    def run(self, op: Op[T]) -> T:
        """Drive a sans-I/O operation from :mod:`ironpush.client._operations` to its result."""
        return self._drive(op, self._send)

    @staticmethod
    def _drive(op: Op[T], exchange: Callable[[Request], Reply]) -> T:
        try:
            request = next(op)
            while True:
                try:
                    reply = exchange(request)
                except TransportError as exc:  # the operation may handle it (a relayed ack)
                    request = op.throw(exc)
                else:
                    request = op.send(reply)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]

    def _send(self, request: Request) -> Reply:
        login = self._keystone_op()
        if login is not None:
            # Keystone login: no token yet, so one plain exchange per step (no login recursion).
            self._store_keystone(self._drive(login, self._exchange))
        attempt = 0
        while True:
            attempt += 1
            try:
                reply = self._exchange(request)
            except TransportError as exc:
                delay = self._retry_delay(request, attempt, None, unsent=exc.unsent)
                if delay is None:
                    raise
                time.sleep(delay)
                continue
            delay = self._retry_delay(request, attempt, reply.status_code)
            if delay is None:
                return reply
            time.sleep(delay)

    def _exchange(self, request: Request) -> Reply:
        """One attempt, no retries: the transport boundary where I/O errors are translated."""
        try:
            response = self.transport.send(self._wire(request))
        except HTTPFailure as exc:
            raise self._transport_error(request, exc) from exc
        return self._reply(response)

    # --- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        """Close the pooled connections."""
        self.transport.close()

    def __enter__(self) -> IronMQ:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- project-level calls ---------------------------------------------------------------

    def queues(
        self, *, prefix: str | None = None, per_page: int | None = None, previous: str | None = None
    ) -> list[str]:
        """One page of queue names, alphabetical; ``previous`` = last name of the prior page."""
        return self.run(ops.list_queues(prefix=prefix, per_page=per_page, previous=previous))

    def iter_queues(self, *, prefix: str | None = None, per_page: int = 100) -> Iterator[str]:
        """Every queue name, following pages until the last one."""
        previous: str | None = None
        while True:
            page = self.queues(prefix=prefix, per_page=per_page, previous=previous)
            yield from page
            if len(page) < per_page:
                return
            previous = page[-1]

    def queue(self, name: str) -> Queue:
        """A handle on the queue ``name`` (no call is made)."""
        return Queue(self, name)

    def create_queue(self, name: str, **options: Any) -> QueueInfo:
        """Create a queue (``PUT``). Options: ``type`` (pull/multicast/unicast),
        ``message_timeout``, ``message_expiration``, ``subscribers``, ``retries``,
        ``retries_delay``, ``error_queue``, ``dead_letter``."""
        return self.run(ops.create_queue(name, **options))

    def update_queue(self, name: str, **options: Any) -> QueueInfo:
        """Change a queue's settings (``PATCH``); the type of a v3 queue cannot change."""
        return self.run(ops.update_queue(name, **options))

    def delete_queue(self, name: str) -> None:
        """Delete a queue and its messages."""
        self.run(ops.delete_queue(name))

    def acknowledge(self, queue: str, delivery: Delivery) -> None:
        """Acknowledge a push that was answered with 202 (v3 API delete or legacy ack URL).

        Raises :class:`~ironpush._errors.ReservationExpired` (403) or
        :class:`~ironpush._errors.NotFound` (404) when the reservation is gone. A worker holding
        an ack token acknowledges through :mod:`ironpush.integrations.acks` instead (the newest
        reservation, from the receivers' store)::

            mq.acknowledge("orders", Delivery("6295...", "r-1", subscriber_name="billing"))
        """
        self.run(ops.acknowledge(queue, delivery, api_origin=self.settings.origin))

    def acknowledge_all(self, acks: Sequence[tuple[str, Delivery]]) -> list[Exception | None]:
        """Acknowledge several pushes answered with 202, one after the other, each as
        :meth:`acknowledge` does; each ack's error, or None, in order (the async twin sends
        them together)::

            errors = mq.acknowledge_all([("orders", first), ("orders", second)])
        """
        errors: list[Exception | None] = []
        for queue, delivery in acks:
            try:
                self.acknowledge(queue, delivery)
            except Exception as exc:
                errors.append(exc)
            else:
                errors.append(None)
        return errors


class Queue:
    """A queue on an :class:`IronMQ` client; every method is one call (or a short sequence).

    Method names follow the original ``iron_mq`` binding; where v3 needs more (a reservation id
    to touch, release or delete a reserved message), the extra arguments are required.
    """

    def __init__(self, client: IronMQ, name: str) -> None:
        self.client = client
        self.name = name

    def __repr__(self) -> str:
        return f"Queue({self.name!r})"

    def _run(self, op: Op[T]) -> T:
        return self.client.run(op)

    # --- queue information ---------------------------------------------------------------

    def info(self) -> QueueInfo:
        """Everything the server says about the queue."""
        return self._run(ops.get_queue(self.name))

    def size(self) -> int:
        """Messages currently on the queue."""
        return self.info().size or 0

    def total_messages(self) -> int:
        """Messages ever posted to the queue."""
        return self.info().total_messages or 0

    def id(self) -> str | None:
        """The queue id, or ``None`` (v3 queues have no id in the documented shape)."""
        return self.info().id

    def create(self, **options: Any) -> QueueInfo:
        """Create this queue; see :meth:`IronMQ.create_queue` for the options."""
        return self._run(ops.create_queue(self.name, **options))

    def delete_queue(self) -> None:
        """Delete the queue and all its messages."""
        self._run(ops.delete_queue(self.name))

    def clear(self) -> None:
        """Remove every message, reserved ones included."""
        self._run(ops.clear(self.name))

    # --- messages ------------------------------------------------------------------------

    def post(self, *messages: MessageInput) -> list[str]:
        """Post messages; returns their ids in order.

        A message is a str, UTF-8 bytes, or ``{"body", "delay"?, "push_headers"?}``. Inside
        an active OpenTelemetry span, a ``send <queue>`` span's ``traceparent`` is added to
        each message's ``push_headers`` where there is room (see
        :mod:`ironpush.client._tracing`; ``IronMQ(tracing=False)`` turns it off).
        """
        client = self.client
        sending = start_send(client.settings, self.name, messages) if client.tracing else None
        if sending is None:
            return self._run(ops.post(self.name, messages))
        span, carried = sending  # a "send" span: its context rides in the push_headers
        with _tracing.activate(span):
            ids = self._run(ops.post(self.name, carried))
            sent(span, ids)
        return ids

    def reserve(
        self,
        max: int = 1,
        timeout: float | None = None,
        wait: float | None = None,
        delete: bool = False,
    ) -> list[Message]:
        """Reserve up to ``max`` messages for ``timeout`` seconds, long-polling up to ``wait``."""
        return self._run(ops.reserve(self.name, n=max, timeout=timeout, wait=wait, delete=delete))

    get = reserve  # the original binding's name

    def get_message_by_id(self, message_id: str) -> Message:
        """One message by id (informational: use :meth:`reserve` to process messages)."""
        return self._run(ops.get_message(self.name, message_id))

    def peek(self, max: int = 1) -> list[Message]:
        """Up to ``max`` messages without reserving them."""
        return self._run(ops.peek(self.name, n=max))

    def touch(self, message_id: str, reservation_id: str, timeout: float | None = None) -> str:
        """Extend a reservation; returns the **new** reservation id to use from now on."""
        return self._run(ops.touch(self.name, message_id, reservation_id, timeout=timeout))

    def release(self, message_id: str, reservation_id: str, delay: float = 0) -> None:
        """Put a reserved message back on the queue, visible again after ``delay`` seconds."""
        self._run(ops.release(self.name, message_id, reservation_id, delay=delay))

    def delete(
        self,
        message_id: str,
        reservation_id: str | None = None,
        subscriber_name: str | None = None,
    ) -> None:
        """Delete a message (reserved ones need their ``reservation_id``).

        With ``subscriber_name`` this acknowledges a push that was answered with 202.
        """
        self._run(
            ops.delete(
                self.name,
                message_id,
                reservation_id=reservation_id,
                subscriber_name=subscriber_name,
            )
        )

    def delete_multiple(self, *ids: str | Message | Mapping[str, Any]) -> None:
        """Delete several messages: ids, reserved :class:`Message` objects or
        ``{"id", "reservation_id"}`` dicts. An empty call raises instead of clearing the queue."""
        self._run(ops.delete_many(self.name, ids))

    # --- push queues ---------------------------------------------------------------------

    def update(
        self,
        *,
        subscribers: Iterable[SubscriberInput] | None = None,
        push_type: str | None = None,
        **options: Any,
    ) -> QueueInfo:
        """Make or adjust a push queue, creating it when it does not exist.

        ``subscribers`` replaces the set (URL strings get a stable derived name); other options:
        ``retries``, ``retries_delay``, ``error_queue``, ``message_timeout``,
        ``message_expiration``. Changing the type of an existing queue raises
        :class:`~ironpush._errors.ValidationError` (v3 fixes it at creation).
        """
        return self._run(
            ops.update_push_queue(
                self.name, subscribers=subscribers, push_type=push_type, **options
            )
        )

    def subscribers(self) -> tuple[Subscriber, ...]:
        """The queue's current subscribers."""
        return self.info().subscribers

    def add_subscribers(self, *subscribers: SubscriberInput) -> None:
        """Add subscribers (a subscriber with an existing name is updated)."""
        self._run(ops.add_subscribers(self.name, subscribers))

    def replace_subscribers(self, *subscribers: SubscriberInput) -> None:
        """Replace every subscriber with these."""
        self._run(ops.replace_subscribers(self.name, subscribers))

    def remove_subscribers(self, *names_or_urls: str | Subscriber) -> None:
        """Remove subscribers, by name or by URL."""
        self._run(ops.remove_subscribers(self.name, names_or_urls))

    def get_message_push_statuses(self, message_id: str) -> list[PushStatus]:
        """Each subscriber's delivery status for one pushed message."""
        return self._run(ops.push_statuses(self.name, message_id))

    def delete_message_push_status(
        self, message_id: str, reservation_id: str, subscriber_name: str
    ) -> None:
        """Acknowledge a push answered with 202 (v3: needs the push's reservation id)."""
        self.delete(message_id, reservation_id, subscriber_name)

    def wait_for_push(
        self, message_id: str, *, timeout: float = 30.0, interval: float = 0.05
    ) -> list[PushStatus]:
        """Poll push statuses until every subscriber is done (``deleted`` or ``error``).

        Raises ``TimeoutError`` with the last statuses when ``timeout`` passes first.
        """
        deadline = time.monotonic() + timeout
        while True:
            statuses = self.get_message_push_statuses(message_id)
            if statuses and all(s.done for s in statuses):
                return statuses
            if time.monotonic() >= deadline:
                raise TimeoutError(f"push of {message_id} not finished: {push_summary(statuses)}")
            time.sleep(interval)

    # --- alerts ----------------------------------------------------------------------------

    def add_alerts(self, *alerts: AlertInput) -> None:
        """Add alerts (pull queues; hosted v3 support is uncertain)."""
        self._run(ops.add_alerts(self.name, alerts))

    def update_alerts(self, *alerts: AlertInput) -> None:
        """Replace every alert with these (no alerts removes them all)."""
        self._run(ops.replace_alerts(self.name, alerts))

    def remove_alerts(self, *alert_ids: str) -> None:
        """Remove alerts by id."""
        self._run(ops.remove_alerts(self.name, alert_ids))

    def remove_alert(self, alert_id: str) -> None:
        """Remove one alert by id."""
        self._run(ops.remove_alert(self.name, alert_id))
