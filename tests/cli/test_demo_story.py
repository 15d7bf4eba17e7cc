"""``ironpush demo`` tells its story: one clock, both sides, counters that add up, what next."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from ironpush.cli._demo import summary_rows

EVENT = re.compile(r"^\+\s*(\d+\.\d\d)s  (\w+)\s+(\d+)  (\w+)\s+(.*)$")


def demo(*args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "ironpush", "demo", *args],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "HOME": "/nonexistent"},
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def test_the_tour_narrates_both_sides_on_one_clock() -> None:
    proc = demo()
    events = [m.groups() for line in proc.stdout.splitlines() if (m := EVENT.match(line))]
    times = [float(t) for t, *_ in events]
    assert times == sorted(times)  # never backwards
    said = {(kind, side, text) for _, kind, _, side, text in events}
    assert ("long", "service", "job finished → ack goes through the outbox") in said
    assert ("long", "ironmq", "ack via API delete → deleted") in said
    assert ("flaky", "ironmq", "push try 1/4 answered 503 → will push again in 1s") in said
    assert ("flaky", "service", "received (try 2) → 200, done") in said
    rows = {line.split()[0]: line for line in proc.stdout.splitlines() if line[:6].strip()}
    assert "acked after 202" in rows["long"]
    assert "delivered on try 2" in rows["flaky"]
    assert "dropped (200)" in rows["poison"]
    assert "deleted 202" not in proc.stdout
    received = rows["received"]
    assert "5      pushes that reached the service, retries included" in received
    assert "2 answered 200 at once + 1 deferred (202) + 1 retried (503) + 1 dropped" in received
    assert proc.stdout.rstrip().splitlines()[-1].startswith("Next: run `ironpush dev`")
    assert "/_dev/ui" in proc.stdout
    assert proc.stderr == ""  # no raw warnings


def test_a_batch_explains_its_throughput_and_prints_no_raw_warnings() -> None:
    proc = demo("--messages", "400")
    assert "400/400 done" in proc.stdout
    assert "messages/s end to end" in proc.stdout
    assert "deliberately slow service" in proc.stdout
    assert "benchmarks/README.md" in proc.stdout
    assert proc.stderr == ""


def test_counters_add_up_and_name_what_they_count() -> None:
    counters = {
        "received": 3589,
        "acked": 1244,
        "deferred": 249,
        "retried": 500,
        "dropped": 500,
        "duplicates": 5,
        "busy": 1335,
        "late_acks": 5,
        "ack_failures": 0,
    }
    rows = {r["counter"]: r for r in summary_rows(counters)}
    assert rows["received"]["what it counts"].endswith(
        "1000 answered 200 at once + 249 deferred (202) + 500 retried (503) + 500 dropped"
        " + 5 duplicates + 1335 busy"
    )
    assert rows["acked"]["what it counts"].startswith("1000 answered 200 at once + 244 deferred")
    assert "capacity was full" in rows["busy"]["what it counts"]
    assert "reservation had run out" in rows["late_acks"]["what it counts"]
    assert "ack_failures" not in rows  # only counters that moved, besides the main ones
