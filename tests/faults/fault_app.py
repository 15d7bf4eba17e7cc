"""The receiver of the fault run, served by uvicorn in a subprocess that gets ``kill -9``'d.

Two routes: ``/now`` handles a push at once (200) and ``/later`` defers a short job (202, then
an ack through the outbox). Both record every handler run and every side effect in an SQLite
ledger that outlives the process, so the harness can count them. The dedupe store and the
outbox are SQLite too (``FAULT_STORE``), and acks go to IronMQ through the fault proxy
(``IRONMQ_EMULATOR_HOST`` points at it).

Environment: ``FAULT_STORE``, ``FAULT_LEDGER``, ``IRONPUSH_SECRET_KEYS``,
``IRONMQ_EMULATOR_HOST``; optional ``FAULT_CLAIM_LEASE`` (s).
"""

from __future__ import annotations

import os
import random
import sqlite3
import threading
import time

from starlette.applications import Starlette
from starlette.routing import Mount

from ironpush.receiver.deferred import OutboxSettings
from ironpush.receiver.outcomes import Defer, PushMessage
from ironpush.receiver.router import PushRouter

from .scenario import ERROR_QUEUE, QUEUE_LATER, QUEUE_NOW, RETRIES, RETRIES_DELAY, SUBSCRIBER

_local = threading.local()


def ledger() -> sqlite3.Connection:
    db: sqlite3.Connection | None = getattr(_local, "db", None)
    if db is None:
        db = sqlite3.connect(os.environ["FAULT_LEDGER"], timeout=30, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE IF NOT EXISTS runs (message_id TEXT, route TEXT, pid INTEGER)")
        db.execute(
            "CREATE TABLE IF NOT EXISTS effects "
            "(key TEXT PRIMARY KEY, message_id TEXT, route TEXT, pid INTEGER)"
        )
        db.execute(
            "CREATE TABLE IF NOT EXISTS reexecutions (message_id TEXT, route TEXT, pid INTEGER)"
        )
        _local.db = db
    return db


def run_recorded(message_id: str, route: str) -> None:
    ledger().execute("INSERT INTO runs VALUES (?, ?, ?)", (message_id, route, os.getpid()))


def side_effect(key: str, message_id: str, route: str) -> None:
    """The side effect, keyed by the push's idempotency key (what a real handler should do).

    A kill -9 between a side effect and the router recording the message as handled makes the
    redelivery run the handler again; the key turns that re-execution into a no-op, and the
    ledger notes it so the harness can check it only ever happens across a crash.
    """
    db = ledger()
    row = (message_id, route, os.getpid())
    if not db.execute("INSERT OR IGNORE INTO effects VALUES (?, ?, ?, ?)", (key, *row)).rowcount:
        db.execute("INSERT INTO reexecutions VALUES (?, ?, ?)", row)


router = PushRouter(
    store=os.environ["FAULT_STORE"],
    claim_lease=float(os.environ.get("FAULT_CLAIM_LEASE", "1.0")),
    shutdown_grace=0.5,
    outbox=OutboxSettings(backoff=0.05, max_backoff=0.5, poll_interval=0.2),
)
settings = {"retries": RETRIES, "retries_delay": RETRIES_DELAY, "error_queue": ERROR_QUEUE}


@router.route("/now", queue=QUEUE_NOW, subscriber=SUBSCRIBER, **settings)
def now(msg: PushMessage) -> None:
    run_recorded(msg.id, "now")
    side_effect(msg.idempotency_key, msg.id, "now")


@router.route("/later", queue=QUEUE_LATER, subscriber=SUBSCRIBER, **settings)
def later(msg: PushMessage) -> Defer:
    run_recorded(msg.id, "later")
    return Defer(job, msg.idempotency_key, msg.id)


def job(key: str, message_id: str) -> None:
    time.sleep(random.uniform(0.0, 0.3))  # the slow part, during which a kill may land
    side_effect(key, message_id, "later")


app = Starlette(routes=[Mount("/ironmq", app=router)], lifespan=router.lifespan)
