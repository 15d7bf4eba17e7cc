"""The dev server's SQLite state: restarts and crashes (a real ``kill -9``) lose nothing."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from dev_process import DevProcess
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from support import wait_until

from ironpush._protocol import parse_delivery
from ironpush.client._models import Alert
from ironpush.devserver import DevServer
from ironpush.server_thread import ServerThread

T = TypeVar("T")


class Subscriber:
    """Records pushes per path; ``/hold`` answers its first push only after ``hold`` seconds."""

    def __init__(self, hold: float = 3.0) -> None:
        self.hits: list[tuple[str, dict[str, str], bytes]] = []
        self.hold = hold
        app = Starlette(routes=[Route("/{path:path}", self.handle, methods=["POST"])])
        self.server = ServerThread(app)

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        path = request.url.path
        self.hits.append((path, dict(request.headers), body))
        if path == "/hold" and len(self.at("/hold")) == 1:
            await asyncio.sleep(self.hold)  # in flight while the test kills the dev server
        code = int(path.rsplit("/", 1)[-1]) if path[-3:].isdigit() else 200
        return Response("", status_code=code)

    def at(self, path: str) -> list[tuple[str, dict[str, str], bytes]]:
        return [h for h in self.hits if h[0] == path]


@pytest.fixture(scope="module")
def sub() -> Iterator[Subscriber]:
    subscriber = Subscriber()
    with subscriber.server:
        yield subscriber


def test_restart_keeps_queues_messages_reservations_and_push_statuses(
    tmp_path: Path, sub: Subscriber, queue_name: str
) -> None:
    db = str(tmp_path / "dev.sqlite")
    pull, push, done = queue_name, f"{queue_name}-push", f"{queue_name}-done"
    with DevServer(db=db) as dev, dev.client() as mq:
        q = mq.queue(pull)
        a, b, c = q.post("a", "b", {"body": "c", "delay": 0.3})
        [reserved] = q.reserve(timeout=60)
        q.add_alerts(Alert(type="fixed", trigger=3, queue="alerts"))
        mq.create_queue(
            push, subscribers=[{"name": "s", "url": f"{sub.server.url}/202"}], retries_delay=60
        )
        [pushed] = mq.queue(push).post("held")
        wait_until(lambda: mq.queue(push).get_message_push_statuses(pushed)[0].status == "reserved")
        mq.create_queue(done, subscribers=[{"name": "s", "url": f"{sub.server.url}/200"}])
        [finished] = mq.queue(done).post("delivered")
        mq.queue(done).wait_for_push(finished, timeout=5)

    with DevServer(db=db) as dev, dev.client() as mq:
        q = mq.queue(pull)
        assert (q.size(), q.total_messages()) == (3, 3)
        assert [a.trigger for a in q.info().alerts] == [3]
        q.delete(a, reserved.reservation_id)  # the reservation survived the restart
        [m] = q.reserve()
        assert m.id == b
        [m] = wait_until(lambda: q.reserve())
        assert m.id == c
        assert int(q.post("new")[0]) > int(c)

        assert [s.name for s in mq.queue(push).subscribers()] == ["s"]
        [status] = mq.queue(push).get_message_push_statuses(pushed)
        assert (status.status, status.tries) == ("reserved", 1)
        [(_, headers, _)] = [h for h in sub.at("/202") if h[1]["iron-message-id"] == pushed]
        mq.acknowledge(push, parse_delivery(headers))
        assert mq.queue(push).get_message_push_statuses(pushed)[0].status == "deleted"

        [status] = mq.queue(done).get_message_push_statuses(finished)
        assert (status.status, status.status_code) == ("deleted", 200)
        assert mq.queue(done).size() == 0


def test_reservation_deadline_is_wall_clock_and_runs_out_across_a_restart(
    tmp_path: Path, queue_name: str
) -> None:
    db = str(tmp_path / "dev.sqlite")
    with DevServer(db=db) as dev, dev.client() as mq:
        [mid] = mq.queue(queue_name).post("x")
        [m] = mq.queue(queue_name).reserve(timeout=0.3)
    with DevServer(db=db) as dev, dev.client() as mq:
        [again] = wait_until(lambda: mq.queue(queue_name).reserve())
        assert (again.id, again.reserved_count) == (mid, 2)
        assert again.reservation_id != m.reservation_id


# --------------------------------------------------------------------------- kill -9


def test_kill_9_loses_no_posted_message_and_retries_the_push_in_flight(
    tmp_path: Path, sub: Subscriber, queue_name: str
) -> None:
    db = str(tmp_path / "crash.sqlite")
    first = DevProcess("--db", db, "--log-level", "warning", module="ironpush.devserver")
    try:
        with first.client() as mq:
            mq.create_queue(
                queue_name, subscribers=[{"name": "s", "url": f"{sub.server.url}/hold"}]
            )
            [pushed] = mq.queue(queue_name).post("in flight")
            ids = mq.queue(f"{queue_name}-pull").post(*[f"m{i}" for i in range(50)])
            wait_until(lambda: sub.at("/hold"))  # the push is now waiting for an answer
            first.kill()
    finally:
        first.stop()
    assert first.proc.returncode == -signal.SIGKILL

    second = DevProcess("--db", db, "--log-level", "warning", module="ironpush.devserver")
    try:
        with second.client() as mq:
            statuses = mq.queue(queue_name).wait_for_push(pushed, timeout=10)
            assert [s.status for s in statuses] == ["deleted"]
            hits = sub.at("/hold")
            assert len(hits) == 2
            assert {h[1]["iron-message-id"] for h in hits} == {pushed}
            assert hits[0][1]["iron-reservation-id"] != hits[1][1]["iron-reservation-id"]
            assert hits[1][1]["iron-subscriber-message-url"].startswith(second.url)
            got = mq.queue(f"{queue_name}-pull").reserve(max=100)
            assert sorted(m.id for m in got) == sorted(ids)
    finally:
        code = second.stop(signal.SIGTERM)
    assert code == 0  # SIGTERM: a clean shutdown
