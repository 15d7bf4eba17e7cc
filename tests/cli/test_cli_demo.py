"""``ironpush demo``: to the end, in batch, and as JSON."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

from click.testing import CliRunner

from ironpush.cli import main


def test_demo_runs_to_the_end_and_prints_the_summary() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "ironpush", "demo"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HOME": "/nonexistent"},
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    for kind, runs, result, tries in (
        ("quick", 1, "delivered (200)", 1),
        ("long", 1, "acked after 202", 1),
        ("flaky", 2, "delivered on try 2", 2),
        ("poison", 1, "dropped (200)", 1),
    ):
        row = next(line for line in out.splitlines() if line.startswith(kind + " "))
        assert re.split(r"\s{2,}", row.strip())[2:] == [str(runs), result, str(tries)], row
    assert "job finished → ack goes through the outbox" in out
    assert "received → 503" in out
    assert "dropped" in out


def test_demo_batch_reports_throughput() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "ironpush", "demo", "--messages", "200"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "200/200 done" in proc.stdout
    assert "messages/s end to end" in proc.stdout


def test_demo_json_is_machine_readable() -> None:
    result = CliRunner().invoke(main, ["demo", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["ok"] is True
    assert doc["counters"]["dropped"] == 1
    assert all(rows[0]["status"] == "deleted" for rows in doc["messages"].values())
