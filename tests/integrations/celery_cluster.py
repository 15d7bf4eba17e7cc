"""The processes of a Celery end-to-end run: a receiver under ``ironpush serve`` and workers.

A :class:`CeleryRun` starts the receiver (``celery_service:app``, two uvicorn workers sharing
the store) subscribed on a dev server, and real ``celery worker`` processes, each in its own
session so that ``kill()`` is a ``kill -9`` of the whole worker (main process and pool child).
Every wait has a deadline and reports the logs when it gives up.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from celery_ledger import count, events
from support import free_port, wait_until

from ironpush._signing import push_secret
from ironpush.client import IronMQ
from ironpush.client._models import Subscriber
from ironpush.devserver import DevServer

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
KEYS = ["celery-e2e-key-0123456789abcdef0123456789"]
SUBSCRIBER = "worker"


def require_server(kind: str, url: str, start: str) -> None:
    """Fail (never skip) with one line when a test server is not reachable."""
    parts = urlsplit(url)
    default = {"redis": 6379, "amqp": 5672}[kind]
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default), 2):
            return
    except OSError:
        pytest.fail(f"{kind} is not reachable at {url}; start it with: {start}", pytrace=False)


def redis_url() -> str:
    url = os.environ.get("IRONPUSH_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    require_server(
        "redis",
        url,
        "redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save '' "
        "--appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log",
    )
    return url


def amqp_url() -> str:
    url = os.environ.get("IRONPUSH_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")
    require_server("amqp", url, "rabbitmq-server -detached")
    return url


@dataclass
class CeleryRun:
    """One run: its dev-server queue, its receiver, its workers, its ledger."""

    dev: DevServer
    mq: IronMQ
    tmp: Path
    broker: str
    store: str
    visibility_timeout: float = 3600.0
    name: str = field(default_factory=lambda: f"celery-{uuid.uuid4().hex[:10]}")
    receiver: subprocess.Popen[bytes] | None = None
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    port: int = 0

    @property
    def ledger(self) -> str:
        return str(self.tmp / "ledger.db")

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT), str(HERE)]),
            "IRONPUSH_SECRET_KEYS": ",".join(KEYS),
            "IRONMQ_EMULATOR_HOST": self.dev.url,
            "IRONPUSH_STORE": self.store,
            "CELERY_TEST_BROKER": self.broker,
            "CELERY_TEST_QUEUE": self.name,
            "CELERY_TEST_VISIBILITY": str(self.visibility_timeout),
            "CELERY_TEST_LEDGER": self.ledger,
            "CELERY_TEST_PUSH_QUEUE": self.name,
        }

    # --- processes ---------------------------------------------------------------------

    def start_receiver(self) -> None:
        self.port = free_port()
        log = (self.tmp / "receiver.log").open("wb")
        self.receiver = subprocess.Popen(
            [
                *(sys.executable, "-m", "ironpush", "serve", "celery_service:app"),
                *("--port", str(self.port), "--workers", "2", "--store", self.store),
            ],
            cwd=HERE,
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_until(self._healthy, 60, "the receiver to answer /_health", report=self.logs)
        self.mq.create_queue(
            self.name,
            type="multicast",
            subscribers=[
                Subscriber(
                    name=SUBSCRIBER,
                    url=f"http://127.0.0.1:{self.port}/ironmq/jobs",
                    headers={"X-Ironpush-Secret": push_secret(self.name, SUBSCRIBER, KEYS)},
                )
            ],
            # Long enough that no reservation runs out by itself: the tests end them with
            # POST /_dev/expire when they want IronMQ's next push.
            retries=10,
            retries_delay=120,
        )

    def _healthy(self) -> bool:
        try:
            url = f"http://127.0.0.1:{self.port}/ironmq/_health"
            return httpx.get(url, timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def start_worker(self) -> subprocess.Popen[bytes]:
        index = len(self.workers)
        log_path = self.tmp / f"worker{index}.log"
        worker = subprocess.Popen(
            [
                *(sys.executable, "-m", "celery", "-A", "celery_tasks", "worker"),
                *("--pool", "prefork", "--concurrency", "1", "--loglevel", "info"),
                *("--hostname", f"{self.name}-{index}@%h", "--queues", self.name),
                *("--without-mingle", "--without-gossip", "--without-heartbeat"),
            ],
            cwd=HERE,
            env=self.env(),
            stdout=log_path.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.workers.append(worker)
        wait_until(
            lambda: b" ready." in log_path.read_bytes(),
            60,
            f"celery worker {index} to be ready",
            report=self.logs,
        )
        return worker

    def kill(self, worker: subprocess.Popen[bytes]) -> None:
        """``kill -9`` of the worker's main process and its pool child at once."""
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)

    def stop(self) -> None:
        for proc in [*self.workers, self.receiver]:
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in [*self.workers, self.receiver]:
            if proc is None:
                continue
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)

    # --- what happened -----------------------------------------------------------------

    def post(self, mode: str, *, flag: Path | None = None) -> str:
        body = {"mode": mode, "flag": str(flag) if flag else None}
        [message_id] = self.mq.queue(self.name).post(json.dumps(body))
        return message_id

    def count(self, event: str, message_id: str) -> int:
        return count(event, message_id, self.ledger) if Path(self.ledger).exists() else 0

    def deliveries(self, message_id: str) -> list[dict[str, Any]]:
        return self.dev.deliveries(queue=self.name, message_id=message_id)

    def acks(self, message_id: str) -> list[str | None]:
        """Per push of the message, oldest first: "acked", "expired" or None (still open)."""
        return [(d.get("ack") or {}).get("result") for d in self.deliveries(message_id)]

    def wait_for(self, event: str, message_id: str, n: int = 1, timeout: float = 60) -> None:
        wait_until(
            lambda: self.count(event, message_id) >= n,
            timeout,
            f"{n} x {event} for message {message_id}",
            report=lambda: self.report(message_id),
        )

    def wait_acked(self, message_id: str, timeout: float = 60) -> list[str | None]:
        return wait_until(
            lambda: (acks := self.acks(message_id)) and acks[-1] == "acked" and acks,
            timeout,
            f"message {message_id}'s newest push to be acked",
            report=lambda: self.report(message_id),
        )

    def worker_log(self) -> str:
        return "\n".join(
            p.read_text(errors="replace") for p in sorted(self.tmp.glob("worker*.log"))
        )

    def logs(self) -> str:
        texts = [
            f"--- {p.name}\n{p.read_text(errors='replace')[-6000:]}" for p in self.tmp.glob("*.log")
        ]
        return "\n".join(texts)

    def report(self, message_id: str) -> str:
        ledger = events(message_id, self.ledger) if Path(self.ledger).exists() else []
        return f"ledger: {ledger}\nacks: {self.acks(message_id)}\n{self.logs()}"
