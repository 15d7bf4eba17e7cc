"""Fixtures of the dev-server tests: one subscriber server and one dev server per module.

A module that needs another dev server (a token, a fresh one per test) defines its own ``dev``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from subscriber_servers import Subscribers

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
