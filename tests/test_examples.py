"""Each example runs with the commands in its docstring, against a real dev server."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from support import wait_until

from ironpush import IronMQ
from ironpush.devserver import DevServer
from ironpush.errors import NotFound

ROOT = Path(__file__).resolve().parent.parent
KEY = "example-key-0123456789abcdef"


@pytest.fixture(scope="module")
def dev() -> Iterator[DevServer]:
    with DevServer() as server:
        yield server


@pytest.fixture
def env(dev: DevServer, tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "IRONMQ_EMULATOR_HOST": dev.url,
        "IRONPUSH_SECRET_KEYS": KEY,
        "PYTHONPATH": str(ROOT),
        "HOME": str(tmp_path),
    }


def ironpush(*args: str, env: dict[str, str], cwd: Path) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "ironpush", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.fixture
def serve(env: dict[str, str], tmp_path: Path) -> Iterator[Callable[[str], str]]:
    """Start ``ironpush serve MODULE:app`` on a free port; returns the /ironmq base URL."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(module: str) -> str:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "ironpush",
                    "serve",
                    f"{module}:app",
                    "--port",
                    str(port),
                    "--log-level",
                    "warning",
                ],
                env=env,
                cwd=tmp_path,
            )
        )
        base = f"http://127.0.0.1:{port}"

        def healthy() -> bool:
            try:
                return httpx.get(base + "/ironmq/_health").status_code == 200
            except httpx.TransportError:
                return False

        wait_until(healthy)
        ironpush(
            "subscribe",
            "--app",
            f"{module}:router",
            "--base-url",
            base + "/ironmq",
            env=env,
            cwd=tmp_path,
        )
        return base

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=30)


def pushed(dev: DevServer, queue: str, message_id: str) -> list[str]:
    statuses = dev.client().queue(queue).wait_for_push(message_id, timeout=20)
    return [s.status or "" for s in statuses]


def size(mq: IronMQ, queue: str) -> int:
    try:
        return mq.queue(queue).size()
    except NotFound:  # created by the first post
        return 0


def test_starlette_service(dev: DevServer, serve: Callable[[str], str]) -> None:
    base = serve("examples.starlette_service")
    assert httpx.get(base + "/").text == "order service"  # the service's own routes still work
    orders = dev.client().queue("orders")
    good, poison = orders.post(json.dumps({"id": 1, "total": 25}), json.dumps({"total": 3}))
    assert pushed(dev, "orders", good) == ["deleted"]
    assert pushed(dev, "orders", poison) == ["deleted"]  # dropped: answered 200, not retried
    assert httpx.get(base + "/orders").json() == [{"id": 1, "total": 25}]
    health = httpx.get(base + "/ironmq/_health").json()
    assert health["counters"]["dropped"] == 1


def test_fastapi_service(dev: DevServer, serve: Callable[[str], str]) -> None:
    base = serve("examples.fastapi_service")
    [message_id] = dev.client().queue("signups").post(json.dumps({"email": "ada@example.com"}))
    assert pushed(dev, "signups", message_id) == ["deleted"]
    assert httpx.get(base + "/signups").json() == ["ada@example.com"]


def test_long_jobs_in_process_and_external_worker(
    dev: DevServer, serve: Callable[[str], str], env: dict[str, str], tmp_path: Path
) -> None:
    base = serve("examples.long_jobs")
    mq = dev.client()
    [thumb] = mq.queue("thumbnails").post("cat.png")
    assert pushed(dev, "thumbnails", thumb) == ["deleted"]
    [video] = mq.queue("videos").post("intro.mp4")
    # The handler answered 202 and handed the job to the work queue.
    wait_until(lambda: size(mq, "video-work") == 1)
    statuses = mq.queue("videos").get_message_push_statuses
    wait_until(lambda: [s.status for s in statuses(video)] == ["reserved"], what="the 202")
    worker = subprocess.run(
        [sys.executable, "-m", "examples.worker", "--service", base + "/ironmq", "--once"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert worker.returncode == 0, worker.stderr
    assert "transcoded intro.mp4: acked" in worker.stdout
    assert pushed(dev, "videos", video) == ["deleted"]
    assert mq.queue("video-work").size() == 0
