"""A receiver app for the kill -9 end-to-end test, run by uvicorn in a subprocess.

Configured by environment variables (the test sets them): ``E2E_STORE`` (SQLite dedupe store),
``E2E_LEDGER`` (SQLite file where side effects are counted), ``E2E_FLAG`` (the job blocks until
this file exists), ``E2E_QUEUE``, ``E2E_CLAIM_LEASE``; plus ``IRONPUSH_SECRET_KEYS`` and
``IRONMQ_EMULATOR_HOST`` for the router itself; ``PYTHONPATH`` names ``tests/`` (``support``).
"""

from __future__ import annotations

import os
import sqlite3

from starlette.applications import Starlette
from starlette.routing import Mount
from support import wait_until

from ironpush.receiver._outcomes import Defer, PushMessage
from ironpush.receiver._router import PushRouter
from ironpush.receiver.stores import SQLiteStore

LEDGER = os.environ["E2E_LEDGER"]
FLAG = os.environ["E2E_FLAG"]

router = PushRouter(
    store=SQLiteStore(os.environ["E2E_STORE"]),
    claim_lease=float(os.environ.get("E2E_CLAIM_LEASE", "1.0")),
    shutdown_grace=0.5,
)


def record(event: str, message_id: str) -> None:
    with sqlite3.connect(LEDGER, timeout=10) as db:
        db.execute("CREATE TABLE IF NOT EXISTS ledger (event TEXT, message_id TEXT, pid INTEGER)")
        db.execute("INSERT INTO ledger VALUES (?, ?, ?)", (event, message_id, os.getpid()))


@router.route("/jobs", queue=os.environ["E2E_QUEUE"], subscriber="worker")
def handle(msg: PushMessage) -> Defer:
    record("handler", msg.id)
    return Defer(job, msg.id)


def job(message_id: str) -> None:
    record("job_start", message_id)
    # The test creates the flag once the first process is dead.
    wait_until(lambda: os.path.exists(FLAG), 60, "the test's flag", interval=0.02)
    record("job_done", message_id)


app = Starlette(routes=[Mount("/ironmq", app=router)], lifespan=router.lifespan)
