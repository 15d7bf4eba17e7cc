"""The receiver of the store-fault and eviction tests, run by ``ironpush serve --store SPEC``.

Served as the app itself (paths ``/jobs``, ``/now``, ``/_health``...). Its router is built
without ``store=`` (``IRONPUSH_STORE``, set by ``--store``) and without keys
(``IRONPUSH_SECRET_KEYS``). Routes, on the queue ``STORE_FAULT_QUEUE`` names:

- ``/jobs``: every push defers a job that notes its start in ``STORE_FAULT_STARTED``, waits
  until the test opens its gate (a file named after the message id, or ``all``, in
  ``STORE_FAULT_GATES``), then appends one line to ``STORE_FAULT_EFFECTS``: the side effect,
  with no idempotency key, so a job run twice shows up twice;
- ``/now``: handled at once, one line in ``STORE_FAULT_EFFECTS`` per run.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from ironpush import Defer, PushMessage, PushRouter

QUEUE = os.environ.get("STORE_FAULT_QUEUE", "store-faults")
SUBSCRIBER = os.environ.get("STORE_FAULT_SUBSCRIBER", "faults")
GATES = Path(os.environ.get("STORE_FAULT_GATES", "."))
STARTED = os.environ.get("STORE_FAULT_STARTED", os.devnull)
EFFECTS = os.environ.get("STORE_FAULT_EFFECTS", os.devnull)

router = PushRouter()


def append(path: str, line: str) -> None:
    """One ``write`` in append mode: lines of concurrent writers never interleave."""
    with open(path, "a") as out:
        out.write(line + "\n")


def job(message_id: str) -> None:
    append(STARTED, message_id)
    deadline = time.monotonic() + 300
    while not (GATES / message_id).exists() and not (GATES / "all").exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"the gate of {message_id} never opened")
        time.sleep(0.02)
    append(EFFECTS, f"{message_id} {os.getpid()} {time.time():.3f}")


@router.route("/jobs", queue=QUEUE, subscriber=SUBSCRIBER)
def deferred(msg: PushMessage) -> Defer:
    return Defer(job, msg.id)


@router.route("/now", queue=QUEUE + "-now", subscriber=SUBSCRIBER)
def now(msg: PushMessage) -> None:
    append(EFFECTS, f"{msg.id} {os.getpid()} {time.time():.3f}")


# The router itself is the app (its own lifespan: a refused store stops the start with the
# one line that names the fix).
app = router
