"""A deferred job that finishes while its store is away is recorded once the store is back,
and never runs twice (issue 19, N2): PostgreSQL ``pg_terminate_backend`` x3, a PostgreSQL
restart, a Redis restart (without persistence: it comes back empty) and Redis ``kill -STOP``
for 5 s, each on a server of its own, with a real dev server and a real ``ironpush serve``.

Each run ends when IronMQ deleted every message; the side effects are counted from the file the
jobs append to (no idempotency key): exactly one per message. Before, a completion that met
the fault was forgotten and the message's next push ran its job again (RELIABILITY.md has the
counts of both). Every completion that had to wait is logged, each line through ``ironpush
serve``'s repeat limiter, and counted (``completions_retried``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .store_faults import SCENARIOS, run_scenario


@pytest.mark.slow
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_a_job_finishing_during_a_store_fault_is_recorded_and_runs_once(
    scenario: str, tmp_path: Path
) -> None:
    result = run_scenario(scenario, tmp_path)
    print(result.line())  # the figures, with -s
    report = result.line()
    assert result.duplicates == 0, report
    assert result.missing == 0, report
    assert result.effects == result.messages, report
    # The fault met completions (else this test could not fail), and each one was logged and
    # counted: none rate-limited away.
    assert result.completions_retried_logged > 0, report
    assert result.completions_retried_counted == result.completions_retried_logged, report
