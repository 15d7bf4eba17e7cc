"""The dev server's message endpoints through the real client: post, reserve, touch, release,
delete, delays, expiration, dead letters, long polling, webhooks."""

from __future__ import annotations

import socket
import time
from typing import Any, TypeVar

import anyio
import httpx
import pytest
from api_kit import qpath
from support import wait_until

from ironpush._errors import NotFound, ReservationExpired
from ironpush.client import IronMQ
from ironpush.devserver import DevServer

T = TypeVar("T")


# --------------------------------------------------------------------------- messages


def test_post_reserve_delete_and_counts(mq: IronMQ, queue_name: str) -> None:
    q = mq.queue(queue_name)
    ids = q.post("a", b"b", {"body": "c"})
    assert len(set(ids)) == 3
    assert [int(i) for i in ids] == sorted(int(i) for i in ids)
    assert (q.size(), q.total_messages()) == (3, 3)  # posting created a pull queue
    msgs = q.reserve(max=2)
    assert [(m.id, m.body, m.reserved_count) for m in msgs] == [(ids[0], "a", 1), (ids[1], "b", 1)]
    assert all(m.reservation_id for m in msgs)
    q.delete(msgs[0].id, msgs[0].reservation_id)
    q.delete_multiple(msgs[1])
    assert (q.size(), q.total_messages()) == (1, 3)
    [m] = q.reserve(max=5, delete=True)
    assert m.body == "c"
    assert q.size() == 0
    assert q.reserve() == []


def test_reserve_from_a_missing_queue_is_404(mq: IronMQ, queue_name: str) -> None:
    with pytest.raises(NotFound, match="Queue not found"):
        mq.queue(queue_name).reserve()


def test_expired_reservation_returns_the_message_to_the_front(mq: IronMQ, queue_name: str) -> None:
    q = mq.queue(queue_name)
    first, second = q.post("first", "second")
    [m] = q.reserve(timeout=0.2)
    assert m.id == first
    assert [x.id for x in q.peek(max=5)] == [second]
    wait_until(lambda: len(q.peek(max=5)) == 2, timeout=5)
    assert [x.id for x in q.peek(max=5)] == [first, second]  # back at the front
    [again] = q.reserve()
    assert (again.id, again.reserved_count) == (first, 2)
    with pytest.raises(ReservationExpired, match="Reservation timed out"):
        q.delete(first, m.reservation_id)
    with pytest.raises(ReservationExpired):
        q.delete(first)  # reserved: the reservation id is required
    q.delete(first, again.reservation_id)
    assert [x.id for x in q.peek(max=5)] == [second]


def test_touch_issues_a_new_reservation_and_release_puts_back_in_front(
    mq: IronMQ, queue_name: str
) -> None:
    q = mq.queue(queue_name)
    first, second = q.post("first", "second")
    [m] = q.reserve(timeout=30)
    new = q.touch(m.id, m.reservation_id or "", timeout=60)
    assert new
    assert new != m.reservation_id
    with pytest.raises(ReservationExpired):
        q.touch(m.id, m.reservation_id or "")
    q.release(m.id, new, delay=0.3)
    [n] = q.reserve()
    assert n.id == second  # first is delayed for 0.3 s
    [again] = wait_until(lambda: q.reserve(), timeout=5)
    assert again.id == first
    with pytest.raises(ReservationExpired):
        q.release(first, new)


def test_delayed_message_becomes_available_after_its_delay(mq: IronMQ, queue_name: str) -> None:
    q = mq.queue(queue_name)
    posted = time.monotonic()
    [mid] = q.post({"body": "later", "delay": 0.3})
    assert q.reserve() == []
    assert q.size() == 1
    [m] = wait_until(lambda: q.reserve(), timeout=5)
    assert m.id == mid
    assert time.monotonic() - posted >= 0.3


def test_peek_and_get_by_id_do_not_reserve(mq: IronMQ, queue_name: str) -> None:
    q = mq.queue(queue_name)
    ids = q.post("a", {"body": "b", "push_headers": {"X-H": "v"}})
    assert [m.id for m in q.peek(max=10)] == ids
    m = q.get_message_by_id(ids[1])
    assert (m.body, m.reserved_count, m.raw["push_headers"]) == ("b", 0, {"X-H": "v"})
    assert len(q.reserve(max=10)) == 2
    with pytest.raises(NotFound, match="Message not found"):
        q.get_message_by_id("12345")


def test_clear_removes_every_message_including_reserved(mq: IronMQ, queue_name: str) -> None:
    q = mq.queue(queue_name)
    q.post("a", "b", "c")
    q.reserve()
    q.clear()
    assert q.size() == 0
    assert q.reserve() == []


def test_delete_on_messages_without_ids_clears(
    raw: httpx.Client, mq: IronMQ, queue_name: str
) -> None:
    q = mq.queue(queue_name)
    for body in (None, b"{}"):
        q.post("a", "b")
        r = raw.request("DELETE", qpath(queue_name, "messages"), content=body)
        assert (r.status_code, r.json()) == (200, {"msg": "Cleared"})
        assert q.size() == 0


def test_an_empty_ids_list_is_refused_and_clears_nothing(
    raw: httpx.Client, mq: IronMQ, queue_name: str
) -> None:
    q = mq.queue(queue_name)
    q.post("a", "b")
    for body in (b'{"ids": []}', b'{"ids": null}'):
        r = raw.request("DELETE", qpath(queue_name, "messages"), content=body)
        assert r.status_code == 400, r.text
        assert "ids must" in r.json()["msg"]
    assert q.size() == 2


def test_delete_multiple_is_all_or_nothing(mq: IronMQ, queue_name: str) -> None:
    q = mq.queue(queue_name)
    a, b = q.post("a", "b")
    with pytest.raises(NotFound):
        q.delete_multiple(a, "999")
    assert q.size() == 2
    q.delete_multiple(a, b)
    assert q.size() == 0


def test_message_expiration_drops_old_messages(mq: IronMQ, queue_name: str) -> None:
    mq.create_queue(queue_name, message_expiration=0.3)
    q = mq.queue(queue_name)
    q.post("short-lived")
    assert q.size() == 1
    wait_until(lambda: q.size() == 0, timeout=5)


def test_dead_letter_after_max_reservations(mq: IronMQ, raw: httpx.Client, queue_name: str) -> None:
    body = {"queue": {"dead_letter": {"queue_name": f"{queue_name}-dlq", "max_reservations": 1}}}
    assert raw.put(qpath(queue_name), json=body).status_code == 200
    q = mq.queue(queue_name)
    q.post("poison")
    q.reserve(timeout=0.1)
    wait_until(lambda: q.size() == 0, timeout=5)
    [dead] = mq.queue(f"{queue_name}-dlq").reserve()
    assert dead.body == "poison"
    assert q.size() == 0


@pytest.mark.anyio
async def test_long_poll_reserve_returns_as_soon_as_a_message_arrives(
    dev: DevServer, queue_name: str
) -> None:
    async with dev.async_client() as amq:
        q = amq.queue(queue_name)
        await amq.create_queue(queue_name)
        result: list[Any] = []

        async def reserve() -> None:
            result.extend(await q.reserve(wait=10))

        async with anyio.create_task_group() as tg:
            tg.start_soon(reserve)
            waiters = dev.engine.waiters
            deadline = time.monotonic() + 5
            while not waiters.waiting("dev", queue_name):  # the long poll is parked on the server
                assert time.monotonic() < deadline
                await anyio.sleep(0.005)
            started = time.monotonic()
            await q.post("wake up")
        assert [m.body for m in result] == ["wake up"]
        assert time.monotonic() - started < 10  # woken by the post, not at the end of wait=10
        assert await q.reserve(wait=0.2) == []


def test_webhook_posts_the_raw_body_with_x_subscribers_headers(
    mq: IronMQ, raw: httpx.Client, queue_name: str
) -> None:
    headers = {"X-Subscribers-X-Trace": "t1", "X-Subscribers-Content-Type": "bad", "X-Other": "1"}
    r = raw.post(qpath(queue_name, "webhook"), content=b"raw {body}", headers=headers)
    assert r.status_code == 201
    m = mq.queue(queue_name).get_message_by_id(r.json()["ids"][0])
    assert m.body == "raw {body}"
    assert {k.lower(): v for k, v in m.raw["push_headers"].items()} == {"x-trace": "t1"}


def test_a_long_poll_whose_client_left_reserves_nothing(
    dev: DevServer, mq: IronMQ, queue_name: str
) -> None:
    # A client that gives up on a long poll (a listener stopped, a worker killed) must not have
    # the next message reserved on its behalf: nobody would ever see or release it.
    mq.create_queue(queue_name)
    host, port = dev.url.split("//")[1].split(":")
    body = b'{"n": 1, "wait": 30}'
    head = (
        f"POST /3/projects/dev/queues/{queue_name}/reservations HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: OAuth x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(head + body)
        wait_until(lambda: dev.engine.waiters.waiting("dev", queue_name), 10, "the long poll")
    wait_until(lambda: not dev.engine.waiters.waiting("dev", queue_name), 10, "the poll to end")
    q = mq.queue(queue_name)
    q.post("for whoever asks next")
    assert [m.body for m in q.reserve()] == ["for whoever asks next"]
