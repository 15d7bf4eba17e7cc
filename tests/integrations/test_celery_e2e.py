"""Pushes handed to Celery, end to end, with every part real.

The dev server pushes to a receiver served by ``ironpush serve --workers 2 --store SPEC``; its
handler calls ``enqueue(process, msg, ...)`` (202, the ack token in the task's headers); a real
``celery worker`` (prefork, on the local Redis broker, and once on RabbitMQ) runs the task and
acknowledges the push on the dev server through the shared store (Redis or SQLite). The dev
server's journal says which push's reservation was acknowledged; ``POST /_dev/expire`` makes
IronMQ push again exactly when a test wants (no short ``retries_delay`` to race).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
from celery_cluster import CeleryRun, amqp_url, redis_url
from support import wait_until

from ironpush.devserver import DevServer

TOKEN_PREFIX = "eyJxIjoi"  # base64 of '{"q":"': how every ack token starts


@pytest.fixture(scope="module")
def dev() -> Iterator[DevServer]:
    with DevServer() as server:
        yield server


@pytest.fixture
def redis_store() -> Iterator[str]:
    """A RedisStore spec with keys of its own (removed afterwards)."""
    url = redis_url()
    prefix = f"celerye2e{uuid.uuid4().hex[:8]}"
    yield f"{url}{'&' if '?' in url else '?'}prefix={prefix}"
    client = redis.Redis.from_url(url)
    for key in client.scan_iter(match=f"*{prefix}*"):
        client.delete(key)
    client.close()


@contextmanager
def celery_run(
    dev: DevServer, tmp_path: Path, *, broker: str, store: str, visibility_timeout: float = 3600
) -> Iterator[CeleryRun]:
    with dev.client() as mq:
        run = CeleryRun(dev, mq, tmp_path, broker, store, visibility_timeout)
        try:
            run.start_receiver()
            yield run
        finally:
            run.stop()
            if broker.startswith("amqp"):
                _delete_amqp_queue(broker, run.name)
    logs = run.logs()
    assert TOKEN_PREFIX not in logs, "an ack token reached a log"


def _delete_amqp_queue(url: str, name: str) -> None:
    from kombu import Connection

    with Connection(url) as conn:
        conn.default_channel.queue_delete(name)


def broker_url(kind: str) -> str:
    return redis_url() if kind == "redis" else amqp_url()


@pytest.mark.parametrize("store_kind", ["redis", "sqlite"])
def test_task_success_acks_the_newest_reservation_and_a_redelivery_never_enqueues_twice(
    dev: DevServer, tmp_path: Path, redis_store: str, store_kind: str
) -> None:
    store = redis_store if store_kind == "redis" else f"sqlite:///{tmp_path / 'store.db'}"
    flag = tmp_path / "go"
    with celery_run(dev, tmp_path, broker=redis_url(), store=store) as run:
        run.start_worker()
        mid = run.post("block", flag=flag)
        run.wait_for("task_start", mid)
        # IronMQ's 202 reservation runs out while the task runs: it pushes again, and that
        # push (202 "in progress", to either receiver process) becomes the newest.
        [expired] = dev.expire(run.name, mid, subscriber="worker")
        wait_until(
            lambda: [d["status_code"] for d in run.deliveries(mid)] == [202, 202],
            30,
            "the redelivery to get 202",
            report=lambda: run.report(mid),
        )
        flag.touch()
        acks = run.wait_acked(mid)
        assert acks == ["expired", "acked"]  # the newest reservation, not the token's
        assert run.deliveries(mid)[0]["reservation_id"] == expired["reservation_id"]
        assert run.count("handler", mid) == 1  # the redelivery did not run the handler...
        assert run.count("task_start", mid) == 1  # ...nor enqueue the task again
        assert run.count("task_done", mid) == 1


def test_task_failure_releases_the_push_so_the_next_push_runs_the_handler_again(
    dev: DevServer, tmp_path: Path, redis_store: str
) -> None:
    with celery_run(dev, tmp_path, broker=redis_url(), store=redis_store) as run:
        run.start_worker()
        mid = run.post("fail_once")
        run.wait_for("task_fail", mid)
        wait_until(
            lambda: "push released" in run.worker_log(),
            30,
            "the worker to release the push",
            report=lambda: run.report(mid),
        )
        dev.expire(run.name, mid, subscriber="worker")  # IronMQ's next push, now
        acks = run.wait_acked(mid)
        assert acks == ["expired", "acked"]
        assert run.count("handler", mid) == 2  # the released push ran the handler again
        assert run.count("task_start", mid) == 2
        assert run.count("task_done", mid) == 1


def test_celery_retries_neither_ack_nor_release_and_the_success_acks_once(
    dev: DevServer, tmp_path: Path, redis_store: str
) -> None:
    with celery_run(dev, tmp_path, broker=redis_url(), store=redis_store) as run:
        run.start_worker()
        mid = run.post("retry_once")
        assert run.wait_acked(mid) == ["acked"]
        run.wait_for("task_done", mid)
        assert run.count("task_retry", mid) == 1
        assert run.count("task_start", mid) == 2
        assert run.count("handler", mid) == 1
        # The worker logs its success line after the ack reached IronMQ: wait for it.
        wait_until(
            lambda: "succeeded: push acked" in run.worker_log(),
            30,
            "the worker's success line",
            report=lambda: run.report(mid),
        )
        log = run.worker_log()
        assert log.count("succeeded: push acked") == 1
        assert "will retry: its push stays deferred" in log
        assert "released" not in log


@pytest.mark.parametrize("broker_kind", ["redis", "amqp"])
def test_worker_killed_mid_task_the_task_runs_again_and_acks_the_newest_reservation(
    dev: DevServer, tmp_path: Path, redis_store: str, broker_kind: str
) -> None:
    """acks_late: the task message stays unacknowledged on the broker while the task runs, so
    the kill -9 returns it (RabbitMQ: when the connection drops; Redis: after the visibility
    timeout, found by the next worker). Meanwhile IronMQ's pushes get 202 and renew the
    reservation; the rerun acknowledges the newest."""
    flag = tmp_path / "go"
    broker = broker_url(broker_kind)
    with celery_run(dev, tmp_path, broker=broker, store=redis_store, visibility_timeout=5) as run:
        first = run.start_worker()
        mid = run.post("block", flag=flag)
        run.wait_for("task_start", mid)
        run.kill(first)
        dev.expire(run.name, mid, subscriber="worker")
        wait_until(
            lambda: [d["status_code"] for d in run.deliveries(mid)] == [202, 202],
            30,
            "the redelivery to get 202 while the task is lost",
            report=lambda: run.report(mid),
        )
        run.start_worker()
        run.wait_for("task_start", mid, n=2)
        flag.touch()
        assert run.wait_acked(mid) == ["expired", "acked"]
        assert run.count("handler", mid) == 1
        assert run.count("task_done", mid) == 1
