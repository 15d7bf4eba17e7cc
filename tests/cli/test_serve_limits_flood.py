"""Anonymous connections cannot starve signed pushes (issue 19, N5), against a real
``ironpush serve`` with its defaults (``--limit-concurrency 1000``).

One address (127.0.0.2) keeps 2,000 slow partial requests going (a head trickled one byte a
second; each connection the server closes or refuses is opened again a second later), while
another (127.0.0.1) sends signed pushes, 20 at a time, each on a new connection. Before the
head deadline and the per-address limit, ~1,000 such connections made every push answer 503;
now at least 99 % of the pushes must be answered 200.

Both ends hold thousands of sockets: the test lifts its own open-files limit (and needs a
hard limit of at least 4,096); ``ironpush serve`` lifts its own to its hard limit at start.
"""

from __future__ import annotations

import asyncio
import resource
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
from serve_app import router
from serve_process import Served, run_serve
from support import build_push, wait_until_async

FLOOD = 2000  # slow partial connections from one address
FLOOD_FROM = "127.0.0.2"
PUSHERS = 20  # signed pushes in flight at once, from 127.0.0.1
PUSHING_FOR = 20.0  # seconds: several head deadlines (5 s) of the flood
FILES_NEEDED = 4096


@pytest.fixture(autouse=True)
def enough_files() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < FILES_NEEDED:
        pytest.fail(
            f"the flood needs {FILES_NEEDED} open files, the hard limit is {hard}: raise it "
            "(ulimit -Hn, docker run --ulimit nofile=8192:8192)",
            pytrace=False,
        )
    if soft != resource.RLIM_INFINITY and soft < FILES_NEEDED:
        resource.setrlimit(resource.RLIMIT_NOFILE, (FILES_NEEDED, hard))


class Flood:
    """``FLOOD`` slowloris connections from ``FLOOD_FROM``, each reopened when it ends."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.stop = asyncio.Event()
        self.seen: Counter[str] = Counter()
        self.open = 0
        self.peak = 0

    async def run(self) -> None:
        await asyncio.gather(*(self._slot() for _ in range(FLOOD)))

    async def _slot(self) -> None:
        while not self.stop.is_set():
            await self._one()
            await self._pause(1.0)  # the attacker's pace before opening it again

    async def _one(self) -> None:
        try:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", self.port, local_addr=(FLOOD_FROM, 0)
            )
        except OSError as exc:
            self.seen[f"connect {type(exc).__name__}"] += 1
            return
        self.seen["opened"] += 1
        self.open += 1
        self.peak = max(self.peak, self.open)
        try:
            writer.write(b"POST /ironmq/ok HTTP/1.1\r\nHost: t\r\nX-Slow: ")
            while not self.stop.is_set():
                try:
                    # The server's answer (or its close) ends the connection; meanwhile one
                    # more byte of the head every second.
                    data = await asyncio.wait_for(reader.read(4096), 1.0)
                except TimeoutError:
                    writer.write(b"a")
                    continue
                self.seen[data[:12].decode(errors="replace").strip() or "closed"] += 1
                return
        except OSError as exc:
            self.seen[type(exc).__name__] += 1
        finally:
            self.open -= 1
            writer.transport.abort()

    async def _pause(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self.stop.wait(), seconds)
        except TimeoutError:
            return


async def push_for(served: Served, seconds: float) -> Counter[str]:
    """Signed pushes, ``PUSHERS`` at a time, each on a new connection: the answers seen."""
    answers: Counter[str] = Counter()
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_keepalive_connections=0)  # a new connection for each push
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:

        async def pusher() -> None:
            while time.monotonic() < deadline:
                headers, body, _ = build_push(router, "/ok", b"x")
                try:
                    answer = await client.post(
                        served.url("/ironmq/ok"), headers=headers, content=body
                    )
                    answers[str(answer.status_code)] += 1
                except httpx.TransportError as exc:
                    answers[type(exc).__name__] += 1

        await asyncio.gather(*(pusher() for _ in range(PUSHERS)))
    return answers


async def flood_and_push(served: Served) -> tuple[Counter[str], Flood]:
    flood = Flood(served.port)
    flooding = asyncio.create_task(flood.run())
    try:
        await wait_until_async(
            lambda: flood.seen["opened"] >= FLOOD, 60, "the flood's first 2,000 connections"
        )
        answers = await push_for(served, PUSHING_FOR)
    finally:
        flood.stop.set()
        await flooding
    return answers, flood


@pytest.mark.slow
def test_2000_slow_connections_from_one_address_leave_signed_pushes_answered(
    tmp_path: Path,
) -> None:
    served = run_serve(tmp_path, "--log-level", "warning")  # the defaults otherwise
    try:
        answers, flood = asyncio.run(flood_and_push(served))
    finally:
        served.stop()
    pushes = sum(answers.values())
    print(f"signed pushes: {dict(answers)}; flood: {dict(flood.seen)}, peak open {flood.peak}")
    assert pushes >= 100, answers  # enough pushes for 1 % to mean something
    assert answers["200"] >= 0.99 * pushes, (answers, flood.seen)
    # The flood was there: its connections beyond the address's limit were refused, those
    # the server kept ended at the head deadline.
    assert flood.seen["HTTP/1.1 503"] >= FLOOD // 2, flood.seen
    assert flood.seen["HTTP/1.1 408"] > 0, flood.seen
    assert flood.peak >= FLOOD // 2, flood.peak
