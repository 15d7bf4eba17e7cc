"""The client tests' fixtures: ``rec`` (a recording HTTP server) and ``mq`` (each twin)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from client_kit import FAST_RETRY, TOKEN, Recorder
from pytest_httpserver import HTTPServer

from ironpush.client import AsyncIronMQ, IronMQ
from ironpush.client._lean_connection import Connection


@pytest.fixture
def rec(httpserver: HTTPServer) -> Recorder:
    return Recorder(httpserver)


@pytest.fixture(params=["sync", "async", "async-lean"])
async def mq(request: pytest.FixtureRequest, rec: Recorder) -> AsyncIterator[IronMQ | AsyncIronMQ]:
    """Each test runs on the sync twin, the async twin, and the async twin's lean backend."""
    options: dict[str, Any] = {
        "project_id": "p1",
        "token": TOKEN,
        "cloud": rec.url,
        "retry": FAST_RETRY,
        "timeout": 5,
    }
    client: IronMQ | AsyncIronMQ
    if request.param == "sync":
        client = IronMQ(**options)
    else:
        client = AsyncIronMQ(
            **options, backend="lean" if request.param == "async-lean" else "httpx"
        )
    yield client
    if isinstance(client, IronMQ):
        client.close()
    else:
        await client.aclose()


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The lean connections' writes, as how many requests each carried."""
    counts: list[int] = []
    flush = Connection._flush

    def counted(conn: Connection) -> None:
        counts.append(len(conn._out))
        flush(conn)

    monkeypatch.setattr(Connection, "_flush", counted)
    return counts
