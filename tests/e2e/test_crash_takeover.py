"""kill -9 during 20 deferred 5 s jobs, with IronMQ's default retries: 20/20 processed.

Issue 11, finding 2: with ``retries=3`` and ``retries_delay=3`` (IronMQ's default tries; its
minimum delay) and the router's default ``claim_lease`` (then 30 s), a ``kill -9`` while 20
deferred 5 s jobs ran sent all 20 to the error queue: the restarted receiver answered every
redelivery "in progress" (202) for claims nobody would finish, until the tries ran out. This
test reproduced it (20/20 on the error queue) before the fix; ``CRASH_CLAIM_LEASE=30`` in the
receiver's environment shows what the lease alone does.

Real parts: the dev server, a receiver subprocess (uvicorn, SQLite store, the router's
defaults), a real ``kill -9``, and a restart of the receiver on the same port:

- on the same host (a process restarted in place): the dead owner's claims are taken over at
  once;
- under another hostname (a container rescheduled on another machine): the claims are taken
  over when their lease runs out, which the default lease must make happen within the 4 tries.
"""

from __future__ import annotations

import os
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from faults.processes import Process, python_path
from multihost.netns import netns_possible, with_hostname
from support import free_port, wait_until

from ironpush._signing import push_secret
from ironpush.client._models import ErrorReport, Subscriber
from ironpush.devserver import DevServer

KEY = "crash-takeover-key-0123456789abcdef"
JOBS = 20
RETRIES = 3  # IronMQ's default


@pytest.fixture(scope="module")
def dev() -> Iterator[DevServer]:
    with DevServer() as server:  # the hosted service's 10 s push timeout
        yield server


def receiver(tmp_path: Path, port: int, queue: str, hostname: str | None) -> Process:
    argv = [sys.executable, "-m", "uvicorn", "faults.crash_app:app", "--port", str(port)]
    argv += ["--log-level", "warning"]
    if hostname is not None:
        assert netns_possible(), "another hostname needs root and unshare (util-linux)"
        argv = with_hostname(hostname, argv)
    env = {
        **os.environ,
        "PYTHONPATH": python_path(),
        "CRASH_STORE": str(tmp_path / "store.db"),
        "CRASH_LEDGER": str(tmp_path / "ledger.db"),
        "CRASH_QUEUE": queue,
        "IRONPUSH_SECRET_KEYS": KEY,
        "IRONMQ_EMULATOR_HOST": os.environ["IRONMQ_EMULATOR_HOST"],
    }
    health = f"http://127.0.0.1:{port}/ironmq/_health"
    return Process(argv, env, health, name=f"receiver-{hostname or 'same-host'}")


def ledger(tmp_path: Path, sql: str) -> list[tuple[object, ...]]:
    path = tmp_path / "ledger.db"
    if not path.exists():
        return []
    with sqlite3.connect(path, timeout=30) as db:
        try:
            return db.execute(sql).fetchall()
        except sqlite3.OperationalError:
            return []


@pytest.mark.slow
@pytest.mark.parametrize(
    ("restarted_as", "retries_delay"),
    [
        # The scenario: IronMQ's default tries, the hosted service's minimum delay.
        pytest.param(None, 3.0, id="same-host-retries_delay-3"),
        # On another machine only the lease can end the claims, so the budget must be well
        # above the lease (the router warns otherwise): IronMQ's default delay / 10.
        pytest.param("rescheduled-node", 6.0, id="other-host-retries_delay-6"),
    ],
)
def test_kill_during_20_deferred_jobs_with_default_retries_processes_all_20(
    dev: DevServer,
    tmp_path: Path,
    queue_name: str,
    restarted_as: str | None,
    retries_delay: float,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("IRONMQ_EMULATOR_HOST", dev.url)
    port = free_port()
    first = receiver(tmp_path, port, queue_name, "original-node" if restarted_as else None)
    second = receiver(tmp_path, port, queue_name, restarted_as)
    errors = f"{queue_name}-errors"
    with dev.client() as mq:
        secret = push_secret(queue_name, "worker", [KEY])
        url = f"http://127.0.0.1:{port}/ironmq/jobs"
        mq.create_queue(
            queue_name,
            type="multicast",
            subscribers=[Subscriber("worker", url, {"X-Ironpush-Secret": secret})],
            retries=RETRIES,
            retries_delay=retries_delay,
            error_queue=errors,
        )
        try:
            first.start()
            ids = mq.queue(queue_name).post(*[f"job {n}" for n in range(JOBS)])

            def report() -> str:
                rows = ledger(tmp_path, "SELECT event, host, COUNT(*) FROM ledger GROUP BY 1, 2")
                return f"ledger: {rows}\n{first.tail()}\n{second.tail()}"

            wait_until(
                lambda: len(ledger(tmp_path, "SELECT 1 FROM ledger WHERE event = 'start'")) >= JOBS,
                30,
                "20 jobs running",
                report=report,
            )
            first.kill9()  # mid-job: every job's claim is held by a dead process
            second.start()

            def finished() -> bool:
                statuses = [mq.queue(queue_name).get_message_push_statuses(m) for m in ids]
                return all(s and s[0].status in ("deleted", "error") for s in statuses)

            # The whole retry budget ((retries + 1) x retries_delay) plus one 5 s job, doubled.
            budget = (RETRIES + 1) * retries_delay + 5
            wait_until(finished, 2 * budget + 30, "every message to end", report=report)
            statuses = {m: mq.queue(queue_name).get_message_push_statuses(m)[0] for m in ids}
            in_error = []
            if errors in mq.queues(prefix=errors):
                batch = mq.queue(errors).reserve(max=100, timeout=30)
                in_error = [ErrorReport.parse(m.body).source_msg_id for m in batch]
        finally:
            second.cleanup()
            first.cleanup()
    done = ledger(tmp_path, "SELECT key, COUNT(*) FROM ledger WHERE event = 'done' GROUP BY key")
    outcome = f"statuses: {[s.status for s in statuses.values()]}, error queue: {in_error}"
    assert [s.status for s in statuses.values()] == ["deleted"] * JOBS, outcome
    assert in_error == [], outcome
    assert len(done) == JOBS, done  # every job's side effect happened...
    assert all(count == 1 for _, count in done), done  # ...once
