"""End to end: the dev server's pusher delivers to a PushRouter served by uvicorn on a real port.

Covers the 200 path, 202 + in-process job + ack, a job outliving ``retries_delay`` (redelivery,
one run, ack of the new reservation), a failing job retried, ``kill -9`` of a receiver process
mid-job (SQLite dedupe + ledger), external-worker acks with the token, bad and rotated keys,
the query-string secret, and a FastAPI mount.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount
from support import free_port, wait_until

from ironpush._signing import load_ack_token, push_secret
from ironpush.client import IronMQ
from ironpush.client._models import Subscriber
from ironpush.devserver import DevServer
from ironpush.integrations.acks import PushAcks
from ironpush.receiver._outcomes import Defer, PushMessage
from ironpush.receiver._router import PushRouter
from ironpush.server_thread import ServerThread

KEYS = ["e2e-old-key", "e2e-new-key"]
HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def dev() -> Iterator[DevServer]:
    with DevServer(push_timeout=5.0) as server:
        yield server


@pytest.fixture
def mq(dev: DevServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[IronMQ]:
    # Routers build their client from configuration: point it at the dev server.
    monkeypatch.setenv("IRONMQ_EMULATOR_HOST", dev.url)
    with dev.client() as client:
        yield client


@contextmanager
def serve(router: PushRouter, app: Any = None) -> Iterator[str]:
    """Serve ``router`` mounted at /ironmq; yields the mount's public URL."""
    app = app or Starlette(routes=[Mount("/ironmq", app=router)], lifespan=router.lifespan)
    with ServerThread(app) as server:
        yield server.url + "/ironmq"


def subscribe(
    mq: IronMQ,
    router: PushRouter,
    base: str,
    *,
    retries: int = 20,
    delay: float = 0.1,
    secret_in: str = "header",
) -> None:
    for sub in router.subscriptions(base, secret_in=secret_in):  # type: ignore[arg-type]
        mq.create_queue(
            sub.queue,
            type="multicast",
            subscribers=[sub.subscriber],
            retries=retries,
            retries_delay=delay,
        )


def status_of(mq: IronMQ, queue: str, message_id: str, timeout: float = 15.0) -> Any:
    [status] = mq.queue(queue).wait_for_push(message_id, timeout=timeout)
    return status


def test_200_path_deletes_the_message(mq: IronMQ, queue_name: str) -> None:
    router = PushRouter(secret_keys=KEYS)
    seen: list[PushMessage] = []
    router.add_route("/orders", seen.append, queue=queue_name, subscriber="billing", json=True)
    with serve(router) as base:
        subscribe(mq, router, base)
        [mid] = mq.queue(queue_name).post('{"id": 1}')
        status = status_of(mq, queue_name, mid)
    assert (status.status, status.status_code, status.tries) == ("deleted", 200, 1)
    [msg] = seen
    assert msg.json() == {"id": 1}
    assert msg.id == mid
    assert msg.subscriber_name == "billing"
    assert msg.reservation_id


def test_deferred_job_is_acked_and_the_push_deleted(mq: IronMQ, queue_name: str) -> None:
    router = PushRouter(secret_keys=KEYS)
    jobs: list[str] = []

    @router.route("/jobs", queue=queue_name, subscriber="worker")
    async def handle(msg: PushMessage) -> Defer:
        return Defer(jobs.append, msg.text)

    with serve(router) as base:
        subscribe(mq, router, base, delay=30.0)  # the reservation outlives any ack
        [mid] = mq.queue(queue_name).post("payload")
        status = status_of(mq, queue_name, mid)
    assert (status.status, status.status_code, status.tries) == ("deleted", 202, 1)
    assert jobs == ["payload"]


def test_job_longer_than_retries_delay_runs_once_and_acks_the_new_reservation(
    mq: IronMQ, dev: DevServer, queue_name: str
) -> None:
    router = PushRouter(secret_keys=KEYS)
    runs: list[str] = []
    redelivered = threading.Event()

    @router.route("/slow", queue=queue_name, subscriber="worker")
    def handle(msg: PushMessage) -> Defer:
        return Defer(job, msg.id)

    def job(message_id: str) -> None:
        runs.append(message_id)
        assert redelivered.wait(10)  # outlive the 202 reservation

    with serve(router) as base:
        subscribe(mq, router, base, delay=30.0)
        [mid] = mq.queue(queue_name).post("slow")
        wait_until(lambda: runs == [mid], what="the job")
        # the 202 reservation runs out now (a dev-server control, not a short retries_delay)
        dev.expire(queue_name, mid, subscriber="worker")
        wait_until(lambda: len(answered(dev, mid)) >= 2, what="the redelivery's answer")
        redelivered.set()
        status = status_of(mq, queue_name, mid)
    deliveries = dev.deliveries(message_id=mid)
    assert status.status == "deleted"
    assert runs == [mid]
    codes = [d["status_code"] for d in deliveries]
    assert len({d["reservation_id"] for d in deliveries}) == len(deliveries) == 2
    assert router.counters.totals["duplicates"] == 1
    # the job's ack used the newest reservation: no late ack, no further push
    assert codes == [202, 202]
    assert router.counters.totals["late_acks"] == 0


def answered(dev: DevServer, message_id: str) -> list[int]:
    """The status codes the router answered for ``message_id``'s pushes so far."""
    return [d["status_code"] for d in dev.deliveries(message_id=message_id) if d["status_code"]]


def test_failing_job_is_redelivered_and_then_succeeds(mq: IronMQ, queue_name: str) -> None:
    router = PushRouter(secret_keys=KEYS)
    attempts: list[int] = []

    @router.route("/flaky", queue=queue_name, subscriber="worker")
    async def handle(msg: PushMessage) -> Defer:
        return Defer(job, msg.attempt)

    async def job(attempt: int) -> None:
        attempts.append(attempt)
        if attempt == 1:
            raise RuntimeError("first attempt fails")

    with serve(router) as base:
        subscribe(mq, router, base, delay=0.1)
        [mid] = mq.queue(queue_name).post("x")
        status = status_of(mq, queue_name, mid)
    assert status.status == "deleted"
    assert attempts == [1, 2]
    assert router.counters.totals["jobs_failed"] == 1


def external_worker_router(queue_name: str) -> tuple[PushRouter, list[str]]:
    """A router whose handler hands every push to an "external worker" (the returned list)."""
    router = PushRouter(secret_keys=KEYS)
    tokens: list[str] = []

    @router.route("/ext", queue=queue_name, subscriber="worker")
    async def handle(msg: PushMessage) -> Defer:
        tokens.append(msg.ack_token)
        return Defer()

    return router, tokens


def test_external_worker_acks_with_the_token_through_the_router(
    mq: IronMQ, dev: DevServer, queue_name: str
) -> None:
    router, tokens = external_worker_router(queue_name)
    with serve(router) as base:
        subscribe(mq, router, base, delay=30.0)
        [mid] = mq.queue(queue_name).post("x")
        wait_until(lambda: bool(tokens), what="the push")
        # the worker is slower than retries_delay: the reservation runs out (now, on demand),
        # IronMQ pushes again and the router keeps the newest reservation
        [expired] = dev.expire(queue_name, mid, subscriber="worker")
        assert expired["reservation_id"] == load_ack_token(tokens[0], KEYS)[1].reservation_id
        wait_until(lambda: answered(dev, mid) == [202, 202], what="the redelivery's answer")
        # the token's own reservation has expired: only the newest one can succeed
        answer = httpx.post(base + "/_ack", content=tokens[0], timeout=10)
        assert answer.json() == {"status": "acked"}
        status = status_of(mq, queue_name, mid)
    assert status.status == "deleted"
    assert len(tokens) == 1
    assert router.counters.totals["late_acks"] == 0


def test_external_worker_acks_with_the_token_through_the_client(
    mq: IronMQ, dev: DevServer, queue_name: str
) -> None:
    router, tokens = external_worker_router(queue_name)
    with serve(router) as base:
        subscribe(mq, router, base, delay=30.0)  # the reservation outlives the worker
        [mid] = mq.queue(queue_name).post("x")
        wait_until(lambda: bool(tokens), what="the push")
        worker = PushAcks(client=lambda: dev.async_client(secret_keys=KEYS))  # no store
        assert worker.ack(tokens[0]) == "acked"
        status = status_of(mq, queue_name, mid)
    assert status.status == "deleted"


def test_rotated_keys_accept_old_secrets_and_bad_secrets_never_reach_the_handler(
    mq: IronMQ, queue_name: str
) -> None:
    router = PushRouter(secret_keys=KEYS)  # rotated: old key still listed, new one signs
    seen: list[str] = []
    router.add_route("/r", lambda m: seen.append(m.text), queue=queue_name, subscriber="s")
    bad_queue = queue_name + "-bad"
    router.add_route("/bad", lambda m: seen.append("bad"), queue=bad_queue, subscriber="s")
    with serve(router) as base:
        old = push_secret(queue_name, "s", KEYS[:1])  # registered before the rotation
        mq.create_queue(
            queue_name,
            type="multicast",
            retries=2,
            retries_delay=0.05,
            subscribers=[Subscriber("s", base + "/r", {"X-Ironpush-Secret": old})],
        )
        bad = push_secret(bad_queue, "s", ["attacker"])
        mq.create_queue(
            bad_queue,
            type="multicast",
            retries=1,
            retries_delay=0.05,
            subscribers=[Subscriber("s", base + "/bad", {"X-Ironpush-Secret": bad})],
        )
        [good_id] = mq.queue(queue_name).post("good")
        [bad_id] = mq.queue(bad_queue).post("evil")
        assert status_of(mq, queue_name, good_id).status == "deleted"
        refused = status_of(mq, bad_queue, bad_id)
    assert (refused.status, refused.status_code) == ("error", 403)
    assert seen == ["good"]


def test_secret_in_the_query_string(mq: IronMQ, queue_name: str) -> None:
    router = PushRouter(secret_keys=KEYS)
    seen: list[str] = []
    router.add_route("/q", lambda m: seen.append(m.text), queue=queue_name, subscriber="s")
    with serve(router) as base:
        subscribe(mq, router, base, secret_in="query")
        [mid] = mq.queue(queue_name).post("via query")
        assert status_of(mq, queue_name, mid).status == "deleted"
    assert seen == ["via query"]


def test_fastapi_mount(mq: IronMQ, queue_name: str) -> None:
    from fastapi import FastAPI

    router = PushRouter(secret_keys=KEYS)
    seen: list[str] = []
    router.add_route("/orders", lambda m: seen.append(m.text), queue=queue_name, subscriber="s")
    app = FastAPI(lifespan=router.lifespan)
    app.mount("/ironmq", router)

    @app.get("/hello")
    def hello() -> dict[str, str]:
        return {"hello": "world"}

    with serve(router, app) as base:
        subscribe(mq, router, base)
        [mid] = mq.queue(queue_name).post("from fastapi")
        assert status_of(mq, queue_name, mid).status == "deleted"
        assert httpx.get(base.removesuffix("/ironmq") + "/hello").json() == {"hello": "world"}
        assert httpx.get(base + "/_health").json()["counters"]["acked"] == 1
    assert seen == ["from fastapi"]


# --- kill -9 -----------------------------------------------------------------------------------


@contextmanager
def receiver_process(port: int, env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "receiver_app:app",
            "--app-dir",
            str(HERE),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env={**os.environ, **env},
    )
    try:

        def healthy() -> bool:
            assert proc.poll() is None, "receiver process exited"
            try:
                return httpx.get(f"http://127.0.0.1:{port}/ironmq/_health").status_code == 200
            except httpx.TransportError:
                return False

        wait_until(healthy, timeout=30, what="the receiver process")
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


def jobs_receiver(
    mq: IronMQ, queue: str, tmp_path: Path, *, emulator: str, retries_delay: float
) -> tuple[int, dict[str, str]]:
    """A port and the environment for ``receiver_app.py`` (files in ``tmp_path``: the SQLite
    store ``dedupe.db``, the ``ledger.db`` of side effects, the ``go`` flag), with ``queue``
    registered to push to it (100 retries, ``retries_delay``)."""
    port = free_port()
    env = {
        "E2E_STORE": str(tmp_path / "dedupe.db"),
        "E2E_LEDGER": str(tmp_path / "ledger.db"),
        "E2E_FLAG": str(tmp_path / "go"),
        "E2E_QUEUE": queue,
        "E2E_CLAIM_LEASE": "1.0",
        "IRONPUSH_SECRET_KEYS": ",".join(KEYS),
        "IRONMQ_EMULATOR_HOST": emulator,
        # support.wait_until, the tests' one way to wait, for the job's wait on the flag
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(HERE.parent), os.environ.get("PYTHONPATH")])
        ),
    }
    url = f"http://127.0.0.1:{port}/ironmq/jobs"
    secret = push_secret(queue, "worker", KEYS)
    mq.create_queue(
        queue,
        type="multicast",
        retries=100,
        retries_delay=retries_delay,
        subscribers=[Subscriber("worker", url, {"X-Ironpush-Secret": secret})],
    )
    return port, env


def ledger(path: Path, event: str) -> list[int]:
    if not path.exists():
        return []
    with sqlite3.connect(path, timeout=10) as db:
        try:
            rows = db.execute("SELECT pid FROM ledger WHERE event = ?", (event,)).fetchall()
        except sqlite3.OperationalError:  # table not created yet
            return []
    return [r[0] for r in rows]


def claim_state(path: Path, message_id: str) -> str | None:
    if not path.exists():
        return None
    with sqlite3.connect(path, timeout=10) as db:
        try:
            row = db.execute(
                "SELECT state FROM ironpush_claims WHERE message_id = ?", (message_id,)
            ).fetchone()
        except sqlite3.OperationalError:  # schema not created yet
            return None
    return None if row is None else str(row[0])


def test_kill_9_during_a_deferred_job_is_processed_once_after_restart(
    mq: IronMQ, dev: DevServer, queue_name: str, tmp_path: Path
) -> None:
    ledger_path, flag = tmp_path / "ledger.db", tmp_path / "go"
    port, env = jobs_receiver(mq, queue_name, tmp_path, emulator=dev.url, retries_delay=0.2)
    with receiver_process(port, env) as first:
        [mid] = mq.queue(queue_name).post("work")
        wait_until(lambda: ledger(ledger_path, "job_start") == [first.pid], what="the job")
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
    flag.touch()
    with receiver_process(port, env) as second:
        status = status_of(mq, queue_name, mid, timeout=30)
        assert status.status == "deleted"
        assert ledger(ledger_path, "job_done") == [second.pid]  # the side effect happened once
        assert ledger(ledger_path, "job_start") == [first.pid, second.pid]
        # later redeliveries (none expected now) would be answered from the SQLite store
        assert set(ledger(ledger_path, "handler")) == {first.pid, second.pid}


def test_kill_9_after_the_job_but_before_the_ack_is_answered_from_the_sqlite_store(
    mq: IronMQ, dev: DevServer, queue_name: str, tmp_path: Path
) -> None:
    ledger_path, store = tmp_path / "ledger.db", tmp_path / "dedupe.db"
    (tmp_path / "go").touch()  # the job finishes at once
    # acks cannot reach IronMQ: the message stays reserved until the 202 runs out
    nowhere = f"127.0.0.1:{free_port()}"
    port, env = jobs_receiver(mq, queue_name, tmp_path, emulator=nowhere, retries_delay=1.0)
    with receiver_process(port, env) as first:
        [mid] = mq.queue(queue_name).post("work")
        # kill once the job's success is recorded in the dedupe store (the ack cannot be sent)
        wait_until(lambda: claim_state(store, mid) == "done", what="the job's completion")
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
    with receiver_process(port, env):
        status = status_of(mq, queue_name, mid, timeout=30)
    # the redelivery was answered 200 from the durable dedupe store, without the handler
    assert (status.status, status.status_code) == ("deleted", 200)
    assert ledger(ledger_path, "handler") == [first.pid]
    assert ledger(ledger_path, "job_done") == [first.pid]
