"""The service the log tests run (``log_service:app``) under ``ironpush serve`` and plain uvicorn.

No lifespan on purpose: each process's router starts on its first push and warns so (a
start-up warning per process, which ``serve`` must show once). ``/tight`` and ``/boom`` have a
retry budget shorter than twice the claim lease: a warning each at import, in every process.
``/external`` writes each ack token it hands out to ``LOG_TEST_TOKENS`` (so the test can look
for them in the logs); ``/job`` defers a job whose ack goes through the outbox to the dev
server the environment names; ``/boom`` raises.
"""

from __future__ import annotations

import os

from starlette.applications import Starlette
from starlette.routing import Mount

from ironpush import Defer, PushMessage, PushRouter

KEYS = ["log-test-key-0123456789abcdef-0123456789"]
TOKEN = "log-dev-token-s3cret-0123456789abcdef"

router = PushRouter(secret_keys=KEYS)


@router.route("/ok", queue="logs-ok", subscriber="svc")
def ok(msg: PushMessage) -> None:
    return None


@router.route("/tight", queue="logs-tight", subscriber="svc", retries=0, retries_delay=1)
def tight(msg: PushMessage) -> None:
    return None


@router.route("/external", queue="logs-external", subscriber="svc")
def external(msg: PushMessage) -> Defer:
    with open(os.environ["LOG_TEST_TOKENS"], "a") as tokens:
        tokens.write(f"{msg.ack_token}\n")
    return Defer()


async def send_invoice(message_id: str) -> None:
    """The deferred job."""


@router.route("/job", queue="logs-job", subscriber="svc", retries_delay=5)
def job(msg: PushMessage) -> Defer:
    return Defer(send_invoice, msg.id)


@router.route("/boom", queue="logs-boom", subscriber="svc", retries=0, retries_delay=0.05)
def boom(msg: PushMessage) -> None:
    raise RuntimeError("planned failure")


app = Starlette(routes=[Mount("/ironmq", app=router)])
