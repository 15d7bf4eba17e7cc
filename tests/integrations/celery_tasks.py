"""The Celery app of the end-to-end tests, run by a real ``celery worker`` process.

Configured by the environment the test sets: ``CELERY_TEST_BROKER`` (Redis or RabbitMQ URL),
``CELERY_TEST_QUEUE`` (this test's task queue), ``CELERY_TEST_VISIBILITY`` (the Redis broker's
visibility timeout), ``CELERY_TEST_LEDGER``; and for the acks, like any worker of a receiver,
``IRONPUSH_STORE``, ``IRONPUSH_SECRET_KEYS`` and ``IRONMQ_EMULATOR_HOST``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from celery import Celery
from celery_ledger import count, record

from ironpush.celery import acknowledge_pushes

app = Celery("ironpush_e2e", broker=os.environ["CELERY_TEST_BROKER"])
app.conf.update(
    task_default_queue=os.environ["CELERY_TEST_QUEUE"],
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
    broker_transport_options={
        # A task message unacknowledged this long (its worker was killed) is given to another
        # worker: kombu's Redis transport looks for them every second here.
        "visibility_timeout": float(os.environ.get("CELERY_TEST_VISIBILITY", "3600")),
        "unacked_restore_interval": 1,
        "unacked_restore_throttle": 1,
    },
)
acknowledge_pushes(app)


@app.task(bind=True, max_retries=3)
def process(self: Any, message_id: str, mode: str, flag: str | None = None) -> str:
    """``ok``: finish; ``block``: wait for the ``flag`` file; ``fail_once``: raise on the first
    run; ``retry_once``: ask Celery to retry on the first run."""
    record("task_start", message_id)
    if mode == "retry_once" and self.request.retries == 0:
        record("task_retry", message_id)
        raise self.retry(countdown=0.1)
    if mode == "fail_once" and count("task_start", message_id) == 1:
        record("task_fail", message_id)
        raise RuntimeError("planned failure")
    if mode == "block" and flag:
        deadline = time.monotonic() + 120
        while not Path(flag).exists():  # the test creates it when the run may finish
            if time.monotonic() > deadline:
                raise TimeoutError("the flag never appeared")
            time.sleep(0.02)
    record("task_done", message_id)
    return message_id
