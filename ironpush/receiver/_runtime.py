"""The router's background machinery: deferred jobs, the ack outbox and the lease heartbeat.

A :class:`Runtime` ties them to one event loop. :class:`Background` makes one lazily on the
first push (Starlette does not run a mounted app's lifespan), makes a new one when the event
loop changes (tests), and drains it at shutdown::

    background = Background(store=store, counters=counters, settings=settings)
    runtime = background.current()          # inside the event loop
    await runtime.outbox.put_ack("orders", delivery)
    await background.shutdown()
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import anyio

from ._health import RefusalWindow
from ._jobs import JobRunner
from ._metrics import Counters
from ._outbox import AckOutbox
from ._settings import RouterSettings
from .stores._base import Store

if TYPE_CHECKING:
    from ..client._sync_client import AsyncIronMQ

__all__ = ["Background", "Runtime", "Shared"]

logger = logging.getLogger("ironpush.receiver")


class Runtime:
    """Jobs, outbox and heartbeat on one event loop (the one it was made in).

    :attr:`active` holds the claim ids whose leases this process keeps alive (running
    handlers, deferred jobs): the heartbeat renews them every ``claim_lease / 3`` seconds, so a
    crashed process's claims run out within one lease.
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
        self.store = store
        self.lease = settings.claim_lease
        self.outbox = AckOutbox(store, get_client, counters, settings.outbox)
        self.runner = JobRunner(
            settings.max_deferred,
            backlog=lambda: self.outbox.backlog,
            max_backlog=settings.max_unsent_acks,
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
            if self.active:
                try:
                    await self.store.renew(set(self.active), lease=self.lease)
                except Exception:
                    logger.exception("could not renew dedupe claims")

    async def close(self, *, grace: float, flush_timeout: float) -> None:
        """Graceful stop: refuse new jobs, wait ``grace`` s for running ones, flush the outbox."""
        left = await self.runner.drain(grace)
        if left:
            logger.warning("%d deferred job(s) still running at shutdown: left to redelivery", left)
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
        """Start now (flushing an outbox left by a crash) rather than on the first push."""
        self.closed = False
        self.current()

    async def shutdown(self) -> None:
        """Refuse new deferred work, wait for running jobs, flush the outbox, close the client."""
        self.closed = True
        runtime, self._runtime = self._runtime, None
        if runtime is not None:
            settings = self.settings
            await runtime.close(grace=settings.shutdown_grace, flush_timeout=settings.flush_timeout)
        if self._owns_client and self._client is not None:
            await self._client.aclose()
            self._client = None

    async def get_client(self) -> AsyncIronMQ:
        """The client for acks and posts: the one given, or one built from configuration."""
        if self._client is None:
            from urllib.request import getproxies

            from ..client._sync_client import AsyncIronMQ

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
