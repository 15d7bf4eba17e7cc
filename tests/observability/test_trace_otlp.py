"""The same trace across processes, exported over OTLP/HTTP to a collector the test runs.

Four processes: a producer script (posts inside its span), the dev server (this process, no
SDK), the receiver under uvicorn and a prefork ``celery worker``, each of the last three with
the SDK and the OTLP/HTTP exporter (``otlp_setup.py``). The collector parses the protobuf
requests; the spans must form the one trace of ``trace_kit.check_one_trace``, each from the
process that did the work, and carry no secret.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from support import free_port, wait_until
from trace_kit import REDIS_URL, OtlpCollector, check_one_trace, leaks, named, redis_names

from ironpush._signing import DEFAULT_SECRET_HEADER, push_secret
from ironpush.client._models import Subscriber
from ironpush.devserver import DevServer

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
KEYS = ["trace-otlp-key-0123456789abcdef-0123456789"]
TOKEN = "trace-otlp-token-s3cret-0123456789abcdef"


class Processes:
    """The receiver and the worker, each in its own session (killed as a group)."""

    def __init__(self, tmp: Path, env: dict[str, str]) -> None:
        self.tmp = tmp
        self.env = env
        self.running: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, *command: str) -> subprocess.Popen[bytes]:
        log = (self.tmp / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            command,
            cwd=HERE,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.running.append(proc)
        return proc

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in self.tmp.glob("*.log"))

    def stop(self) -> None:
        for proc in self.running:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.running:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)


@pytest.fixture
def dev() -> Iterator[DevServer]:
    with DevServer(token=TOKEN) as server:
        yield server


def test_one_trace_across_producer_receiver_and_worker_processes_over_otlp(
    dev: DevServer, queue_name: str, tmp_path: Path
) -> None:
    tokens = tmp_path / "tokens.txt"
    tokens.touch()
    with OtlpCollector() as collector, redis_names() as unique:
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT), str(HERE)]),
            "IRONMQ_EMULATOR_HOST": dev.url,
            "IRON_TOKEN": TOKEN,
            "IRONPUSH_SECRET_KEYS": ",".join(KEYS),
            "IRONPUSH_STORE": f"{REDIS_URL}?prefix={unique}",
            "TRACE_TEST_OTLP": collector.endpoint,
            "TRACE_TEST_QUEUE": queue_name,
            "TRACE_TEST_BROKER": REDIS_URL,
            "TRACE_TEST_CELERY_QUEUE": unique,
            "TRACE_TEST_TOKENS": str(tokens),
        }
        processes = Processes(tmp_path, env)
        try:
            port = free_port()
            processes.start(
                "receiver",
                *(sys.executable, "-m", "uvicorn", "otlp_service:app"),
                *("--port", str(port), "--log-level", "warning"),
            )
            processes.start(
                "worker",
                *(sys.executable, "-m", "celery", "-A", "otlp_tasks", "worker"),
                *("--pool", "prefork", "--concurrency", "1", "--loglevel", "info"),
                *("--without-mingle", "--without-gossip", "--without-heartbeat"),
            )
            url = f"http://127.0.0.1:{port}"
            health = url + "/_health"
            wait_until(lambda: _answers(health), 60, "the receiver", report=processes.logs)
            wait_until(
                lambda: b" ready." in (tmp_path / "worker.log").read_bytes(),
                60,
                "the celery worker",
                report=processes.logs,
            )
            dev.client().create_queue(
                queue_name,
                type="multicast",
                subscribers=[
                    Subscriber(
                        name=name,
                        url=f"{url}/{name}",
                        headers={DEFAULT_SECRET_HEADER: push_secret(queue_name, name, KEYS)},
                    )
                    for name in ("jobs", "celery")
                ],
            )
            produced = subprocess.run(
                [sys.executable, str(HERE / "otlp_producer.py")],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert produced.returncode == 0, produced.stderr
            message_id = produced.stdout.strip()

            def both_acked() -> bool:
                spans = collector.snapshot()
                return len(named(spans, f"settle {queue_name}")) == 2 and bool(
                    named(spans, "job trace_tests.bill")
                )

            wait_until(both_acked, 90, "both acks' settle spans", report=processes.logs)
        finally:
            processes.stop()
        spans = collector.snapshot()

    roles = check_one_trace(
        spans,
        queue=queue_name,
        message_id=message_id,
        job="render_invoice",
        task="trace_tests.bill",
    )
    assert roles["send"].service == "producer"
    assert {roles["process jobs"].service, roles["job"].service} == {"receiver"}
    assert roles["outbox_ack"].service == "receiver"
    assert {roles["task"].service, roles["task_ack"].service} == {"worker"}
    handed = [t for t in tokens.read_text().split() if t]
    assert handed
    secrets = [TOKEN, *KEYS, *handed]
    secrets += [push_secret(queue_name, n, KEYS) for n in ("jobs", "celery")]
    assert leaks(spans, secrets) == []
    for body in collector.bodies:  # the raw requests too (resource attributes included)
        assert not any(secret.encode() in body for secret in secrets)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False
