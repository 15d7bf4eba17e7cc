"""Shared by the ``ironpush listen`` tests: the processes and what they are checked against.

- the module-wide fixtures ``subs`` (the scripted subscriber servers), ``dev`` (a dev server
  with :data:`TOKEN`, stopped before ``subs``) and ``mq`` (the real client on it);
- :func:`listen_env`: the environment of every process (the dev server, one signing key, a
  private ``HOME`` and state dir, ``tests/cli`` importable for :mod:`listen_service`);
- :class:`Service`: :mod:`listen_service` under uvicorn in its own process;
- :class:`Listener`: ``ironpush listen ... --json`` as a subprocess, its events parsed live;
- :func:`snapshot`: every queue of the project with its type, push settings and subscribers,
  to compare the project before and after.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from devserver.subscriber_servers import Subscribers
from observe_cli import Proc, subs
from support import free_port, wait_until

from ironpush.client import IronMQ
from ironpush.devserver import DevServer

TOKEN = "listen-TOKEN-0123456789abcdef"
KEY = "listen-test-key-0123456789abcdef-0123"
HERE = Path(__file__).resolve().parent

__all__ = ["TOKEN", "Listener", "Service", "dev", "finished", "listen_env", "make_push_queue"]
__all__ += ["mq", "queues_of", "snapshot", "subs"]


@pytest.fixture(scope="module")
def dev(subs: Subscribers) -> Iterator[DevServer]:
    """The module's dev server (token :data:`TOKEN`).

    After the subscriber servers, so stopped before them: its idle connections to them would
    hold their graceful shutdown.
    """
    with DevServer(token=TOKEN) as server:
        yield server


@pytest.fixture(scope="module")
def mq(dev: DevServer) -> Iterator[IronMQ]:
    """The real client on the module's dev server."""
    with dev.client() as client:
        yield client


def listen_env(dev: DevServer, home: Path) -> dict[str, str]:
    return {
        "HOME": str(home),
        "XDG_STATE_HOME": str(home / "state"),
        "IRONMQ_EMULATOR_HOST": dev.url.removeprefix("http://"),
        "IRON_PROJECT_ID": dev.project_id,
        "IRON_TOKEN": TOKEN,
        "IRONPUSH_SECRET_KEYS": KEY,
        "PYTHONPATH": f"{HERE}{os.pathsep}{HERE.parent}",
    }


class Service:
    """:mod:`listen_service` served by uvicorn on ``port`` (a free one by default)."""

    def __init__(self, env: dict[str, str], port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "listen_service:app", "--port", str(self.port)],
            env={**os.environ, **env, "PYTHONUNBUFFERED": "1"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self._up, 30, "the service to answer")

    def _up(self) -> bool:
        assert self.proc.poll() is None, "the service exited"
        try:
            return httpx.get(self.url + "/state").status_code == 200
        except httpx.TransportError:
            return False

    def state(self) -> dict[str, Any]:
        data: dict[str, Any] = httpx.get(self.url + "/state").json()
        return data

    def calls(self, path: str) -> list[str]:
        return list(self.state()["calls"].get(path, []))

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(15)


class Listener(Proc):
    """``ironpush listen ARGS --json``: ``events(kind)`` are the JSON lines seen so far."""

    def __init__(self, *args: str, env: dict[str, str]) -> None:
        # A short long-poll: the dev server holds a reserve whose client left until its wait
        # ends, and that would hold the dev server's shutdown at the end of the module.
        super().__init__("listen", *args, "--json", "--wait", "1", env=env)
        self.ready = self.wait_event("ready", timeout=30)

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        found = [json.loads(line) for line in list(self.out) if line.startswith("{")]
        return [e for e in found if kind is None or e["event"] == kind]

    def wait_event(
        self, kind: str, where: Callable[[dict[str, Any]], bool] = lambda e: True, **kw: Any
    ) -> dict[str, Any]:
        """The first event of ``kind`` for which ``where`` holds, waiting for it."""

        def seen(_: list[str]) -> dict[str, Any] | None:
            return next((e for e in self.events(kind) if where(e)), None)

        found: dict[str, Any] = self.wait_for(seen, **kw)
        return found

    def pushes(self, queue: str, body_id: str | None = None) -> list[dict[str, Any]]:
        return [
            e
            for e in self.events("push")
            if e["queue"] == queue and (body_id is None or e["message_id"] == body_id)
        ]

    def relay_queue(self, queue: str) -> str:
        return next(str(r["relay_queue"]) for r in self.ready["relays"] if r["queue"] == queue)

    def interrupt(self) -> int:
        """Ctrl-C, then the exit status."""
        self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(30)

    def kill_9(self) -> None:
        self.proc.kill()
        self.proc.wait(10)


def finished(env: dict[str, str], *args: str) -> Proc:
    """``ironpush ARGS`` run to its end, every output line collected."""
    proc = Proc(*args, env=env)
    proc.proc.wait(60)
    for pump in proc._pumps:
        pump.join(10)
    return proc


def snapshot(mq: IronMQ) -> dict[str, Any]:
    """Every queue: type, push settings and subscribers (name, URL, headers), by name."""
    out: dict[str, Any] = {}
    for name in mq.iter_queues():
        info = mq.queue(name).info()
        push = info.push
        out[name] = {
            "type": info.type,
            "push": None
            if push is None
            else {
                "retries": push.retries,
                "retries_delay": push.retries_delay,
                "error_queue": push.error_queue,
                "subscribers": [(s.name, s.url, dict(s.headers)) for s in push.subscribers],
            },
        }
    return out


def queues_of(mq: IronMQ) -> set[str]:
    return set(mq.iter_queues())


def make_push_queue(
    mq: IronMQ, name: str, production: str, *, push_type: str = "multicast", **settings: Any
) -> None:
    """A push queue with one production subscriber (it sends a secret header)."""
    subscriber = {"name": "production", "url": production, "headers": {"X-Prod-Secret": "s3cr3t"}}
    mq.create_queue(name, type=push_type, subscribers=[subscriber], **settings)
