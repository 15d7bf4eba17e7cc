"""Run by ``test_sentry.py`` in an interpreter of its own (Sentry's SDK patches logging and
more, for the whole process): a real ``sentry_sdk.init`` whose transport keeps the events in
memory, a router whose handler raises and whose deferred job raises, one push each. Prints
``{"events": [...], "secrets": [...]}`` as JSON on stdout; ironpush's log lines go to stderr.

``python sentry_scenario.py [dedupe|no-dedupe]``: with Sentry's default integrations, or
without its DedupeIntegration (then only ``ignore_logger`` keeps the log line from being a
second event).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from typing import Any

import sentry_sdk
from sentry_sdk.envelope import Envelope
from sentry_sdk.integrations.dedupe import DedupeIntegration
from sentry_sdk.transport import Transport

from ironpush import Defer, PushMessage, PushRouter
from ironpush._signing import push_secret
from ironpush.testing import PushSimulator

KEYS = ["sentry-test-key-0123456789abcdef-0123456789"]
EVENTS: list[dict[str, Any]] = []
TOKENS: list[str] = []  # the ack tokens handed out (a global: not a local of the failing frame)


class MemoryTransport(Transport):
    """Keeps every event Sentry would send."""

    def capture_envelope(self, envelope: Envelope) -> None:
        event = envelope.get_event()
        if event is not None:
            EVENTS.append(dict(event))


async def bill(order: str) -> None:
    raise ValueError(f"billing failed for {order}")


async def main() -> None:
    router = PushRouter(secret_keys=KEYS)

    @router.route("/boom", queue="orders", subscriber="mailer")
    def boom(msg: PushMessage) -> None:
        TOKENS.append(msg.ack_token or "")
        raise RuntimeError("planned failure")

    @router.route("/job", queue="invoices", subscriber="billing")
    def job(msg: PushMessage) -> Defer:
        return Defer(bill, msg.text)

    async with PushSimulator(router) as sim:
        failed = await sim.push("/boom", "x")
        deferred = await sim.push("/job", "order-7")
        assert (failed.status_code, deferred.status_code) == (500, 202)
        for _ in range(1000):  # the job runs after the 202
            if router.counters.totals["jobs_failed"]:
                break
            await asyncio.sleep(0.01)
    sentry_sdk.flush()
    secrets = [*KEYS, *TOKENS, push_secret("orders", "mailer", KEYS)]
    secrets.append(push_secret("invoices", "billing", KEYS))
    ids = {"boom": failed.message_id, "job": deferred.message_id}
    print(json.dumps({"events": EVENTS, "secrets": secrets, "ids": ids}, default=str))


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    disabled = [DedupeIntegration()] if sys.argv[1:] == ["no-dedupe"] else []
    sentry_sdk.init(
        dsn="http://public@127.0.0.1:9/1",
        transport=MemoryTransport,
        disabled_integrations=disabled,
    )
    asyncio.run(main())
