"""Handler and job exceptions reach Sentry once each, tagged with the push: a real
``sentry_sdk`` (its default integrations, logging's included) with an in-memory transport, in
an interpreter of its own (:mod:`sentry_scenario`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest
from log_kit import HERE, ROOT


def run_scenario(mode: str) -> tuple[dict[str, Any], str]:
    proc = subprocess.run(
        [sys.executable, "sentry_scenario.py", mode],
        cwd=HERE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout), proc.stderr


@pytest.mark.parametrize("mode", ["dedupe", "no-dedupe"])
def test_each_failure_is_one_event_with_the_push_tags(mode: str) -> None:
    found, logs = run_scenario(mode)
    events, ids = found["events"], found["ids"]
    # The two failures were logged (with their tracebacks) ...
    assert f"handler /boom failed for message {ids['boom']}" in logs
    assert f"deferred job for message {ids['job']} on invoices failed" in logs
    assert logs.count("Traceback (most recent call last)") == 2
    # ... and each is one event, not two (the log line is not captured again).
    assert len(events) == 2, [e.get("logger") or e["exception"]["values"][-1] for e in events]
    by_outcome = {event["tags"]["outcome"]: event for event in events}
    handler, job = by_outcome["error"], by_outcome["job_failed"]
    assert handler["tags"] == {
        "queue": "orders",
        "subscriber": "mailer",
        "message_id": ids["boom"],
        "attempt": "1",
        "outcome": "error",
    }
    assert job["tags"] == {
        "queue": "invoices",
        "subscriber": "billing",
        "message_id": ids["job"],
        "attempt": "1",
        "outcome": "job_failed",
    }
    for event, kind in ((handler, "RuntimeError"), (job, "ValueError")):
        [exception] = event["exception"]["values"]
        assert exception["type"] == kind
        mechanism = exception["mechanism"]  # sentry-sdk 3 adds an exception_id
        assert (mechanism["type"], mechanism["handled"]) == ("ironpush", False)
    assert handler["contexts"]["ironpush"]["route"] == "/boom"
    assert job["contexts"]["ironpush"] == {
        "route": "/job",
        "job": "bill",
        "reservation_id": job["contexts"]["ironpush"]["reservation_id"],
    }
    # Nothing secret went to Sentry (not in the frames' local variables either).
    text = json.dumps(events)
    assert found["secrets"]
    for secret in found["secrets"]:
        assert secret not in text
