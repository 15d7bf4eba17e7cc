"""The receiver of the cross-process trace test, run by uvicorn: OTLP export, a Redis store
(``IRONPUSH_STORE``), keys from ``IRONPUSH_SECRET_KEYS``, IronMQ from ``IRONMQ_EMULATOR_HOST``
and ``IRON_TOKEN`` (its outbox acks with the lean client). Each ack token a handler hands out is
appended to ``TRACE_TEST_TOKENS`` (the test looks for them in every span)."""

from __future__ import annotations

import os

from otlp_setup import configure
from otlp_tasks import bill

from ironpush import Defer, PushMessage, PushRouter
from ironpush.celery import enqueue

configure("receiver")
QUEUE = os.environ["TRACE_TEST_QUEUE"]


async def render_invoice(message_id: str) -> None:
    """The in-process deferred job."""


def to_job(msg: PushMessage) -> Defer:
    return Defer(render_invoice, msg.id)


def to_celery(msg: PushMessage) -> Defer:
    with open(os.environ["TRACE_TEST_TOKENS"], "a") as tokens:
        tokens.write((msg.ack_token or "") + "\n")
    return enqueue(bill, msg, msg.id)


app = PushRouter()
app.add_route("/jobs", to_job, queue=QUEUE, subscriber="jobs")
app.add_route("/celery", to_celery, queue=QUEUE, subscriber="celery")
