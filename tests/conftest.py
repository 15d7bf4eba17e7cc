"""Shared fixtures: the anyio backend, and unique queue names so tests never share state."""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
from collections.abc import Iterator

import pytest

_counter = itertools.count()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def queue_name(request: pytest.FixtureRequest) -> str:
    """A queue name unique to this test (safe on a shared dev server)."""
    return f"t-{os.getpid()}-{next(_counter)}-{request.node.name[:40]}"


@pytest.fixture(autouse=True)
def _root_logger_kept() -> Iterator[None]:
    """Put the root logger back as it was after each test: a library started in-process may
    configure it (Celery's test worker adds a stderr handler and sets ERROR), and a later
    test's records would no longer reach pytest's capture (``caplog``)."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in [h for h in root.handlers if h not in handlers]:
        if type(handler).__module__ != "_pytest.logging":  # pytest removes its own
            root.removeHandler(handler)
    root.setLevel(level)


def _descendants(root: int) -> list[int]:
    """Every live process below ``root`` (from /proc: children, grandchildren, ...)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            parents.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = [], [root]
    while todo:
        kids = parents.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


def _wait_gone(pids: list[int], timeout: float) -> list[int]:
    """Wait until each of ``pids`` has ended, for at most ``timeout`` seconds; those still
    running. A pidfd per process (readable once it ends, whoever its parent is: these are
    not all our children, so no ``waitpid``)."""
    import select
    import time

    poller = select.poll()
    running: dict[int, int] = {}  # pidfd -> pid
    for pid in pids:
        try:
            fd = os.pidfd_open(pid)
        except OSError:  # ended already
            continue
        running[fd] = pid
        poller.register(fd, select.POLLIN)
    deadline = time.monotonic() + timeout
    try:
        while running and (left := deadline - time.monotonic()) > 0:
            for fd, _ in poller.poll(left * 1000):
                poller.unregister(fd)
                os.close(fd)
                del running[fd]
    finally:
        for fd in running:
            os.close(fd)
    return list(running.values())


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Stop what a failed test left running (servers, workers) so no run leaks processes.

    Tests stop their own processes; this catches the ones a failure skipped (an assertion
    between start and stop). SIGTERM first, so servers shut down cleanly, then SIGKILL.
    """
    import signal

    left = _descendants(os.getpid())
    for pid in left:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)
    for pid in _wait_gone(left, 5):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
