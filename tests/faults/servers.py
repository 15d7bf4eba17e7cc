"""Servers a test starts for itself: a Redis and a PostgreSQL cluster of its own, on free ports.

A test that must break a server (restart it, pause it with ``kill -STOP``, terminate its
connections, fill its memory) breaks one of these, never the shared ones that
``IRONPUSH_TEST_REDIS_URL`` / ``IRONPUSH_TEST_POSTGRES_DSN`` name::

    with OwnRedis(tmp_path, "--maxmemory", "2mb") as redis:
        store = RedisStore(redis.url)
        redis.restart(down_for=1.0)          # SHUTDOWN NOSAVE, then the same command again
        with redis.paused():                  # kill -STOP ... kill -CONT
            ...

    with OwnPostgres(tmp_path) as pg:         # initdb + pg_ctl in tmp_path, database "test"
        pg.terminate_backends()               # pg_terminate_backend of every other session
        pg.restart(down_for=1.0)

Both keep their output in a log file in the work directory (quoted when they fail to start),
wait for every change with a deadline, and are stopped (SIGKILL as a last resort) on exit.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Self

from support import free_port, wait_until

from .services import Service


def _reachable(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True
    except OSError:
        return False


def _tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return f"(no log at {path})"
    return f"--- last lines of {path} ---\n" + "\n".join(text[-lines:])


class OwnServer:
    """What both servers share: a work directory, a port, a :class:`Service` view, restarts."""

    kind = ""

    def __init__(self, workdir: Path | None) -> None:
        self._made_dir = workdir is None
        self.workdir = (
            Path(tempfile.mkdtemp(prefix=f"own-{self.kind}-")) if workdir is None else workdir
        )
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.restarts = 0

    @property
    def url(self) -> str:
        raise NotImplementedError

    @property
    def service(self) -> Service:
        """The :class:`Service` view the fault harness uses (its restarts come back here)."""
        return Service(self.kind, self.url, own=self)

    def reachable(self) -> bool:
        return _reachable(self.port)

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def restart(
        self, *, down_for: float = 1.0, on_down: Callable[[], object] | None = None
    ) -> float:
        """Stop the server, keep it down ``down_for`` s (``on_down`` runs first), start it
        again on the same port; the seconds it was unreachable."""
        stopped = time.monotonic()
        self.stop()
        try:
            if on_down is not None:
                on_down()
            time.sleep(down_for)  # the fault itself: the server is away for this long
        finally:
            self.start()
        self.restarts += 1
        return time.monotonic() - stopped

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.stop()
        if self._made_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)


class OwnRedis(OwnServer):
    """``redis-server --port N --save '' --appendonly no`` (no persistence: a restart forgets
    everything, as the shared CI Redis does), plus any ``args`` (``"--maxmemory", "2mb"``)."""

    kind = "redis"

    def __init__(self, workdir: Path | None = None, *args: str) -> None:
        super().__init__(workdir)
        self.args = list(args)
        self.log = self.workdir / f"redis-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        argv += ["--save", "", "--appendonly", "no", "--dir", str(self.workdir)]
        argv += ["--logfile", str(self.log), *self.args]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        wait_until(self._answers, 30, f"redis-server on port {self.port}", report=self._report)

    def _answers(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"redis-server exited with {self.proc.returncode}\n{self._report()}")
        return self.cli("PING") == "PONG"

    def _report(self) -> str:
        return _tail(self.log)

    def cli(self, *command: str) -> str:
        """``redis-cli -p PORT COMMAND...``: its output, stripped ("" when it cannot connect)."""
        proc = subprocess.run(
            ["redis-cli", "-p", str(self.port), *command],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        return proc.stdout.strip()

    def stop(self) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        self.resume()  # a paused server cannot shut down
        self.cli("SHUTDOWN", "NOSAVE")
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)

    def pause(self) -> None:
        """``kill -STOP``: the server keeps its connections and answers nothing."""
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """``kill -CONT``."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.pid, signal.SIGCONT)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Paused for the block (resumed whatever happens in it)."""
        self.pause()
        try:
            yield
        finally:
            self.resume()

    def info(self, section: str) -> dict[str, str]:
        """``INFO section`` as a dict of strings."""
        out: dict[str, str] = {}
        for line in self.cli("INFO", section).splitlines():
            name, sep, value = line.strip().partition(":")
            if sep:
                out[name] = value
        return out


def postgres_bin() -> Path:
    """The newest PostgreSQL server binaries (Debian: ``/usr/lib/postgresql/*/bin``)."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3])
    )
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb is None:
        raise RuntimeError("no initdb found: install the PostgreSQL server binaries")
    return Path(initdb).parent


class OwnPostgres(OwnServer):
    """A private cluster: ``initdb`` in the work directory, ``pg_ctl start`` on a free port
    (trust authentication, user ``postgres``, database ``test``, ``fsync=off``). Run as the
    ``postgres`` user when this process is root (PostgreSQL refuses to run as root)."""

    kind = "postgres"

    def __init__(self, workdir: Path | None = None) -> None:
        super().__init__(workdir)
        self.bin = postgres_bin()
        # Its own directory under /tmp, not under ``workdir``: the postgres user must reach it
        # (pytest's tmp_path is under a 0700 directory of root's).
        self.home = Path(tempfile.mkdtemp(prefix=f"own-pg-{self.port}-"))
        self.data = self.home / "data"
        self.log = self.home / "server.log"
        self._initialized = False

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/test"

    def _run(self, *argv: str, timeout: float = 120) -> None:
        command = [str(self.bin / argv[0]), *argv[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        if proc.returncode != 0:
            raise RuntimeError(
                f"{' '.join(argv)} failed ({proc.returncode}): {proc.stderr.strip()}\n"
                f"{_tail(self.log)}"
            )

    def _init(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.home, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        self._initialized = True

    def start(self) -> None:
        if not self._initialized:
            self._init()
        options = (
            f"-p {self.port} -k {self.home} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c full_page_writes=off -c max_connections=200"
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-o", options, "start")
        wait_until(
            self.reachable, 60, f"postgres on port {self.port}", report=lambda: _tail(self.log)
        )
        if not self._has_test_db():
            self.sql("CREATE DATABASE test", database="postgres")

    def stop(self) -> None:
        if self._initialized and (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        wait_until(lambda: not self.reachable(), 30, f"postgres on port {self.port} to stop")

    def sql(self, statement: str, *, database: str = "test") -> list[tuple[object, ...]]:
        import psycopg

        url = f"postgresql://postgres@127.0.0.1:{self.port}/{database}"
        with psycopg.connect(url, autocommit=True, connect_timeout=10) as db:
            cursor = db.execute(statement)
            return cursor.fetchall() if cursor.description else []

    def _has_test_db(self) -> bool:
        rows = self.sql("SELECT 1 FROM pg_database WHERE datname = 'test'", database="postgres")
        return bool(rows)

    def sessions(self, database: str = "test") -> int:
        """Client sessions on ``database`` (this query's own excluded)."""
        rows = self.sql(
            "SELECT count(*) FROM pg_stat_activity "
            f"WHERE datname = '{database}' AND pid <> pg_backend_pid()",
            database="postgres",
        )
        return int(str(rows[0][0])) if rows else 0

    def terminate_backends(self, database: str = "test") -> int:
        """``pg_terminate_backend`` of every session on ``database`` but this one: how many."""
        rows = self.sql(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
            f"WHERE datname = '{database}' AND pid <> pg_backend_pid()",
            database="postgres",
        )
        return int(str(rows[0][0])) if rows else 0

    def start_time(self) -> str:
        return str(self.sql("SELECT pg_postmaster_start_time()::text")[0][0])

    def close(self) -> None:
        super().close()
        shutil.rmtree(self.home, ignore_errors=True)
