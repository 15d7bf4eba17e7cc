"""Issue 12 point 7: the dev server's bookkeeping (running counts, ordered ready ids, the
pusher's connection pool, back-pressure) gives the right answers. Its cost at 1k to 100k
messages is measured in ``benchmarks/bench_devserver_scaling.py``, not here."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from subscriber_servers import Subscribers
from support import wait_until

from ironpush.devserver import DevServer


@pytest.fixture
def subs() -> Iterator[Subscribers]:
    with Subscribers() as servers:
        yield servers


def counts(dev: DevServer, queue: str) -> dict[str, Any]:
    state: dict[str, Any] = dev.state()["projects"]["dev"][queue]
    return state


def test_peek_reserve_and_state_stay_exact_through_deletes_and_releases(queue_name: str) -> None:
    with DevServer() as dev, dev.client() as mq:
        q = mq.queue(queue_name)
        ids = q.post(*[f"m{i}" for i in range(10)])
        for mid in ids[:5]:
            q.delete(mid)  # deleted while ready: gone from the ready order at once
        assert [m.id for m in q.peek(3)] == ids[5:8]

        first, second = q.reserve(2, timeout=3600)
        q.release(second.id, second.reservation_id, delay=3600)
        assert [m.id for m in q.peek(5)] == ids[7:]
        assert {
            k: counts(dev, queue_name)[k] for k in ("size", "ready", "reserved", "delayed")
        } == {
            "size": 5,
            "ready": 3,
            "reserved": 1,
            "delayed": 1,
        }
        q.release(first.id, first.reservation_id)  # back to the front (v3)
        assert [m.id for m in q.peek(5)] == [first.id, *ids[7:]]
        assert [m.id for m in q.reserve(2, timeout=3600)] == [first.id, ids[7]]
        q.clear()
        assert counts(dev, queue_name) | {"total_messages": 0} == {
            "type": "pull",
            "size": 0,
            "total_messages": 0,
            "ready": 0,
            "delayed": 0,
            "reserved": 0,
            "pushing": 0,
            "subscribers": 0,
        }


def test_pushing_counts_and_idle_follow_the_pushes(subs: Subscribers, queue_name: str) -> None:
    url = subs.url(200, hold=True)
    with DevServer() as dev, dev.client() as mq:
        mq.create_queue(queue_name, subscribers=[{"name": "s", "url": url}])
        mq.create_queue(queue_name + "-other", subscribers=[{"name": "s", "url": subs.url()}])
        mq.queue(queue_name).post("a", "b", "c")
        subs.wait_hits(url, 3)

        assert counts(dev, queue_name)["pushing"] == 3
        assert dev.state()["pusher"]["pushing"] == 3
        assert not dev.wait_idle(queue=queue_name, timeout=0)
        assert dev.wait_idle(queue=queue_name + "-other", timeout=5)  # another queue is idle
        subs.release()
        assert dev.wait_idle(queue=queue_name, timeout=10)
        state = dev.state()
        assert (state["pusher"]["pushing"], state["pusher"]["backlog"]) == (0, 0)
        assert counts(dev, queue_name)["pushing"] == 0
        assert state["finished"] == 3


def test_bursts_never_open_more_connections_than_pushes_in_flight(
    subs: Subscribers, queue_name: str
) -> None:
    # More pushes in flight than the HTTP client's default idle pool (128): unless the pool is
    # as large as the concurrency, each burst after the first opens new connections.
    url = subs.url(200, hold=True)
    concurrency = 150
    with DevServer(max_concurrent_pushes=concurrency) as dev, dev.client() as mq:
        mq.create_queue(queue_name, subscribers=[{"name": "s", "url": url}])
        q = mq.queue(queue_name)
        for burst in (1, 2):
            subs.hold_again()
            q.post(*[f"m{i}" for i in range(100)])
            q.post(*[f"n{i}" for i in range(concurrency - 100)])
            subs.wait_hits(url, burst * concurrency, timeout=30)  # all in flight at once
            subs.release()
            assert dev.wait_idle(queue=queue_name, timeout=30)

    connections = {h.client_port for h in subs.at(url)}
    assert len(connections) == concurrency


def test_posts_to_push_queues_wait_while_the_backlog_is_over_its_bound(
    subs: Subscribers, queue_name: str
) -> None:
    url = subs.url(200, hold=True)
    with (
        DevServer(max_concurrent_pushes=2, max_push_backlog=4, backlog_wait=30) as dev,
        dev.client() as mq,
    ):
        mq.create_queue(queue_name, subscribers=[{"name": "s", "url": url}])
        q = mq.queue(queue_name)
        q.post("1", "2", "3", "4")  # 2 in flight (held), 2 waiting for a slot: the bound
        wait_until(lambda: dev.state()["pusher"]["backlog"] == 4)
        mq.queue(queue_name + "-pull").post("pull queues are never held")

        answers: list[list[str]] = []
        late = threading.Thread(target=lambda: answers.append(q.post("5")))
        late.start()
        wait_until(lambda: dev.state()["pusher"]["held_posts"] == 1, what="the post to be held")
        assert answers == []
        subs.release()
        late.join(30)

        assert len(answers) == 1
        assert dev.wait_idle(queue=queue_name, timeout=10)
        assert len(subs.at(url)) == 5


def test_a_post_held_too_long_gets_503_with_retry_after_and_stores_nothing(
    subs: Subscribers, queue_name: str
) -> None:
    url = subs.url(200, hold=True)
    server = DevServer(max_concurrent_pushes=1, max_push_backlog=2, backlog_wait=0)
    with server as dev, dev.client() as mq:
        mq.create_queue(queue_name, subscribers=[{"name": "s", "url": url}])
        mq.queue(queue_name).post("1", "2")
        wait_until(lambda: dev.state()["pusher"]["backlog"] == 2)
        answer = httpx.post(
            f"{dev.url}/3/projects/dev/queues/{queue_name}/messages",
            json={"messages": [{"body": "3"}]},
            headers={"Authorization": "OAuth dev"},
        )
        assert answer.status_code == 503
        assert answer.headers["retry-after"] == "1"
        assert "max_push_backlog=2" in answer.json()["msg"]
        assert mq.queue(queue_name).info().total_messages == 2
        subs.release()
        assert dev.wait_idle(queue=queue_name, timeout=10)
