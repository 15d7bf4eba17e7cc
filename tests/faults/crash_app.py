"""The receiver of the crash-takeover test (issue 11, finding 2), run by uvicorn.

One route, ``/jobs``: every push is deferred to a job of ``CRASH_JOB_SECONDS`` (5 s) whose side
effect is written to an SQLite ledger keyed by ``PushMessage.idempotency_key``. The router
keeps **its own defaults** (``claim_lease`` included) unless ``CRASH_CLAIM_LEASE`` is set; the
store is the SQLite file ``CRASH_STORE``. ``CRASH_JOB_KIND``: ``async`` (default) or ``sync``.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sqlite3
import time
from typing import Any

from starlette.applications import Starlette
from starlette.routing import Mount

from ironpush.receiver._outcomes import Defer, PushMessage
from ironpush.receiver._router import PushRouter

SECONDS = float(os.environ.get("CRASH_JOB_SECONDS", "5"))
QUEUE = os.environ.get("CRASH_QUEUE", "crash-jobs")


def record(event: str, key: str, message_id: str) -> None:
    with sqlite3.connect(os.environ["CRASH_LEDGER"], timeout=30, isolation_level=None) as db:
        db.execute(
            "CREATE TABLE IF NOT EXISTS ledger "
            "(event TEXT, key TEXT, message_id TEXT, host TEXT, pid INTEGER)"
        )
        row = (event, key, message_id, socket.gethostname(), os.getpid())
        db.execute("INSERT INTO ledger VALUES (?, ?, ?, ?, ?)", row)


def _options() -> dict[str, Any]:
    options: dict[str, Any] = {"store": os.environ["CRASH_STORE"]}
    if os.environ.get("CRASH_CLAIM_LEASE"):
        options["claim_lease"] = float(os.environ["CRASH_CLAIM_LEASE"])
    return options


router = PushRouter(**_options())


@router.route("/jobs", queue=QUEUE, subscriber="worker")
async def handle(msg: PushMessage) -> Defer:
    if os.environ.get("CRASH_JOB_KIND") == "sync":
        return Defer(sync_job, msg.idempotency_key, msg.id)
    return Defer(async_job, msg.idempotency_key, msg.id)


async def async_job(key: str, message_id: str) -> None:
    record("start", key, message_id)
    await asyncio.sleep(SECONDS)  # the long work, during which the process is killed
    record("done", key, message_id)


def sync_job(key: str, message_id: str) -> None:
    record("start", key, message_id)
    time.sleep(SECONDS)  # the long work, during which the process is killed
    record("done", key, message_id)


app = Starlette(routes=[Mount("/ironmq", app=router)], lifespan=router.lifespan)
