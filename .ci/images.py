"""Build ironpush's two images from this checkout and run a push through them, for real.

    python3 .ci/images.py        # as root on Debian bookworm; `.ci/run` calls it

Needs Debian's docker.io and debootstrap (`.ci/run` installs them) and the local Redis
(``IRONPUSH_TEST_REDIS_URL``, default ``redis://127.0.0.1:6379/0``). Only the standard library:
it runs before and apart from the test environment. Every wait has a deadline, and everything
it starts (dockerd, containers, volumes, Redis keys, temporary files) is removed at the end,
on failure too. Steps 1 and 2 are ``docker_engine.py``'s:

1. **dockerd** of its own: socket, data root and exec root in a temporary directory,
   ``--iptables=false --bridge=none``, overlay2 (vfs when overlay2 cannot start). Builds and
   containers use the host network (no registry, no bridge).
2. **The base image** the Dockerfiles name (``python:3.11-slim``), made without a registry:
   Debian bookworm by ``debootstrap`` with python3 and a virtualenv at ``/usr/local`` (so
   ``python``, ``pip`` and console scripts are on PATH as in the official image), imported
   with ``docker import``. The root filesystem is cached as a tarball in
   ``/var/cache/ironpush-ci`` (``IRONPUSH_CI_CACHE``): later runs on the machine only import
   it. The host's own CA certificates (``/usr/local/share/ca-certificates``, e.g. an egress
   proxy's) are layered on top at each run, never cached.
3. **The builds**, as the README says: ``docker build -t ironpush .`` (the wheel of this
   checkout) and ``docker build -t myservice examples/docker`` with that wheel in the
   template's optional ``wheels/`` folder (in a copy of the folder: the tree is not touched).
4. **The run**: the dev-server image; the template's FastAPI sample with 2 workers, first on
   SQLite in its ``/data`` volume, then on the local Redis (a key prefix of its own). Each
   time: Docker's HEALTHCHECK reports healthy, ``ironpush subscribe --app`` runs in the service
   container, ``ironpush post`` in the dev-server image, and the dev server records the push
   delivered (200) and acknowledged (queue empty). Then the dev server restarts and its queue
   is still there (the ``/data`` volume).
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from docker_engine import (
    SECRETS,
    Docker,
    log,
    make_base_image,
    phase,
    run,
    unmount_under,
    wait_until,
)

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "examples" / "docker"
REDIS_URL = os.environ.get("IRONPUSH_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
DEV_ONLY = {"pytest", "mypy", "ruff", "hypothesis", "playwright", "celery", "rq", "dramatiq"}
QUEUE = "emails"  # the sample service's route (examples/docker/myservice/app.py)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- builds


def build_images(docker: Docker, work: Path) -> None:
    docker("build", "--network", "host", "-t", "ironpush", ROOT, timeout=900)
    service = work / "service"
    shutil.copytree(TEMPLATE, service, ignore=shutil.ignore_patterns("wheels", "__pycache__"))
    run(
        sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
        "--wheel-dir", service / "wheels", ROOT,
        timeout=600,
    )  # fmt: skip
    docker("build", "--network", "host", "-t", "myservice", service, timeout=900)
    for image in ("ironpush", "myservice"):
        user = docker("run", "--rm", "--entrypoint", "id", image, "-u", quiet=True).strip()
        assert user == "10001", f"{image} runs as uid {user}"
        listing = docker(
            "run", "--rm", "--entrypoint", "pip", image, "list", "--format", "json", quiet=True
        )
        names = {p["name"].lower() for p in json.loads(listing)}
        assert "ironpush" in names, names
        assert not names & DEV_ONLY, f"{image} carries {names & DEV_ONLY}"


# --------------------------------------------------------------------------- the run


def redis_command(url: str, *args: str) -> Any:
    """One command to Redis over RESP (integer, bulk and array replies are enough here)."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), 10) as s:
        stream = s.makefile("rb")

        def send(*words: str) -> Any:
            encoded = [w.encode() for w in words]
            s.sendall(
                b"*%d\r\n" % len(encoded)
                + b"".join(b"$%d\r\n%s\r\n" % (len(w), w) for w in encoded)
            )
            return read()

        def read() -> Any:
            line = stream.readline().rstrip(b"\r\n")
            kind, rest = line[:1], line[1:]
            if kind == b"-":
                raise RuntimeError(f"redis: {rest.decode()}")
            if kind == b":":
                return int(rest)
            if kind == b"$":
                size = int(rest)
                return None if size < 0 else stream.read(size + 2)[:-2].decode()
            if kind == b"*":
                return [read() for _ in range(int(rest))]
            return rest.decode()

        send("SELECT", (parts.path or "/0").lstrip("/") or "0")
        return send(*args)


def redis_delete_prefix(url: str, prefix: str) -> int:
    cursor, deleted = "0", 0
    while True:
        cursor, keys = redis_command(url, "SCAN", cursor, "MATCH", f"{prefix}:*", "COUNT", "500")
        if keys:
            deleted += redis_command(url, "DEL", *keys)
        if cursor == "0":
            return deleted


class Scenario:
    def __init__(self, docker: Docker) -> None:
        self.docker = docker
        self.dev_port, self.service_port = free_port(), free_port()
        self.tag = f"ironpush-ci-{os.getpid()}"
        self.redis_prefix = self.tag
        self.key = docker("run", "--rm", "ironpush", "keygen", quiet=True).strip()
        SECRETS.append(self.key)

    def cli(self, *args: str) -> Any:
        """`ironpush ... --json` in the dev-server image (the image's "any other command")."""
        out = self.docker(
            "run", "--rm", "--network", "host",
            "-e", f"IRONMQ_EMULATOR_HOST=127.0.0.1:{self.dev_port}",
            "ironpush", *args, "--json",
            quiet=True,
        )  # fmt: skip
        return json.loads(out)

    def wait_healthy(self, container: str) -> None:
        def healthy() -> bool:
            state = json.loads(
                self.docker("inspect", "--format", "{{json .State}}", container, quiet=True)
            )
            if state["Status"] != "running":
                logs = self.docker("logs", "--tail", "50", container, quiet=True)
                raise RuntimeError(f"{container} is {state['Status']}:\n{logs}")
            return bool(state.get("Health", {}).get("Status") == "healthy")

        wait_until(f"{container}'s HEALTHCHECK", healthy, 120)
        log(f"{container}: healthy")

    def start_dev_server(self) -> str:
        # The image's own HEALTHCHECK command, on the port this run uses (the host network is
        # shared: the documented 8080 may be taken).
        test = json.loads(self.docker(
            "inspect", "--format", "{{json .Config.Healthcheck.Test}}", "ironpush", quiet=True
        ))  # fmt: skip
        assert test[0] == "CMD", test
        check = shlex.join(test[1:]).replace(":8080/", f":{self.dev_port}/")
        assert str(self.dev_port) in check, check
        name = f"{self.tag}-dev"
        self.docker(
            "run", "-d", "--name", name, "--network", "host",
            "--health-cmd", check, "--health-interval", "1s",
            "-v", f"{self.tag}-dev:/data",
            "ironpush", "dev", "--host", "127.0.0.1", "--port", str(self.dev_port),
            "--db", "/data/dev.sqlite",
        )  # fmt: skip
        self.wait_healthy(name)
        return name

    def start_service(self, store: str, **env: str) -> str:
        name = f"{self.tag}-service-{store}"
        settings = {
            "IRONPUSH_HOST": "127.0.0.1",
            "IRONPUSH_PORT": str(self.service_port),
            "IRONPUSH_WORKERS": "2",
            "IRONMQ_EMULATOR_HOST": f"127.0.0.1:{self.dev_port}",
            "IRONPUSH_SECRET_KEYS": self.key,
            **env,
        }
        flags = [f"--env={k}={v}" for k, v in settings.items()]
        self.docker(
            "run", "-d", "--name", name, "--network", "host", "--health-interval", "1s",
            "-v", f"{self.tag}-service:/data", *flags, "myservice",
        )  # fmt: skip
        self.wait_healthy(name)
        return name

    def push_through(self, service: str, body: dict[str, str]) -> str:
        """Subscribe the service's routes, post one message, wait until it is acknowledged."""
        base = f"http://127.0.0.1:{self.service_port}/ironmq"
        self.docker(
            "exec", service, "ironpush", "subscribe", "--app", "myservice.app:router",
            "--base-url", base,
        )  # fmt: skip
        [message_id] = self.cli("post", QUEUE, json.dumps(body))["ids"]
        assert isinstance(message_id, str), message_id
        last: list[Any] = []

        def acknowledged() -> bool:
            last[:] = [self.cli("statuses", QUEUE, message_id), self.cli("info", QUEUE)["size"]]
            statuses, size = last
            return [(s["status"], s["status_code"]) for s in statuses] == [("deleted", 200)] and (
                size == 0
            )

        try:
            wait_until(f"message {message_id} delivered and acknowledged", acknowledged, 90)
        except TimeoutError:
            log(f"last push statuses and queue size: {last}")
            raise
        log(f"{service}: message {message_id} delivered (200) and acknowledged, queue empty")
        return message_id

    def stop(self, container: str) -> None:
        self.docker("stop", "--time", "30", container, timeout=120)
        code = self.docker("inspect", "--format", "{{.State.ExitCode}}", container, quiet=True)
        assert code.strip() == "0", f"{container} exited {code.strip()} on SIGTERM"
        self.docker("rm", container, quiet=True)

    def run(self) -> None:
        dev = self.start_dev_server()

        service = self.start_service("sqlite")  # the image's IRONPUSH_STORE=/data/ironpush.db
        self.push_through(service, {"to": "sqlite@example.com"})
        owner = self.docker("exec", service, "stat", "-c", "%U", "/data/ironpush.db", quiet=True)
        assert owner.strip() == "app", owner
        self.stop(service)

        store = f"{REDIS_URL}{'&' if '?' in REDIS_URL else '?'}prefix={self.redis_prefix}"
        service = self.start_service("redis", IRONPUSH_STORE=store)
        message_id = self.push_through(service, {"to": "redis@example.com"})
        claim = f"{self.redis_prefix}:c:{len(message_id)}:{message_id}:mailer"
        assert redis_command(REDIS_URL, "EXISTS", claim) == 1, f"no {claim} in Redis"
        log(f"{service}: the claim is in Redis ({claim})")
        self.stop(service)

        self.docker("restart", "--time", "30", dev, timeout=120)
        self.wait_healthy(dev)
        info = self.cli("info", QUEUE)
        assert info["total_messages"] == 2, info
        log(f"{dev}: restarted, {QUEUE} kept its 2 messages in the /data volume")

    def cleanup(self) -> None:
        with contextlib.suppress(OSError, RuntimeError):
            removed = redis_delete_prefix(REDIS_URL, self.redis_prefix)
            log(f"removed {removed} Redis key(s) under {self.redis_prefix}:")


def dump_logs(docker: Docker) -> None:
    with contextlib.suppress(Exception):
        for name in docker("ps", "-a", "--format", "{{.Names}}", quiet=True).split():
            log(f"--- logs of {name}")
            print(docker("logs", "--tail", "80", name, quiet=True), flush=True)


def main() -> int:
    if os.geteuid() != 0:
        print("images: run as root (dockerd, debootstrap)", file=sys.stderr)
        return 2
    for tool in ("dockerd", "docker"):
        if shutil.which(tool) is None:
            print(f"images: {tool} is missing: apt-get install docker.io", file=sys.stderr)
            return 2
    timings: dict[str, float] = {}
    work = Path(tempfile.mkdtemp(prefix="ironpush-ci-", dir="/var/tmp"))
    docker = Docker(work / "docker")
    scenario: Scenario | None = None
    # A SIGTERM (CI cancelled) unwinds through the finally blocks like an error.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        with phase("dockerd", timings):
            docker.start()
        with phase("base image", timings):
            make_base_image(docker, work)
        with phase("build", timings):
            build_images(docker, work)
        with phase("run", timings):
            scenario = Scenario(docker)
            scenario.run()
    except BaseException:
        dump_logs(docker)
        raise
    finally:
        if scenario is not None:
            scenario.cleanup()
        docker.remove_everything()
        docker.stop()
        unmount_under(work)
        shutil.rmtree(work, ignore_errors=True)
    log("passed: " + ", ".join(f"{name} {secs:.0f} s" for name, secs in timings.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
