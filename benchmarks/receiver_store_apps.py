"""The apps that ``bench_receiver_stores.py`` serves, one uvicorn process each (``--factory``).

Both read the store from ``BENCH_STORE`` (``memory``, ``redis://…?prefix=…`` or
``postgresql://…?schema=…``, as ``PushRouter(store=…)`` takes it; ``BENCH_PG_CONNECTIONS``
caps a PostgreSQL store's connections):

- ``quick``: ``PushRouter`` quick 200 (verification + dedupe in the store, ``json=True``, an
  async no-op handler), the same route as ``receiver_apps.router``;
- ``defer_job``: ``Defer(job)`` with a no-op job, claim held and completed in the store, the
  ack queued in the store's outbox and sent to ``receiver_apps.fake_ironmq`` (named by
  ``IRONMQ_EMULATOR_HOST``); ``BENCH_MAX_DEFERRED`` sets ``max_deferred`` (default: the
  router's, 32).
"""

from __future__ import annotations

import os
from typing import Any

from benchmarks.receiver_apps import KEYS, QUEUE, SUBSCRIBER
from ironpush import Defer, PushMessage, PushRouter
from ironpush.receiver.stores import PostgresStore, Store, open_store


def _store() -> Store | None:
    spec = os.environ.get("BENCH_STORE", "memory")
    if spec == "memory":
        return None
    store = open_store(spec)
    if isinstance(store, PostgresStore) and "BENCH_PG_CONNECTIONS" in os.environ:
        # Several PostgreSQL contestants at once must stay under the server's max_connections.
        size = int(os.environ["BENCH_PG_CONNECTIONS"])
        return PostgresStore(store.dsn, schema=store.schema, max_connections=size)
    return store


def quick() -> PushRouter:
    router = PushRouter(secret_keys=KEYS, store=_store())

    @router.route("/orders", queue=QUEUE, subscriber=SUBSCRIBER, json=True)
    async def orders(msg: PushMessage) -> None:
        return None

    return router


async def _noop_job() -> None:
    return None


def defer_job() -> PushRouter:
    options: dict[str, Any] = {}
    if "BENCH_MAX_DEFERRED" in os.environ:
        options["max_deferred"] = int(os.environ["BENCH_MAX_DEFERRED"])
    router = PushRouter(secret_keys=KEYS, store=_store(), **options)

    @router.route("/orders", queue=QUEUE, subscriber=SUBSCRIBER, json=True)
    async def orders(msg: PushMessage) -> Defer:
        return Defer(_noop_job)

    return router
