"""Shared fixtures: the anyio backend, and unique queue names so tests never share state."""

from __future__ import annotations

import itertools
import os

import pytest

_counter = itertools.count()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def queue_name(request: pytest.FixtureRequest) -> str:
    """A queue name unique to this test (safe on a shared dev server)."""
    return f"t-{os.getpid()}-{next(_counter)}-{request.node.name[:40]}"
