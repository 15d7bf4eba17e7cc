"""Fixtures for the store suites: one store per test, on every engine, each in its own keys.

A store is described by its spec (``open_store``'s string), so a test can open the very same
store in other processes. Redis and PostgreSQL are found by ``IRONPUSH_TEST_REDIS_URL`` /
``IRONPUSH_TEST_POSTGRES_DSN``; an unreachable one fails the test with one line naming the URL
and the start command (never a skip). Every test gets its own Redis key prefix / PostgreSQL
schema (removed afterwards), so parallel runs never collide.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import psycopg
import pytest
import redis
from faults.services import Service
from faults.services import postgres as postgres_service
from faults.services import redis as redis_service

from ironpush.receiver.stores import Store, open_store

KINDS = ["memory", "sqlite", "redis", "postgres"]
SHARED_KINDS = ["sqlite", "redis", "postgres"]

RUN = uuid.uuid4().hex[:8]
_serial = itertools.count()


def require(service: Service) -> Service:
    if not service.reachable():
        pytest.fail(
            f"{service.kind} is not reachable at {service.url}; "
            f"start it with: {service.start_command}",
            pytrace=False,
        )
    return service


@pytest.fixture(scope="session")
def redis_server() -> Service:
    return require(redis_service())


@pytest.fixture(scope="session")
def postgres_server() -> Service:
    return require(postgres_service())


def _with_option(url: str, name: str, value: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{name}={value}"


class Specs:
    """Makes store specs for one test, and removes what they created afterwards."""

    def __init__(self, request: pytest.FixtureRequest, tmp_path: Path) -> None:
        self._request = request
        self._tmp = tmp_path
        self.prefixes: list[str] = []
        self.schemas: list[str] = []

    def __call__(self, kind: str) -> str:
        name = f"t{RUN}_{os.getpid()}_{next(_serial)}"
        if kind == "memory":
            return "memory"
        if kind == "sqlite":
            return f"sqlite:///{self._tmp / (name + '.db')}"
        if kind == "redis":
            url = self._request.getfixturevalue("redis_server").url
            self.prefixes.append(name)
            return _with_option(url, "prefix", name)
        url = self._request.getfixturevalue("postgres_server").url
        self.schemas.append(name)
        return _with_option(url, "schema", name)

    def cleanup(self) -> None:
        # Best effort: the names are unique to this run, so anything left behind (a server
        # restarted by another suite at this moment) harms nobody.
        with contextlib.suppress(redis.RedisError, psycopg.Error, OSError):
            self._cleanup()

    def _cleanup(self) -> None:
        if self.prefixes:
            client = redis.Redis.from_url(redis_service().url, socket_timeout=5)
            for prefix in self.prefixes:
                keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
                if keys:
                    client.delete(*keys)
            client.close()
        if self.schemas:
            with psycopg.connect(postgres_service().url, autocommit=True) as conn:
                for schema in self.schemas:
                    conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture
def specs(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[str], str]]:
    made = Specs(request, tmp_path)
    yield made
    made.cleanup()


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=SHARED_KINDS)
def shared_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def spec(kind: str, specs: Callable[[str], str]) -> str:
    return specs(kind)


@pytest.fixture
async def store(spec: str) -> AsyncIterator[Store]:
    opened = open_store(spec)
    yield opened
    await opened.close()
