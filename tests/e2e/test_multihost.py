"""Several hosts for real: three receiver instances, one shared store, one load balancer.

Each instance is a separate uvicorn process on its own host: a network namespace made by the
test, with its own address (10.200.0.11-13) and hostname, joined to the others by a virtual
LAN (``tests/multihost``); where namespaces cannot be made, distinct loopback addresses. A
round-robin load balancer on 127.0.0.1 is the one subscriber URL registered with the dev
server; the instances share the real Redis (then the real PostgreSQL) server, reached over the
LAN. Redeliveries are forced with the dev server's ``expire`` control, so no assertion races
a reservation window.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from faults import services
from faults.harness import store_url
from multihost.cluster import Cluster
from support import wait_until

from ironpush._signing import push_secret
from ironpush.client import IronMQ
from ironpush.client._models import Subscriber
from ironpush.devserver import DevServer

KEY = "multihost-key-0123456789abcdef"
SUBSCRIBER = "mh-worker"
RETRIES_DELAY = 60  # IronMQ's default: redeliveries come only when the test expires a push


@dataclass
class World:
    dev: DevServer
    mq: IronMQ
    cluster: Cluster
    prefix: str
    ledger: Path
    flags: Path

    def queue(self, route: str) -> str:
        return f"{self.prefix}-{route}"

    def rows(self, message_id: str) -> list[tuple[str, str, str, str | None]]:
        """(event, host, reservation id, token) for ``message_id``, in order."""
        if not self.ledger.exists():
            return []
        with sqlite3.connect(self.ledger, timeout=30) as db:
            try:
                sql = "SELECT event, host, reservation_id, token FROM ledger WHERE message_id = ?"
                return db.execute(sql + " ORDER BY rowid", (message_id,)).fetchall()
            except sqlite3.OperationalError:
                return []

    def events(self, message_id: str, event: str) -> list[tuple[str, str, str, str | None]]:
        return [row for row in self.rows(message_id) if row[0] == event]

    def pushes(self, message_id: str) -> list[dict[str, Any]]:
        entries = self.cluster.balancer_entries()
        return [e for e in entries if e["message_id"] == message_id and e["method"] == "POST"]

    def status(self, route: str, message_id: str) -> str | None:
        [status] = self.mq.queue(self.queue(route)).get_message_push_statuses(message_id)
        return status.status

    def report(self, message_id: str) -> str:
        return (
            f"ledger: {self.rows(message_id)}\npushes: {self.pushes(message_id)}\n"
            f"{self.cluster.tails()}"
        )

    def redeliver(self, route: str, message_id: str) -> dict[str, Any]:
        """Expire the live 202 reservation now; the push that follows (and its answer)."""
        before = len(self.pushes(message_id))
        self.dev.expire(self.queue(route), message_id, subscriber=SUBSCRIBER)
        push = wait_until(
            lambda: self.answered(message_id, before + 1),
            30,
            f"redelivery {before + 1} of {message_id} to be answered",
            report=lambda: self.report(message_id),
        )
        assert push is not None
        return push

    def answered(self, message_id: str, count: int) -> dict[str, Any] | None:
        pushes = self.pushes(message_id)
        return pushes[count - 1] if len(pushes) >= count else None


@pytest.fixture(params=["redis", "postgres"])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    service = services.service(request.param)
    service.require()
    prefix = f"mh{os.getpid()}{request.param[0]}"
    ledger, flags = tmp_path / "ledger.db", tmp_path / "flags"
    flags.mkdir()
    urls: list[str] = []
    with DevServer() as dev:

        def env(cluster: Cluster) -> dict[str, str]:
            urls.append(store_url(service, cluster.service_url("store"), 0))
            return {
                "MH_STORE": urls[-1],
                "MH_LEDGER": str(ledger),
                "MH_FLAGS": str(flags),
                "MH_QUEUE_PREFIX": prefix,
                "IRONPUSH_SECRET_KEYS": KEY,
                "IRONMQ_EMULATOR_HOST": f"http://{cluster.service_url('dev')}",
                "HOME": str(tmp_path),
            }

        relays = {"store": service.port, "dev": dev.port}
        with (
            Cluster(tmp_path, hosts=3, app="multihost.app:app", env=env, relays=relays) as cluster,
            dev.client() as mq,
        ):
            world = World(dev, mq, cluster, prefix, ledger, flags)
            for route, delay in (
                ("jobs", RETRIES_DELAY),
                ("external", RETRIES_DELAY),
                ("crash", 5),
            ):
                queue = world.queue(route)
                secret = push_secret(queue, SUBSCRIBER, [KEY])
                url = f"{cluster.balancer_url}/ironmq/{route}"
                subscriber = Subscriber(SUBSCRIBER, url, {"X-Ironpush-Secret": secret})
                mq.create_queue(
                    queue,
                    type="multicast",
                    subscribers=[subscriber],
                    retries=100,
                    retries_delay=delay,
                )
            yield world
    for url in urls:
        services.drop_namespace(url)


def test_the_hosts_are_separate_processes_on_separate_addresses(world: World) -> None:
    network = world.cluster.network
    assert network is not None
    addresses = {h.address for h in network.hosts}
    assert len(addresses) == 3
    pids = {p.pid for p in world.cluster.instances}
    assert len(pids) == 3
    if network.kind == "netns":
        assert addresses == {"10.200.0.11", "10.200.0.12", "10.200.0.13"}
        assert {h.name for h in network.hosts} == {"host-1", "host-2", "host-3"}
    else:
        assert addresses == {"127.0.0.2", "127.0.0.3", "127.0.0.4"}


def test_a_job_started_on_one_host_acks_the_newest_reservation_seen_by_another(
    world: World,
) -> None:
    [mid] = world.mq.queue(world.queue("jobs")).post("long job")
    wait_until(
        lambda: world.events(mid, "job_start"),
        30,
        "the job to start",
        report=lambda: world.report(mid),
    )
    [(_, host_a, first_rid, _)] = world.events(mid, "job_start")
    # Redeliver until one lands on another host (round robin: at most two more).
    newest = world.pushes(mid)[-1]
    for _ in range(3):
        newest = world.redeliver("jobs", mid)
        assert newest["status"] == 202, world.report(mid)  # still running: "in progress"
        if f"host-{newest['host']}" != host_a:
            break
    host_c, newest_rid = f"host-{newest['host']}", newest["reservation_id"]
    assert host_c != host_a, world.report(mid)
    assert newest_rid != first_rid
    hosts_pushed = {e["host"] for e in world.pushes(mid)}
    assert len(hosts_pushed) >= 2, world.report(mid)  # redeliveries landed on other hosts

    (world.flags / mid).touch()  # the job on host A may finish now
    wait_until(
        lambda: world.status("jobs", mid) == "deleted",
        30,
        "the ack to delete the message",
        report=lambda: world.report(mid),
    )
    # The dev server deletes only with the live reservation: the one host C saw last (every
    # older one was expired). The handler and the job ran once, on host A.
    assert [r[0] for r in world.rows(mid)] == ["handler", "job_start", "job_done"]
    assert {r[1] for r in world.rows(mid)} == {host_a}
    assert world.pushes(mid)[-1]["reservation_id"] == newest_rid  # no push after the ack


def test_an_external_worker_acks_through_any_hosts_ack_endpoint(world: World) -> None:
    [mid] = world.mq.queue(world.queue("external")).post("for a worker")
    wait_until(
        lambda: world.events(mid, "handed_out"),
        30,
        "the hand-off",
        report=lambda: world.report(mid),
    )
    [(_, host_a, _, token)] = world.events(mid, "handed_out")
    assert token
    redelivery = world.redeliver("external", mid)  # a new reservation, seen by another host
    assert redelivery["status"] == 202, world.report(mid)
    host_b = f"host-{redelivery['host']}"
    # The worker reaches whichever host it likes: one that neither handed out nor saw the push
    # last, when there is one.
    others = [i for i in (1, 2, 3) if f"host-{i}" not in {host_a, host_b}] or [1]
    answer = httpx.post(
        f"{world.cluster.direct_url(others[0])}/ironmq/_ack", content=token, timeout=30
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "acked", answer.text
    assert world.status("external", mid) == "deleted", world.report(mid)
    assert [r[0] for r in world.rows(mid)] == ["handed_out"]  # the handler ran once


def test_a_killed_hosts_job_is_taken_over_by_another_host(world: World) -> None:
    [mid] = world.mq.queue(world.queue("crash")).post("job on a host that dies")
    wait_until(
        lambda: world.events(mid, "job_start"),
        30,
        "the job to start",
        report=lambda: world.report(mid),
    )
    [(_, host_a, _, _)] = world.events(mid, "job_start")
    index_a = int(host_a.rsplit("-", 1)[1])
    world.cluster.kill9(index_a)  # host A's claim is now held by a dead process on another host
    (world.flags / mid).touch()

    def taken_over() -> bool:
        if any(r[1] != host_a for r in world.events(mid, "job_start")):
            return True
        # IronMQ keeps pushing (this queue retries every 5 s by itself; expiring the 202 makes
        # it push now); each push is answered 202 until the dead host's lease runs out. A push
        # that met a failure (a 502, a busy shared store) is retrying: nothing to expire then.
        with contextlib.suppress(httpx.HTTPStatusError):
            world.dev.expire(world.queue("crash"), mid, subscriber=SUBSCRIBER, wait=0)
        return False

    try:
        # The other hosts cannot tell a dead process on another host from a slow one: they
        # wait for its claim's lease to run out, then run the job again.
        wait_until(
            taken_over,
            60,
            "another host to take the job over",
            interval=0.5,
            report=lambda: world.report(mid),
        )
    finally:
        world.cluster.restart(index_a)
    wait_until(
        lambda: world.status("crash", mid) == "deleted",
        30,
        "the ack to delete the message",
        report=lambda: world.report(mid),
    )
    done = world.events(mid, "job_done")
    assert len(done) == 1, world.report(mid)
    assert done[0][1] != host_a, world.report(mid)
