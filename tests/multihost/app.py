"""The receiver of the multi-host test, run by uvicorn on each host (``multihost.app:app``).

Routes (queues from ``MH_QUEUE_PREFIX``):

- ``/jobs``: ``Defer(job)``; the job runs until the file ``MH_FLAGS/<message id>`` exists, so
  the test decides when a job may finish (no timing window);
- ``/crash``: the same, on a queue whose retries come on their own (the kill test's);
- ``/external``: ``Defer()`` for an external worker, the ack token written to the ledger.

Every handler call and job step is written to an SQLite ledger (``MH_LEDGER``) with the host
that did it and the reservation id of the push, so the test can say which host did what.
The store (``MH_STORE``) is shared by every host.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

from starlette.applications import Starlette
from starlette.routing import Mount

from ironpush.receiver._outcomes import Defer, PushMessage
from ironpush.receiver._router import PushRouter

HOST = os.environ.get("MH_HOST", "host-?")
PREFIX = os.environ.get("MH_QUEUE_PREFIX", "mh")
FLAGS = Path(os.environ.get("MH_FLAGS", "."))
SUBSCRIBER = "mh-worker"


def record(event: str, msg: PushMessage, token: str | None = None) -> None:
    with sqlite3.connect(os.environ["MH_LEDGER"], timeout=30) as db:
        db.execute(
            "CREATE TABLE IF NOT EXISTS ledger "
            "(event TEXT, message_id TEXT, reservation_id TEXT, host TEXT, pid INTEGER, token TEXT)"
        )
        row = (event, msg.id, msg.reservation_id, HOST, os.getpid(), token)
        db.execute("INSERT INTO ledger VALUES (?, ?, ?, ?, ?, ?)", row)


router = PushRouter(store=os.environ["MH_STORE"], shutdown_grace=0.5)


@router.route("/jobs", queue=f"{PREFIX}-jobs", subscriber=SUBSCRIBER)
async def jobs(msg: PushMessage) -> Defer:
    record("handler", msg)
    return Defer(job, msg)


async def job(msg: PushMessage) -> None:
    import asyncio

    record("job_start", msg)
    deadline = time.monotonic() + 120
    while not (FLAGS / msg.id).exists():  # the test's go-ahead, not a wait for an outcome
        if time.monotonic() > deadline:
            raise TimeoutError("the test never let the job finish")
        await asyncio.sleep(0.02)
    record("job_done", msg)


@router.route("/crash", queue=f"{PREFIX}-crash", subscriber=SUBSCRIBER)
async def crash(msg: PushMessage) -> Defer:
    record("handler", msg)
    return Defer(job, msg)


@router.route("/external", queue=f"{PREFIX}-external", subscriber=SUBSCRIBER)
async def external(msg: PushMessage) -> Defer:
    record("handed_out", msg, token=msg.ack_token)
    return Defer()


app = Starlette(routes=[Mount("/ironmq", app=router)], lifespan=router.lifespan)
