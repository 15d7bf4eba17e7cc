"""``ironpush.celery.enqueue`` on the web side: what reaches the broker, and broker failures.

The router runs in-process (``SyncPushSimulator``); the task messages are read back raw from
the local Redis broker's list, as a worker would receive them.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from celery import Celery
from celery_cluster import ROOT, redis_url

from ironpush import Defer, PushMessage, PushRouter
from ironpush._signing import load_ack_token
from ironpush.celery import ACK_TOKEN_HEADER, enqueue
from ironpush.testing import SyncPushSimulator

KEYS = ["enqueue-test-key-0123456789abcdef012345"]


@pytest.fixture
def broker() -> Iterator[tuple[Celery, redis.Redis, str]]:
    url = redis_url()
    name = f"enqueue-{uuid.uuid4().hex[:10]}"
    app = Celery("enqueue_test", broker=url)
    app.conf.task_default_queue = name
    client = redis.Redis.from_url(url)
    yield app, client, name
    client.delete(name, name + "-slow")
    client.close()


def _messages(client: redis.Redis, queue: str) -> list[dict[str, Any]]:
    return [json.loads(raw) for raw in client.lrange(queue, 0, -1)]


def _router(handler: Any) -> PushRouter:
    router = PushRouter(secret_keys=KEYS)
    router.add_route("/jobs", handler, queue="jobs", subscriber="worker")
    return router


def test_enqueue_sends_the_token_in_the_headers_only_and_answers_202(
    broker: tuple[Celery, redis.Redis, str],
) -> None:
    app, client, queue = broker

    @app.task(name="render")
    def render(order_id: int, *, size: str) -> None: ...

    def handle(msg: PushMessage) -> Defer:
        return enqueue(render, msg, 42, size="large")

    router = _router(handle)
    with SyncPushSimulator(router, router=router) as sim:
        result = sim.push("/jobs", b"order 42")
        assert result.status_code == 202
        assert sim.redeliver(result).status_code == 202  # held: not enqueued twice
    [message] = _messages(client, queue)
    token = message["headers"][ACK_TOKEN_HEADER]
    assert load_ack_token(token, KEYS)[1].message_id == result.message_id
    args, kwargs, _ = json.loads(base64.b64decode(message["body"]))
    assert (args, kwargs) == ([42], {"size": "large"})
    assert token not in json.dumps(message["headers"].get("argsrepr", ""))


def test_enqueue_takes_a_signature_with_its_options_and_arguments(
    broker: tuple[Celery, redis.Redis, str],
) -> None:
    app, client, queue = broker

    @app.task(name="resize")
    def resize(bucket: str, order_id: int) -> None: ...

    def handle(msg: PushMessage) -> Defer:
        return enqueue(resize.s("thumbs").set(queue=queue + "-slow"), msg, 7)

    router = _router(handle)
    with SyncPushSimulator(router, router=router) as sim:
        assert sim.push("/jobs", b"x").status_code == 202
    assert _messages(client, queue) == []
    [message] = _messages(client, queue + "-slow")
    assert ACK_TOKEN_HEADER in message["headers"]
    args, _, _ = json.loads(base64.b64decode(message["body"]))
    assert args == ["thumbs", 7]


def test_a_broker_that_is_down_gives_500_and_the_next_push_runs_the_handler_again() -> None:
    app = Celery("down", broker="redis://127.0.0.1:1/0")
    # Fail the publish at once (the defaults retry for seconds: see the README on the push
    # timeout).
    app.conf.update(task_publish_retry=False, broker_transport_options={"max_retries": 0})
    attempts: list[int] = []

    @app.task(name="never")
    def never() -> None: ...

    def handle(msg: PushMessage) -> Defer:
        attempts.append(msg.attempt)
        return enqueue(never, msg)

    router = _router(handle)
    with SyncPushSimulator(router, router=router) as sim:
        result = sim.push("/jobs", b"x")
        assert result.status_code == 500  # IronMQ pushes again after retries_delay
        assert sim.redeliver(result).status_code == 500
    assert attempts == [1, 2]


def test_import_without_celery_says_which_extra_to_install() -> None:
    code = "import sys; sys.modules['celery'] = None; import ironpush; import ironpush.celery"
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        "ImportError: ironpush.celery needs Celery: pip install 'ironpush[celery]'"
    )
