"""The fault run in CI: 200 messages through 3 receiver kills, a dev server restart and failing
acks, then every message accounted for. The full 2,000-message run is ``fault_run.py``."""

from __future__ import annotations

from pathlib import Path

import pytest

from .harness import run


@pytest.mark.slow
def test_nothing_is_lost_or_done_twice_through_kills_restarts_and_failing_acks(
    tmp_path: Path,
) -> None:
    lines: list[str] = []
    figures = run(
        200, tmp_path, kills=3, devserver_restarts=1, seed=7, timeout=240, log=lines.append
    )
    report = "\n".join(lines + figures.lines())
    assert figures.receiver_kills == 3, report
    assert figures.devserver_restarts == 1, report
    faults = figures.ack_faults_injected
    assert faults.get("503", 0) > 0, report  # the acks really failed...
    assert faults.get("drop-after", 0) > 0, report  # ...and some were lost after taking effect
    assert figures.redeliveries > 0, report
    # Every message ended: deleted for its subscriber, or reported on the error queue.
    assert figures.deleted + figures.in_error_queue == 200, report
    assert figures.lost == 0, report
    # Each side effect happened, and exactly once.
    assert figures.side_effects == figures.deleted, report
    assert figures.missing_side_effects == 0, report
    assert figures.duplicate_side_effects == 0, report
