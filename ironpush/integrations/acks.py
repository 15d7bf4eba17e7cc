"""Acknowledge a deferred push from any worker: the ack token, the shared store and IronMQ.

A handler hands the push to a job engine with its ``msg.ack_token`` and returns ``Defer()``;
the router answers 202 and holds the message as *external* in its store. The worker, given the
receivers' store (the same ``IRONPUSH_STORE``), their secret keys (``IRONPUSH_SECRET_KEYS``)
and IronMQ credentials, then calls:

- :func:`acknowledge` when the job succeeded: marks the message handled in the store, reads the
  **newest** reservation the receivers recorded (IronMQ pushed again while the job ran? each
  such push got 202 and its reservation replaced the one in the token), and acknowledges that
  one on IronMQ directly. Returns ``"acked"``, ``"late"`` (IronMQ had already given the message
  to a redelivery: the receivers answer it 200 from the store) or ``"done"`` (the store says
  the push was already handled: nothing is sent, so a job that runs twice acks once).
- :func:`release` when the job finally failed: the claim is given up, so the next push (IronMQ
  redelivers after ``retries_delay``) runs the handler again.

These are the router's own ``POST /_ack`` and ``/_release`` (one ack-token path, the same
answers: :class:`AckResult`), with the ack sent by the worker's client instead of the
router's outbox. Async workers (arq, your own asyncio code) settle a block: acknowledged when
it succeeds, released when it raises::

    from ironpush import AsyncIronMQ
    from ironpush.integrations.acks import settle
    from ironpush.receiver.stores import open_store

    mq, store = AsyncIronMQ(), open_store(os.environ["IRONPUSH_STORE"])

    async def render(ctx, token: str, order_id: int) -> None:
        async with settle(token, client=mq, store=store):
            await do_render(order_id)

Sync workers (RQ, Dramatiq, threads, a script) use :class:`PushAcks`, which runs these on an
event loop thread of its own (one per process, recreated after a fork)::

    acks = PushAcks()             # IRONPUSH_STORE, IRONPUSH_SECRET_KEYS, IRON_* from the env
    with acks.settle(token):      # or acks.ack(token) -> "acked" | "late" | "done",
        render(order_id)          #    acks.release(token) -> bool

Without a store, :func:`acknowledge` acks the reservation in the token, which is ``"late"`` when
IronMQ redelivered meanwhile (the job outlived ``retries_delay``); give workers the store.

A finished job's completion is never forgotten: the push is recorded handled in the store
before the ack is sent, and a store that does not answer (down, restarting, a dropped
connection) is retried with backoff until it records it. :func:`acknowledge` retries for up to
``retry_for`` seconds (default 30), then raises :class:`~ironpush._errors.StoreUnavailable` with
nothing sent. :class:`PushAcks` waits ``wait`` seconds, then answers ``"queued"`` and keeps
retrying in its own loop thread until the store records it and the ack is sent; ``pending``
counts those completions, and :meth:`PushAcks.close` (a worker's shutdown) retries them for
``flush_timeout`` seconds more — what is left then is logged as lost (the router's claim ends
after ``Leases.external`` and IronMQ's next push runs the handler again).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from .._protocol import Delivery
from .._signing import Keys
from ..receiver._acks import (
    DEFAULT_COMPLETION_WAIT,
    DEFAULT_RETRY_FOR,
    AckResult,
    TokenAcks,
    client_sender,
    message_key,
)
from ..receiver._completions import Completions
from ..receiver._settings import DEFAULT_DEDUPE_TTL

if TYPE_CHECKING:
    from ..client._async_client import AsyncIronMQ
    from ..receiver.stores._base import Store

__all__ = [
    "DEFAULT_DEDUPE_TTL",
    "AckResult",
    "PushAcks",
    "acknowledge",
    "message_key",
    "newest_delivery",
    "newest_delivery_sync",
    "release",
    "settle",
]

logger = logging.getLogger("ironpush.acks")
T = TypeVar("T")


async def newest_delivery(
    store: Store | None, delivery: Delivery, *, ttl: float = DEFAULT_DEDUPE_TTL
) -> Delivery:
    """Mark the push of ``delivery`` handled in ``store``; the newest delivery, to acknowledge.

    ``delivery`` itself when there is no store (or it does not deduplicate), or when no newer
    push was recorded. (A step of :func:`acknowledge`, which also tells a push handled before.)
    """
    if store is None or not store.dedupes:
        return delivery
    return await store.complete(message_key(delivery), outcome="acked", ttl=ttl, delivery=delivery)


def newest_delivery_sync(
    store: Store, delivery: Delivery, *, ttl: float = DEFAULT_DEDUPE_TTL
) -> Delivery:
    """:func:`newest_delivery` for sync code.

    Runs on this process's ack loop thread, so one store object is always used from one event
    loop (an asyncio Redis or PostgreSQL pool is bound to the loop it first ran on).
    """
    return _loop_thread().call(newest_delivery(store, delivery, ttl=ttl))


async def acknowledge(
    token: str,
    *,
    client: AsyncIronMQ,
    store: Store | None = None,
    max_age: float | None = None,
    ttl: float = DEFAULT_DEDUPE_TTL,
    retry_for: float = DEFAULT_RETRY_FOR,
) -> AckResult:
    """The job of this ack token succeeded: acknowledge its push with the newest reservation.

    ``client`` carries the IronMQ credentials and the secret keys that verify the token
    (``secret_keys=`` or ``IRONPUSH_SECRET_KEYS``); ``store`` is the receivers' store; ``ttl``
    must match the routers' ``Leases.dedupe_ttl``. A store that does not answer is retried for
    up to ``retry_for`` seconds, then :class:`~ironpush._errors.StoreUnavailable` is raised with
    nothing sent. Raises :class:`~ironpush._errors.SignatureError` for a bad or expired token
    (``max_age``, default one day)::

        result = await acknowledge(token, client=mq, store=store)   # "acked", "late", "done"
    """
    acks = TokenAcks(
        keys=client.settings.secret_keys,
        store=store,
        ttl=ttl,
        max_age=max_age,
        retry_for=retry_for,
    )
    return await acks.ack(token, client_sender(client))


async def release(
    token: str,
    *,
    store: Store | None,
    keys: Keys | None = None,
    max_age: float | None = None,
) -> bool:
    """The job of this ack token finally failed: give up its claim so the next push reruns it.

    IronMQ pushes the message again after ``retries_delay`` (the 202's reservation runs out);
    that push then runs the handler again (``msg.attempt`` + 1). ``keys`` default to
    ``IRONPUSH_SECRET_KEYS``. True when a claim was held; False without a store (the claim then
    blocks the handler until the router's ``Leases.external`` ends)::

        await release(token, store=store)
    """
    acks = TokenAcks(keys=_keys(keys), store=store, max_age=max_age)
    return await acks.release(token) is AckResult.RELEASED


@contextlib.asynccontextmanager
async def settle(
    token: str,
    *,
    client: AsyncIronMQ,
    store: Store | None,
    max_age: float | None = None,
    ttl: float = DEFAULT_DEDUPE_TTL,
) -> AsyncIterator[None]:
    """Acknowledge the push when the block succeeds; release it when the block raises.

    For a job whose engine does not retry it (IronMQ's next push does): the exception is
    re-raised after the release::

        async with settle(token, client=mq, store=store):
            await render(order_id)
    """
    try:
        yield
    except Exception:
        await release(token, store=store, keys=client.settings.secret_keys or None, max_age=max_age)
        raise
    await acknowledge(token, client=client, store=store, max_age=max_age, ttl=ttl)


def _keys(keys: Keys | None) -> Keys:
    if keys is not None:
        return keys
    from .._config import load_settings

    return load_settings(require_credentials=False).secret_keys


# --------------------------------------------------------------------------- sync workers


class _LoopThread:
    """An event loop in a daemon thread (daemon: a worker's exit must never wait for it)."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="ironpush-acks", daemon=True
        )
        self._thread.start()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)


_shared: _LoopThread | None = None
_shared_lock = threading.Lock()


def _loop_thread() -> _LoopThread:
    """This process's ack loop (a forked child gets a new one: threads do not survive a fork)."""
    global _shared
    with _shared_lock:
        if _shared is None or _shared.pid != os.getpid():
            _shared = _LoopThread()
        return _shared


class PushAcks:
    """Blocking :func:`acknowledge` / :func:`release` for sync workers (Celery, RQ, Dramatiq).

    ``store`` is a store or a store spec (default: ``IRONPUSH_STORE``; none set: no store, see
    the module docs); ``client`` a factory of the :class:`~ironpush.AsyncIronMQ` to ack with
    (default: built from configuration, ``IRON_*`` / ``IRONMQ_EMULATOR_HOST``, with
    ``IRONPUSH_SECRET_KEYS``). Both are created lazily in each process, on its ack loop thread,
    so an object made before a prefork worker forks is safe to use in its children::

        acks = PushAcks(store="redis://cache:6379/0")

        def job(token: str, order_id: int) -> None:     # an RQ job
            render(order_id)
            acks.ack(token)

    When the store does not answer, :meth:`ack` waits up to ``wait`` seconds for it, then
    answers ``"queued"``: the completion is retried on the ack loop thread until the store
    records it, then acked (``pending`` counts them). :meth:`close` releases the objects (a
    worker's shutdown) after retrying what is pending for up to ``flush_timeout`` seconds; a
    later call opens them again.
    """

    def __init__(
        self,
        *,
        store: Store | str | None = None,
        client: Callable[[], AsyncIronMQ] | None = None,
        ttl: float = DEFAULT_DEDUPE_TTL,
        max_age: float | None = None,
        timeout: float = 120.0,
        wait: float = DEFAULT_COMPLETION_WAIT,
        flush_timeout: float = 10.0,
    ) -> None:
        self._store_spec = store
        self._client_factory = client
        self.ttl = ttl
        self.max_age = max_age
        self.timeout = timeout
        self.wait = wait
        self.flush_timeout = flush_timeout
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._store: Store | None = None
        self._client: AsyncIronMQ | None = None
        self._completions: Completions | None = None

    def __repr__(self) -> str:
        spec = self._store_spec if isinstance(self._store_spec, str) else self._store
        return f"PushAcks(store={_describe(spec)})"

    @property
    def pending(self) -> int:
        """Completions of this process the store has not recorded yet (retried until it does)."""
        completions = self._completions
        return completions.count if completions is not None and self._pid == os.getpid() else 0

    def ack(self, token: str) -> AckResult:
        """:func:`acknowledge` the push of ``token`` (blocking); ``"queued"`` when the store
        did not record it within ``wait`` seconds (it is retried until it does, then acked)."""
        store, client = self._objects()
        acks = TokenAcks(
            keys=client.settings.secret_keys,
            store=store,
            ttl=self.ttl,
            max_age=self.max_age,
            completions=self._kept,
            wait=self.wait,
        )
        return self._run(acks.ack(token, client_sender(client)))

    def flush(self, timeout: float | None = None) -> int:
        """Retry the pending completions now, for up to ``timeout`` seconds (default
        ``flush_timeout``); how many are left."""
        completions = self._completions
        if completions is None or self._pid != os.getpid() or not completions.count:
            return 0
        limit = self.flush_timeout if timeout is None else timeout
        return self._run(completions.flush(limit), limit + 5.0)

    def release(self, token: str) -> bool:
        """:func:`release` the push of ``token`` (blocking)."""
        store, client = self._objects()
        keys = client.settings.secret_keys or None
        return self._run(release(token, store=store, keys=keys, max_age=self.max_age))

    @contextlib.contextmanager
    def settle(self, token: str) -> Iterator[None]:
        """Acknowledge the push when the block succeeds; release it when the block raises.

        For a job whose engine does not retry it (IronMQ's next push runs the handler, which
        enqueues it again); the exception is re-raised after the release::

            with acks.settle(token):
                render(order_id)
        """
        try:
            yield
        except Exception:
            self.release(token)
            raise
        self.ack(token)

    def close(self) -> None:
        """Retry the pending completions for up to ``flush_timeout`` seconds (what is left is
        logged as lost), then close what this object opened in this process: its client, and
        its store unless the store was given as an object (that one is the caller's). Used
        again, it reopens."""
        with self._lock:
            store, client, pid = self._store, self._client, self._pid
            completions = self._completions
            self._store, self._client, self._pid = None, None, None
            self._completions = None
        if pid != os.getpid():  # nothing opened here (a forked child: the parent's to close)
            return
        if completions is not None:
            self._run(completions.close(self.flush_timeout), self.flush_timeout + 5.0)
        if client is not None:
            self._run(client.aclose())
        if store is not None and (self._store_spec is None or isinstance(self._store_spec, str)):
            self._run(store.close())

    def _run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        return _loop_thread().call(coro, self.timeout if timeout is None else timeout)

    def _objects(self) -> tuple[Store | None, AsyncIronMQ]:
        with self._lock:
            if self._pid != os.getpid() or self._client is None:
                # First use in this process (or a forked child): objects of another process's
                # loop cannot be used here.
                self._store = self._run(self._open_store())
                self._client = self._make_client()
                self._completions = None
                self._pid = os.getpid()
            return self._store, self._client

    def _kept(self) -> Completions:
        """Where this process's unrecorded completions wait (on the ack loop thread)."""
        if self._completions is None:
            store = self._store
            if store is None:  # pragma: no cover - TokenAcks asks only when there is a store
                raise RuntimeError("no store")
            self._completions = Completions(store, ttl=self.ttl)
        return self._completions

    async def _open_store(self) -> Store | None:
        from ..receiver.stores import open_store, store_from_env

        spec = self._store_spec
        if spec is None:
            return store_from_env()
        return open_store(spec)

    def _make_client(self) -> AsyncIronMQ:
        if self._client_factory is not None:
            return self._client_factory()
        from ..client._async_client import AsyncIronMQ

        return AsyncIronMQ()


def _describe(spec: object) -> str:
    if spec is None:
        return "None"
    if isinstance(spec, str):
        from .._redact import redact_url

        return repr(redact_url(spec))
    return repr(spec)
