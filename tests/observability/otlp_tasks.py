"""The Celery app of the cross-process trace test (a real ``celery worker``, prefork): each
pool process configures the SDK as OpenTelemetry advises for Celery, in
``worker_process_init``; the acks use ``IRONPUSH_STORE``, ``IRONPUSH_SECRET_KEYS``, ``IRON_*``."""

from __future__ import annotations

import os
from typing import Any

from celery import Celery, signals

from ironpush.celery import acknowledge_pushes

app = Celery("trace_otlp", broker=os.environ["TRACE_TEST_BROKER"])
app.conf.update(
    task_default_queue=os.environ["TRACE_TEST_CELERY_QUEUE"],
    worker_prefetch_multiplier=1,
    broker_connection_retry_on_startup=True,
)
acknowledge_pushes(app)


@signals.worker_process_init.connect
def _tracing(**_: Any) -> None:
    from otlp_setup import configure

    configure("worker")


@app.task(name="trace_tests.bill")
def bill(message_id: str) -> str:
    return message_id
