"""The fault run in CI: 200 messages (quick, deferred and failing-once handlers) on three hosts
behind a load balancer, through 3 ``kill -9`` of instances, a restart of the store's server, a
dev server restart and failing acks, with IronMQ's default retries scaled (``scenario.py``);
then every message accounted for. The full 2,000-message run is ``fault_run.py``.

The Redis run and the PostgreSQL run are independent (their own hosts, dev server, proxy and
store server) and spend most of their time waiting for IronMQ's retries, so they run at once.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from .harness import Figures, run

STORES = ("redis", "postgres")


def problems(figures: Figures) -> list[str]:
    """Every property of a good run that did not hold."""
    checks = {
        "3 instance kills": figures.instance_kills == 3,
        "1 store server restart": figures.store_restarts == 1,
        "1 dev server restart": figures.devserver_restarts == 1,
        "acks really failed (503s injected)": figures.ack_faults_injected.get("503", 0) > 0,
        "redeliveries happened": figures.redeliveries > 0,
        "pushes spread over 3 hosts": len(figures.pushes_by_host) == 3,
        "redeliveries landed on other hosts": figures.redeliveries_to_another_host > 0,
        # Every message processed: deleted for its subscriber, none on the error queue, none
        # lost, nothing left reserved; each side effect happened, and exactly once.
        "every message deleted": figures.deleted == figures.messages,
        "0 lost, 0 on the error queue, 0 left reserved": (
            figures.lost,
            figures.in_error_queue,
            figures.left_reserved,
        )
        == (0, 0, 0),
        "every side effect recorded": figures.side_effects == figures.messages,
        "0 missing side effects": figures.missing_side_effects == 0,
        "0 duplicate side effects": figures.duplicate_side_effects == 0,
    }
    return [name for name, ok in checks.items() if not ok]


@pytest.mark.slow
def test_three_hosts_lose_nothing_and_do_nothing_twice_through_kills_and_restarts(
    tmp_path: Path,
) -> None:
    logs: dict[str, list[str]] = {store: [] for store in STORES}

    def one(store: str) -> Figures:
        workdir = tmp_path / store
        workdir.mkdir()
        return run(200, workdir, store=store, seed=7, timeout=150, stall=60, log=logs[store].append)

    with ThreadPoolExecutor(len(STORES)) as pool:
        results = dict(zip(STORES, pool.map(one, STORES), strict=True))
    report = "\n\n".join(
        "\n".join([f"== {store}: {problems(f)}", *logs[store], *f.lines()])
        for store, f in results.items()
    )
    assert all(not problems(f) for f in results.values()), report
