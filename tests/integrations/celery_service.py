"""The receiver of the Celery end-to-end tests, run by ``ironpush serve --store SPEC``.

Its router is built without ``store=``, so it uses ``IRONPUSH_STORE`` (set by ``--store``),
the store the Celery worker acks through. ``CELERY_TEST_PUSH_QUEUE`` names the IronMQ queue.
"""

from __future__ import annotations

import os

from celery_ledger import record
from celery_tasks import process
from starlette.applications import Starlette
from starlette.routing import Mount

from ironpush import Defer, PushMessage, PushRouter
from ironpush.celery import enqueue

router = PushRouter()


@router.route("/jobs", queue=os.environ["CELERY_TEST_PUSH_QUEUE"], subscriber="worker", json=True)
def handle(msg: PushMessage) -> Defer:
    record("handler", msg.id)
    body = msg.json()
    return enqueue(process, msg, msg.id, body["mode"], body.get("flag"))


app = Starlette(routes=[Mount("/ironmq", app=router)], lifespan=router.lifespan)
