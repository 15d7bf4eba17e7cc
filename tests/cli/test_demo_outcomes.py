"""``ironpush demo --messages N`` accounts for every message: delivered + acked + dropped +
failed + unfinished = N, and it exits 1 when any message failed or did not finish.

Before, a 1000-message batch lost 122 long orders: with 32 deferred slots and 4 tries, the
rest were answered 503 (busy) until IronMQ gave up on them, and the summary (which checked
50 sampled messages, all quick orders) still said ok."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import click
import pytest

from ironpush.cli import _demo
from ironpush.cli._demo_tally import OUTCOMES, Ledger


def test_a_batch_of_1000_accounts_for_every_message() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "ironpush", "demo", "--messages", "1000", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HOME": "/nonexistent"},
        check=False,
    )

    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr
    doc = json.loads(proc.stdout)
    outcomes = doc["outcomes"]
    assert doc["posted"] == 1000
    assert sum(outcomes.values()) == 1000
    assert outcomes["failed"] == 0
    assert outcomes["unfinished"] == 0
    assert outcomes["dropped"] == 250  # every poison order, once
    assert outcomes["delivered"] + outcomes["delivered_after_retry"] + outcomes["acked"] == 750
    assert doc["ok"] is True
    counters = doc["counters"]
    assert counters["deferred"] >= 250  # every long order found a slot (some twice: late acks)
    tries = {row[0]["tries"] for row in doc["messages"].values()}
    assert tries >= {1, 2}  # the sample holds quick and flaky orders, not only one kind


def test_a_service_too_small_for_its_batch_reports_the_failures_and_exits_1(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # One deferred slot for 20 long orders: most run out of their 4 tries on 503 (busy).
    monkeypatch.setattr(_demo, "deferred_capacity", lambda messages: 1)
    result = _demo.run_demo(messages=80, echo=lambda _: None, timeout=120)

    assert sum(result.outcomes.values()) == 80
    assert result.outcomes["failed"] > 0
    assert result.outcomes["unfinished"] == 0
    assert result.error_queue_size == result.outcomes["failed"]  # each one reported
    assert result.ok is False
    failed = [m for m, s in result.statuses.items() if s[0].status == "error"]
    assert len(failed) == result.outcomes["failed"]  # the JSON shows every failed message


def test_the_command_exits_1_naming_how_many_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_demo, "deferred_capacity", lambda messages: 1)
    with pytest.raises(click.ClickException, match=r"^\d+ failed: not every message ended"):
        _demo.run_cli(messages=80, timeout=120, as_json=True)


def test_the_ledger_keeps_the_last_word_on_each_message() -> None:
    ledger = Ledger("q")
    events: list[dict[str, Any]] = [
        {"type": "push", "outcome": "delivered", "try": 1, "message_id": "quick"},
        {"type": "push", "outcome": "retrying", "try": 1, "message_id": "flaky"},
        {"type": "push", "outcome": "delivered", "try": 2, "message_id": "flaky"},
        {"type": "push", "outcome": "deferred", "try": 1, "message_id": "long"},
        {"type": "ack", "outcome": "acked", "message_id": "long"},
        {"type": "push", "outcome": "delivered", "try": 1, "message_id": "poison"},
        {"type": "push", "outcome": "failed", "try": 4, "message_id": "busy"},
        {"type": "push", "outcome": "delivered", "try": 1, "message_id": "x", "queue": "other"},
    ]
    for event in events:
        ledger.on_event({"queue": "q", **event})
    kinds = {m: m for m in ("quick", "flaky", "long", "poison", "busy", "late")}

    counts = ledger.counts(kinds)

    assert list(counts) == list(OUTCOMES)
    assert counts == {
        "delivered": 1,
        "delivered_after_retry": 1,
        "acked": 1,
        "dropped": 1,
        "failed": 1,
        "unfinished": 1,
    }
    assert ledger.failed == 1
    assert ledger.finished == 5
