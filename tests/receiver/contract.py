"""The contract router the receiver tests share (the fixtures are in ``conftest.py``).

One route answers by the push body (``"ack"``, ``"retry"``, ``"raise"``, ``"drop"``,
``"external"``, ``"defer"``, ``"bad"``, else ``None``), a second one parses JSON in a thread.
"""

from __future__ import annotations

import threading
from typing import Any

from ironpush.receiver._outcomes import Ack, Defer, Drop, PushMessage, Retry
from ironpush.receiver._router import PushRouter

KEYS = ["key-old", "key-new"]


class Calls:
    """What the handlers saw."""

    def __init__(self) -> None:
        self.messages: list[PushMessage] = []
        self.jobs: list[str] = []
        self.threads: list[str] = []


def contract_router(calls: Calls) -> PushRouter:
    router = PushRouter(secret_keys=KEYS, dead_letter_queue="dead")

    @router.route("/plain", queue="orders", subscriber="billing")
    async def plain(msg: PushMessage) -> Any:
        calls.messages.append(msg)
        action = msg.text
        if action == "ack":
            return Ack()
        if action == "retry":
            return Retry("not now")
        if action == "raise":
            raise RuntimeError("secret internal detail")
        if action == "drop":
            return Drop("poison")
        if action == "external":
            return Defer()
        if action == "defer":
            return Defer(job, msg.id)
        if action == "bad":
            return 42
        return None

    def job(message_id: str) -> None:
        calls.jobs.append(message_id)

    @router.route("/json", queue="orders", subscriber="json-reader", json=True)
    def sync_json(msg: PushMessage) -> None:
        calls.messages.append(msg)
        calls.threads.append(threading.current_thread().name)

    return router
