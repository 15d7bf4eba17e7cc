"""A Celery task that succeeds while the receivers' store is down is recorded once the store is
back, then acked, and never runs again (issue 19, N6).

The store is a Redis of the test's own (``faults.servers.OwnRedis``, no persistence), restarted
while the task finishes: its claim is gone, and the worker's ack meets a refused connection.
Before, the completion was lost (the worker logged that the redelivery "will be answered from
the store", which was false: the store had forgotten the message, so IronMQ's next push ran the
handler and the task again). Now the worker's ``PushAcks`` retries the completion until the
store records it, then acks: the dev server sees the message acknowledged with no other push.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from celery_cluster import CeleryRun, redis_url
from faults.servers import OwnRedis

from ironpush.devserver import DevServer

FALSE_PROMISE = "receivers answer from the store"


@pytest.fixture
def dev() -> Iterator[DevServer]:
    with DevServer() as server:
        yield server


@pytest.mark.slow
def test_a_task_finishing_while_the_store_restarts_is_recorded_then_acked_never_rerun(
    dev: DevServer, tmp_path: Path
) -> None:
    flag = tmp_path / "go"
    with OwnRedis(tmp_path) as store, dev.client() as mq:
        run = CeleryRun(dev, mq, tmp_path, redis_url(), store.url)
        try:
            run.start_receiver()
            run.start_worker()
            mid = run.post("block", flag=flag)
            run.wait_for("task_start", mid)

            def finish_task() -> None:
                flag.touch()
                run.wait_for("task_done", mid)

            # Down longer than PushAcks.wait (5 s): the signal returns "queued" and the worker
            # keeps retrying on its ack loop thread.
            store.restart(down_for=6.0, on_down=finish_task)
            acks = run.wait_acked(mid, timeout=60)
        finally:
            run.stop()
    report = run.report(mid)
    assert acks == ["acked"], report  # the token's own push, acked once: no other push
    assert run.count("handler", mid) == 1, report
    assert run.count("task_start", mid) == 1, report
    assert run.count("task_done", mid) == 1, report
    worker = run.worker_log()
    assert "could not record the worker's job of message " + mid in worker, report
    assert "retried in this worker until it does, then acked" in worker, report
    assert FALSE_PROMISE not in worker, report
