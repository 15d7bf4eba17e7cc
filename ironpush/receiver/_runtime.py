"""The router's background machinery: deferred jobs, pending completions, the ack outbox and
the lease heartbeat.

A :class:`Runtime` ties them to one event loop. :class:`Background` makes one lazily on the
first push (Starlette does not run a mounted app's lifespan), makes a new one when the event
loop changes (tests), and drains it at shutdown. At startup it probes the store once: a store
that refuses its configuration (a Redis whose eviction policy would drop claims) stops the
start with :class:`~ironpush._errors.ConfigError` naming the fix; a store that is merely down
is logged (pushes get 503 until it answers)::

    background = Background(store=store, counters=counters, settings=settings)
    runtime = background.current()          # inside the event loop
    await runtime.outbox.put_ack("orders", delivery)
    await background.shutdown()
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import anyio

from .._errors import ConfigError, StoreUnavailable
from .._logfields import ensure_visible
from .._protocol import Delivery
from ._completions import RETRIED, Completions
from ._health import RefusalWindow
from ._jobs import JobRunner
from ._metrics import Counters
from ._outbox import AckOutbox
from ._settings import RouterSettings
from ._timed_store import timed_store
from .stores._base import Key, Store, StoreProblem

if TYPE_CHECKING:
    from ..client._async_client import AsyncIronMQ

logger = logging.getLogger("ironpush.receiver")
#: Longest the store may take to answer at startup (a store that hangs does not hold it up).
START_PROBE = 10.0


class Runtime:
    """Jobs, completions, outbox and heartbeat on one event loop (the one it was made in).

    :attr:`active` holds the claim ids whose leases this process keeps alive (running
    handlers, deferred jobs; with those of :attr:`completions` still pending): the heartbeat
    renews them every ``Leases.claim / 3`` seconds, so a crashed process's claims run out
    within one lease. Unsent acks and pending completions together are the backlog that
    ``Limits.max_unsent_acks`` bounds.
    """

    def __init__(
        self,
        *,
        store: Store,
        counters: Counters,
        get_client: Callable[[], Awaitable[AsyncIronMQ]],
        settings: RouterSettings,
    ) -> None:
        self.loop = asyncio.get_running_loop()
        store = timed_store(store, counters.timings)  # its operations in the store histogram
        self.store = store
        self.lease = settings.leases.claim
        self.outbox = AckOutbox(store, get_client, counters, settings.outbox)
        self.completions = Completions(
            store, ttl=settings.leases.dedupe_ttl, counters=counters, serves_pushes=True
        )
        self.runner = JobRunner(
            settings.limits.max_deferred,
            backlog=lambda: self.outbox.backlog + self.completions.count,
            max_backlog=settings.limits.max_unsent_acks,
        )
        self.active: set[str] = set()
        self._heartbeat: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the outbox and the heartbeat."""
        self.outbox.start()
        self._heartbeat = self.loop.create_task(self._beat())

    async def _beat(self) -> None:
        while True:
            await anyio.sleep(self.lease / 3)
            claims = self.active | self.completions.claim_ids()
            if claims:
                try:
                    await self.store.renew(claims, lease=self.lease)
                except Exception:
                    logger.exception("could not renew dedupe claims")

    async def job_done(self, queue: str, key: Key, delivery: Delivery, claim_id: str) -> None:
        """A deferred job succeeded: record it, then queue the ack of the newest delivery (one
        store call where the store folds both); when the store fails, :attr:`completions`
        retries until it records it."""
        try:
            await self.outbox.complete_and_queue(queue, key, delivery, ttl=self.completions.ttl)
            return
        except RETRIED:
            pass  # not recorded, or its ack not queued: kept and retried from here

        async def queue_ack(newest: Delivery | None) -> None:
            await self.outbox.queue_ack(queue, newest or delivery)

        await self.completions.finish(key, delivery, then=queue_ack, claim_id=claim_id)

    def problems(self) -> list[StoreProblem]:
        """Health reasons of this runtime (``/_health/ready``'s ``runtime`` check): completions
        waiting for the store, as ``degraded`` (the store's probe says when it is down)."""
        return self.completions.problems()

    async def close(self, *, grace: float, flush_timeout: float) -> None:
        """Graceful stop: refuse new jobs, wait ``grace`` s for running ones, record their
        completions and flush the outbox (``flush_timeout`` s each)."""
        logger.info(
            "shutting down: %d deferred job(s) get up to %g s to finish, then %d ack(s) are sent",
            self.runner.in_flight,
            grace,
            self.outbox.backlog,
        )
        left = await self.runner.drain(grace)
        if left:
            logger.warning("%d deferred job(s) still running at shutdown: left to redelivery", left)
        # Before the heartbeat stops: a pending completion's claim stays renewed meanwhile.
        await self.completions.close(flush_timeout)
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            await asyncio.wait([self._heartbeat])
        await self.outbox.close(flush_timeout)


class Background:
    """The router's one :class:`Runtime` at a time, and the IronMQ client its outbox uses."""

    def __init__(
        self,
        *,
        store: Store,
        counters: Counters,
        settings: RouterSettings,
        client: AsyncIronMQ | None = None,
    ) -> None:
        self.store = store
        self.counters = counters
        self.settings = settings
        self.closed = False
        self._client = client
        self._owns_client = client is None
        self._runtime: Runtime | None = None
        self._lifespan = False  # startup() was called: a lifespan (or a test kit) runs us

    @property
    def running(self) -> Runtime | None:
        """The runtime, if one was started (on any loop)."""
        return self._runtime

    @property
    def draining(self) -> bool:
        """True after shutdown began: new deferred work is refused."""
        return self.closed or (self._runtime is not None and not self._runtime.runner.accepting)

    def current(self) -> Runtime:
        """The runtime of the running event loop, started now if needed."""
        runtime = self._runtime
        loop = asyncio.get_running_loop()
        if runtime is not None and runtime.loop is loop:
            return runtime
        # First use, or a new event loop (tests): tasks of an old loop died with it.
        ensure_visible()  # nothing configured logging (plain uvicorn): our lines still show
        if not self._lifespan:
            self._lifespan = True  # said once
            logger.warning(
                "PushRouter started on its first push: no lifespan started it, so nothing "
                "will drain its deferred jobs and unsent acks at shutdown. Serve it inside "
                "PushMount(app, router=router) or pass lifespan=router.lifespan to the app"
            )
        if self._owns_client:
            self._client = None
        runtime = Runtime(
            store=self.store,
            counters=self.counters,
            get_client=self.get_client,
            settings=self.settings,
        )
        runtime.start()
        runtime.runner.accepting = not self.closed
        self._runtime = runtime
        return runtime

    async def startup(self) -> None:
        """Start now (flushing an outbox left by a crash) rather than on the first push,
        after one probe of the store: :class:`~ironpush._errors.ConfigError` when the store
        refuses its configuration (the line names the fix)."""
        await self.check_store()
        self.closed = False
        self._lifespan = True
        self.current()

    async def check_store(self) -> None:
        """Read the store once, as the outbox does first (its next due item), for at most
        :data:`START_PROBE` seconds: raise ConfigError for a refused configuration, log the
        degraded reasons (an accepted risk) and a store that is down (it may come back)."""
        try:
            with anyio.fail_after(START_PROBE):
                await self.store.next_due()
        except TimeoutError:
            logger.warning("store %s did not answer at start", self.store.kind)
        except StoreUnavailable as exc:
            refused = [reason for level, reason in await self._problems() if level == "refused"]
            if refused:
                raise ConfigError(refused[0]) from None
            logger.warning("store %s unavailable at start: %s", self.store.kind, exc)
        for level, reason in await self._problems():
            if level == "degraded":
                logger.warning("store %s: %s", self.store.kind, reason)

    async def _problems(self) -> list[tuple[str, str]]:
        """The store's ``(level, reason)`` pairs, read leniently (a custom store's may be a
        coroutine, or fail: that is health's to report, not a reason not to start)."""
        try:
            found: Any = self.store.problems()
            if inspect.isawaitable(found):
                found = await found
            return [(str(level), str(reason)) for level, reason in found]
        except Exception:
            return []

    async def shutdown(self) -> None:
        """Refuse new deferred work, wait for running jobs, flush the outbox, close the client."""
        self.closed = True
        runtime, self._runtime = self._runtime, None
        if runtime is not None:
            shutdown = self.settings.shutdown
            await runtime.close(grace=shutdown.grace, flush_timeout=shutdown.flush_timeout)
        if self._owns_client and self._client is not None:
            await self._client.aclose()
            self._client = None

    async def get_client(self) -> AsyncIronMQ:
        """The client for acks and posts: the one given, or one built from configuration."""
        if self._client is None:
            from urllib.request import getproxies

            from ..client._async_client import AsyncIronMQ

            # The lean backend costs less CPU per ack (benchmarks/README.md); it does not
            # speak to proxies, so a configured proxy keeps httpx.
            backend: Literal["httpx", "lean"] = "httpx" if getproxies() else "lean"
            self._client = AsyncIronMQ(backend=backend)
            self._owns_client = True
        return self._client

    def set_client(self, client: AsyncIronMQ) -> None:
        """Use ``client`` from now on; the caller owns (and closes) it."""
        self._client = client
        self._owns_client = False


@dataclass(frozen=True, slots=True)
class Shared:
    """What one router's pipeline and internal endpoints share (built by the router)."""

    settings: RouterSettings
    store: Store
    counters: Counters
    background: Background
    refusals: RefusalWindow
