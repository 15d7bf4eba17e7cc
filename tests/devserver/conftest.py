"""Fixtures of the dev-server tests: one subscriber server and one dev server per module.

A module that needs another dev server (a token, a fresh one per test) defines its own ``dev``;
``mq`` (the real client) and ``raw`` (httpx on ``/3/projects/dev``) follow it.
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
def dev() -> Iterator[DevServer]:
    """A dev server (memory, any token) shared by the module's tests (unique queue names)."""
    with DevServer() as server:
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
