"""The app the ``ironpush serve`` tests serve (``serve_app:app``), also imported by the tests
to build pushes for its router (``build_push``).

The router signs with :data:`KEYS` and takes its store from ``IRONPUSH_STORE``
(``serve --store``); ``SERVE_TEST_QUEUE`` names the queue of ``/ok`` (``/boom`` always fails).
"""

from __future__ import annotations

import os

from starlette.applications import Starlette
from starlette.routing import Mount

from ironpush import PushMessage, PushRouter

QUEUE = os.environ.get("SERVE_TEST_QUEUE", "serve-test")
KEYS = ["serve-test-key-0123456789abcdef0123456789"]

router = PushRouter(secret_keys=KEYS)


@router.route("/ok", queue=QUEUE, subscriber="svc")
def ok(msg: PushMessage) -> None:
    return None


@router.route("/boom", queue=QUEUE + "-boom", subscriber="svc")
def boom(msg: PushMessage) -> None:
    raise RuntimeError("planned failure")


app = Starlette(routes=[Mount("/ironmq", app=router)], lifespan=router.lifespan)
