"""The servers the runs use (Redis, PostgreSQL): where they are, and restarts that touch only
what the test started.

The shared servers are found by ``IRONPUSH_TEST_REDIS_URL`` / ``IRONPUSH_TEST_POSTGRES_DSN``
(defaults: the local ports); an unreachable one fails with one line naming the URL and how to
start it. A test that breaks a server starts its own (:mod:`.servers`: ``OwnRedis``,
``OwnPostgres``), whose :class:`Service` view restarts that server. :meth:`Service.restart` of
a server the test did not start is refused, unless ``IRONPUSH_TEST_ALLOW_RESTART=1`` says so:
then it restarts the server the URL points at (the Redis on that port, the PostgreSQL cluster
listening on that port), and waits (with a deadline) until it answers — it is always left
running.
"""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlsplit

from support import wait_until

if TYPE_CHECKING:
    from .servers import OwnServer

ALLOW_RESTART = "IRONPUSH_TEST_ALLOW_RESTART"
REDIS_START = (
    "redis-server --daemonize yes --bind 127.0.0.1 -::1 --port {port} --save '' "
    "--appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log"
)


def postgres_cluster() -> str:
    versions = sorted(os.listdir("/etc/postgresql")) if Path("/etc/postgresql").is_dir() else []
    return versions[-1] if versions else "16"


@dataclass(frozen=True)
class Service:
    kind: str  # "redis" or "postgres"
    url: str
    own: OwnServer | None = None  # the server this test started (it may break that one)

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or (6379 if self.kind == "redis" else 5432)

    @property
    def start_command(self) -> str:
        if self.kind == "redis":
            return REDIS_START.format(port=self.port)
        version, name = postgres_cluster_on(self.port)
        return f"pg_ctlcluster --skip-systemctl-redirect {version} {name} start"

    def reachable(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=2):
                return True
        except OSError:
            return False

    def require(self) -> None:
        """Fail (never skip) with one line when the server is not there."""
        if not self.reachable():
            raise AssertionError(
                f"{self.kind} is not reachable at {self.url}; start it with: {self.start_command}"
            )

    def url_via(self, address: str) -> str:
        """The same URL with the host replaced (hosts reach the server through the gateway)."""
        parts = urlsplit(self.url)
        netloc = parts.netloc.replace(parts.hostname or "", address, 1)
        return parts._replace(netloc=netloc).geturl()

    def restart(
        self, *, down_for: float = 1.0, on_down: Callable[[], object] | None = None
    ) -> float:
        """Stop the server, keep it down ``down_for`` s, start it again.

        ``on_down`` runs while the server is down (before ``down_for``), e.g. to block until a
        test has seen the outage. Returns the seconds it was unreachable. A server this test did
        not start is restarted only with ``IRONPUSH_TEST_ALLOW_RESTART=1`` (else AssertionError)."""
        if self.own is not None:
            return self.own.restart(down_for=down_for, on_down=on_down)
        if os.environ.get(ALLOW_RESTART) != "1":
            raise AssertionError(
                f"refusing to restart the {self.kind} server at {self.url}: this test did not "
                f"start it (use tests/faults/servers.py), or set {ALLOW_RESTART}=1"
            )
        return self._restart_shared(down_for, on_down)

    def _restart_shared(self, down_for: float, on_down: Callable[[], object] | None) -> float:
        stopped = time.monotonic()
        if self.kind == "redis":
            subprocess.run(
                ["redis-cli", "-h", self.host, "-p", str(self.port), "shutdown", "nosave"],
                capture_output=True,
                check=False,
                timeout=30,
            )
        else:
            version, name = postgres_cluster_on(self.port)
            subprocess.run(
                ["pg_ctlcluster", "--skip-systemctl-redirect", version, name, "stop", "-m", "fast"],
                capture_output=True,
                check=True,
                timeout=60,
            )
        wait_until(lambda: not self.reachable(), 30, f"{self.kind} to stop")
        try:
            if on_down is not None:
                on_down()
            time.sleep(down_for)  # the fault itself: the server is away for this long
        finally:  # always leave the server running
            subprocess.run(
                self.start_command, shell=True, capture_output=True, check=False, timeout=60
            )
        wait_until(self.reachable, 60, f"{self.kind} to start again ({self.start_command})")
        return time.monotonic() - stopped


def postgres_cluster_on(port: int) -> tuple[str, str]:
    """(version, name) of the Debian PostgreSQL cluster configured on ``port``
    (``pg_lsclusters``); the newest ``main`` when none is listed."""
    try:
        out = subprocess.run(
            ["pg_lsclusters", "--no-header"], capture_output=True, text=True, timeout=30
        ).stdout
    except OSError:
        out = ""
    for line in out.splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[2] == str(port):
            return fields[0], fields[1]
    return postgres_cluster(), "main"


class RestartWatcher:
    """Notices every restart of the server while it runs (ours, or another test's on the shared
    server): polls the server's identity (Redis ``run_id``, PostgreSQL's start time) and keeps
    the windows ``(last seen up, first seen up again)`` in which it changed or was down."""

    def __init__(self, service: Service, interval: float = 0.1) -> None:
        self.service = service
        self.interval = interval
        self.windows: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> RestartWatcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def identity(self) -> str | None:
        try:
            if self.service.kind == "redis":
                import redis as redis_py

                client = redis_py.Redis(
                    host=self.service.host, port=self.service.port, socket_timeout=2
                )
                try:
                    return str(client.info("server")["run_id"])
                finally:
                    client.close()
            import psycopg

            with psycopg.connect(self.service.url, connect_timeout=2) as db:
                row = db.execute("SELECT pg_postmaster_start_time()::text").fetchone()
                return str(row[0]) if row else None
        except Exception:  # down, starting, or refusing clients: not an identity
            return None

    def _run(self) -> None:
        last, last_seen = self.identity(), time.time()
        while not self._stop.wait(self.interval):
            now_id = self.identity()
            if now_id is None:
                continue
            if now_id != last:
                self.windows.append((last_seen, time.time()))
            last, last_seen = now_id, time.time()


def drop_namespace(store_url: str, service: Service | None = None) -> None:
    """Remove what a run left in a server: its Redis keys (``?prefix=``) or its PostgreSQL
    schema (``?schema=``), reached directly on 127.0.0.1 (``service``: the server the run
    used; default the shared one of that kind)."""
    query = dict(parse_qsl(urlsplit(store_url).query))
    if "prefix" in query:
        import redis as redis_py

        client = redis_py.Redis.from_url((service or redis()).url)
        try:
            keys = list(client.scan_iter(match=f"{query['prefix']}:*", count=1000))
            for start in range(0, len(keys), 500):
                client.delete(*keys[start : start + 500])
        finally:
            client.close()
    elif "schema" in query:
        import psycopg

        with psycopg.connect((service or postgres()).url, autocommit=True) as db:
            db.execute(f'DROP SCHEMA IF EXISTS "{query["schema"]}" CASCADE')


def redis() -> Service:
    return Service("redis", os.environ.get("IRONPUSH_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"))


def postgres() -> Service:
    dsn = os.environ.get("IRONPUSH_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
    return Service("postgres", dsn)


def service(kind: str) -> Service:
    return redis() if kind == "redis" else postgres()
