"""The receiver of the fault run, served by uvicorn in subprocesses that get ``kill -9``'d.

Three routes: ``/now`` handles a push at once (200), ``/later`` defers a short job (202, then an
ack through the outbox), ``/flaky`` fails the first time a message is handled anywhere (500;
IronMQ retries it) and succeeds after. Every handler run and every side effect goes to an
SQLite ledger that outlives the processes (the harness's observer, not part of the system).
The store is whatever ``FAULT_STORE`` names (an SQLite path, ``redis://…``,
``postgresql://…``), shared by every instance; acks go to IronMQ through the fault proxy
(``IRONMQ_EMULATOR_HOST``).

Environment: ``FAULT_STORE``, ``FAULT_LEDGER``, ``FAULT_HOST`` (the instance's name in the
ledger), ``FAULT_MAX_DEFERRED``, ``FAULT_KIND`` (``sync``: ``def`` handlers and jobs, the
default; ``async``: ``async def`` ones), ``IRONPUSH_SECRET_KEYS``, ``IRONMQ_EMULATOR_HOST``;
optional ``FAULT_CLAIM_LEASE`` (s; default: the router's own default).
"""

from __future__ import annotations

import asyncio
import os
import random
import sqlite3
import threading
import time
from typing import Any

from starlette.applications import Starlette
from starlette.routing import Mount

from ironpush.receiver._outcomes import Defer, PushMessage
from ironpush.receiver._router import PushRouter

from .scenario import (
    ERROR_QUEUE,
    QUEUE_FLAKY,
    QUEUE_LATER,
    QUEUE_NOW,
    RETRIES,
    RETRIES_DELAY,
    SUBSCRIBER,
)

HOST = os.environ.get("FAULT_HOST", "host-1")
_local = threading.local()
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS runs (message_id TEXT, route TEXT, host TEXT, pid INTEGER)",
    "CREATE TABLE IF NOT EXISTS effects "
    "(key TEXT PRIMARY KEY, message_id TEXT, route TEXT, host TEXT, pid INTEGER, t REAL)",
    "CREATE TABLE IF NOT EXISTS reexecutions "
    "(message_id TEXT, route TEXT, host TEXT, pid INTEGER, t REAL)",
    "CREATE TABLE IF NOT EXISTS failures (key TEXT PRIMARY KEY, message_id TEXT)",
)


def ledger() -> sqlite3.Connection:
    db: sqlite3.Connection | None = getattr(_local, "db", None)
    if db is None:
        db = sqlite3.connect(os.environ["FAULT_LEDGER"], timeout=60, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        for statement in SCHEMA:
            db.execute(statement)
        _local.db = db
    return db


def run_recorded(message_id: str, route: str) -> None:
    ledger().execute("INSERT INTO runs VALUES (?, ?, ?, ?)", (message_id, route, HOST, os.getpid()))


def side_effect(key: str, message_id: str, route: str) -> None:
    """The side effect, keyed by the push's idempotency key (what a real handler should do).

    A kill -9 between a side effect and the router recording the message as handled makes the
    redelivery run the handler again; the key turns that re-execution into a no-op, and the
    ledger notes it so the harness can check it only ever happens across a crash.
    """
    db = ledger()
    row = (message_id, route, HOST, os.getpid(), time.time())
    sql = "INSERT OR IGNORE INTO effects VALUES (?, ?, ?, ?, ?, ?)"
    if not db.execute(sql, (key, *row)).rowcount:
        db.execute("INSERT INTO reexecutions VALUES (?, ?, ?, ?, ?)", row)


def _options() -> dict[str, Any]:
    options: dict[str, Any] = {
        "store": os.environ["FAULT_STORE"],
        "max_deferred": int(os.environ.get("FAULT_MAX_DEFERRED", "100")),
        "shutdown_grace": 0.5,
    }
    if os.environ.get("FAULT_CLAIM_LEASE"):
        options["claim_lease"] = float(os.environ["FAULT_CLAIM_LEASE"])
    return options


router = PushRouter(**_options())
settings: dict[str, Any] = {
    "subscriber": SUBSCRIBER,
    "retries": RETRIES,
    "retries_delay": RETRIES_DELAY,
    "error_queue": ERROR_QUEUE,
}


def fail_first_time(msg: PushMessage) -> None:
    first = ledger().execute(
        "INSERT OR IGNORE INTO failures VALUES (?, ?)", (msg.idempotency_key, msg.id)
    )
    if first.rowcount:
        raise RuntimeError("fails on its first run (by design): IronMQ retries it")


# --- sync handlers and jobs (run in worker threads) ------------------------------------------


def now(msg: PushMessage) -> None:
    run_recorded(msg.id, "now")
    side_effect(msg.idempotency_key, msg.id, "now")


def later(msg: PushMessage) -> Defer:
    run_recorded(msg.id, "later")
    return Defer(job, msg.idempotency_key, msg.id)


def job(key: str, message_id: str) -> None:
    time.sleep(random.uniform(0.0, 0.3))  # the slow part, during which a kill may land
    side_effect(key, message_id, "later")


def flaky(msg: PushMessage) -> None:
    run_recorded(msg.id, "flaky")
    fail_first_time(msg)
    side_effect(msg.idempotency_key, msg.id, "flaky")


# --- async handlers and jobs (awaited on the event loop) -------------------------------------


async def now_async(msg: PushMessage) -> None:
    run_recorded(msg.id, "now")
    side_effect(msg.idempotency_key, msg.id, "now")


async def later_async(msg: PushMessage) -> Defer:
    run_recorded(msg.id, "later")
    return Defer(job_async, msg.idempotency_key, msg.id)


async def job_async(key: str, message_id: str) -> None:
    await asyncio.sleep(random.uniform(0.0, 0.3))
    side_effect(key, message_id, "later")


async def flaky_async(msg: PushMessage) -> None:
    run_recorded(msg.id, "flaky")
    fail_first_time(msg)
    side_effect(msg.idempotency_key, msg.id, "flaky")


HANDLERS: dict[str, tuple[Any, Any, Any]] = {
    "sync": (now, later, flaky),
    "async": (now_async, later_async, flaky_async),
}
_now, _later, _flaky = HANDLERS[os.environ.get("FAULT_KIND", "sync")]
router.add_route("/now", _now, queue=QUEUE_NOW, **settings)
router.add_route("/later", _later, queue=QUEUE_LATER, **settings)
router.add_route("/flaky", _flaky, queue=QUEUE_FLAKY, **settings)
app = Starlette(routes=[Mount("/ironmq", app=router)], lifespan=router.lifespan)
