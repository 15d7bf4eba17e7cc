"""Fixtures of the dev-server tests: one subscriber server and one dev server per module.

A module sets ``DEV_OPTIONS`` (``DevServer`` keywords, ``{"push_timeout": 2.0}``) for a dev server
of its own kind, or defines its own ``dev`` (a fresh one per test); ``mq`` (the real client) and
``raw`` (httpx on ``/3/projects/dev``) follow it. ``recorder`` is ``subs`` under the name the
pusher tests give it.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from subscriber_servers import Subscribers

from ironpush.client import IronMQ
from ironpush.devserver import DevServer


@pytest.fixture(scope="module")
def subs() -> Iterator[Subscribers]:
    """Subscribers on a real socket: ``subs.url(503, 200)`` answers 503 then 200."""
    with Subscribers() as servers:
        yield servers


@pytest.fixture(scope="module")
def recorder(subs: Subscribers) -> Subscribers:
    """The module's subscriber servers: every push they get is recorded."""
    return subs


@pytest.fixture(scope="module")
def dev(request: pytest.FixtureRequest) -> Iterator[DevServer]:
    """A dev server (memory, any token, the module's ``DEV_OPTIONS``) shared by the module's
    tests (unique queue names)."""
    with DevServer(**getattr(request.module, "DEV_OPTIONS", {})) as server:
        yield server


@pytest.fixture(scope="module")
def mq(dev: DevServer) -> Iterator[IronMQ]:
    """The real client, pointed at the module's dev server."""
    with dev.client() as client:
        yield client


@pytest.fixture(scope="module")
def raw(dev: DevServer) -> Iterator[httpx.Client]:
    """Raw HTTP on the module's dev server, for what the client refuses to send."""
    base = f"{dev.url}/3/projects/dev"
    with httpx.Client(base_url=base, headers={"Authorization": "OAuth dev"}) as client:
        yield client
