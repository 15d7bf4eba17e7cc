"""Fixtures of the receiver tests: the contract router (:mod:`.contract`) and its simulator, and
the fuzzed router (:mod:`.fuzz_kit`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from anyio.from_thread import start_blocking_portal

from ironpush.receiver._router import PushRouter
from ironpush.testing import PushSimulator

from .contract import Calls, contract_router
from .fuzz_kit import Call, Receiver, make_router


@pytest.fixture
def calls() -> Calls:
    return Calls()


@pytest.fixture
def router(calls: Calls) -> PushRouter:
    return contract_router(calls)


@pytest.fixture
async def sim(router: PushRouter) -> AsyncIterator[PushSimulator]:
    async with PushSimulator(router) as sim:
        yield sim


@pytest.fixture(scope="module")
def rx() -> Iterator[Receiver]:
    """The fuzzed router, served by a simulator on a portal (one per test module)."""
    calls: list[Call] = []
    router = make_router(calls)
    with start_blocking_portal() as portal:
        sim = PushSimulator(router)
        with portal.wrap_async_context_manager(sim):
            yield Receiver(portal, router, sim, calls)
