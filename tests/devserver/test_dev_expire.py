"""``POST /_dev/expire``: a test ends a reservation now instead of racing a short window."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from subscriber_servers import Subscribers

from ironpush._errors import ReservationExpired
from ironpush.client import IronMQ
from ironpush.devserver import DevServer


@pytest.fixture(scope="module")
def dev() -> Iterator[DevServer]:
    with DevServer(token="t0ken") as server:
        yield server


@pytest.fixture(scope="module")
def mq(dev: DevServer) -> Iterator[IronMQ]:
    with dev.client() as client:
        yield client


def test_expiring_a_202_pushes_again_at_once_with_a_new_reservation(
    mq: IronMQ, dev: DevServer, subs: Subscribers, queue_name: str
) -> None:
    url = subs.url(202)
    # retries_delay 60: only the control can end the reservation within the test.
    mq.create_queue(queue_name, subscribers=[{"name": "s", "url": url}], retries_delay=60)
    [mid] = mq.queue(queue_name).post("job")
    [first] = subs.wait_hits(url, 1)

    expired = dev.expire(queue_name, mid)

    assert expired == [{"subscriber": "s", "reservation_id": first.reservation_id}]
    second = subs.wait_hits(url, 2)[1]
    assert second.reservation_id != first.reservation_id
    assert second.headers["iron-message-id"] == mid
    # The expired reservation is dead: acking it is refused; the new one acks.
    with pytest.raises(ReservationExpired):
        mq.queue(queue_name).delete(mid, reservation_id=first.reservation_id, subscriber_name="s")
    dev.expire(queue_name, mid)  # waits for the second 202 to be recorded, then ends it too
    third = subs.wait_hits(url, 3)[2]
    mq.queue(queue_name).delete(mid, reservation_id=third.reservation_id, subscriber_name="s")
    [status] = mq.queue(queue_name).get_message_push_statuses(mid)
    assert (status.status, status.tries) == ("deleted", 3)


def test_expire_names_one_subscriber_of_a_multicast_message(
    mq: IronMQ, dev: DevServer, subs: Subscribers, queue_name: str
) -> None:
    a, b = subs.url(202), subs.url(202)
    mq.create_queue(
        queue_name, subscribers=[{"name": "a", "url": a}, {"name": "b", "url": b}], retries_delay=60
    )
    [mid] = mq.queue(queue_name).post("fan-out")
    [hit_b] = subs.wait_hits(b, 1)
    subs.wait_hits(a, 1)

    [gone] = dev.expire(queue_name, mid, subscriber="a")

    assert gone["subscriber"] == "a"
    subs.wait_hits(a, 2)
    statuses = {s.subscriber_name: s for s in mq.queue(queue_name).get_message_push_statuses(mid)}
    assert statuses["b"].tries == 1
    assert statuses["b"].status == "reserved"
    assert len(subs.at(b)) == 1
    mq.queue(queue_name).delete(mid, reservation_id=hit_b.reservation_id, subscriber_name="b")


def test_expire_on_the_last_try_ends_the_push_in_error(
    mq: IronMQ, dev: DevServer, subs: Subscribers, queue_name: str
) -> None:
    url = subs.url(202)
    mq.create_queue(
        queue_name, subscribers=[{"name": "s", "url": url}], retries=0, retries_delay=60
    )
    [mid] = mq.queue(queue_name).post("once")
    dev.expire(queue_name, mid)
    [status] = mq.queue(queue_name).wait_for_push(mid, timeout=10)
    assert (status.status, status.tries, status.retries_remaining) == ("error", 1, 0)
    assert len(subs.at(url)) == 1


def test_expiring_a_pull_reservation_returns_the_message_now(
    mq: IronMQ, dev: DevServer, queue_name: str
) -> None:
    q = mq.queue(queue_name)
    q.post("pull me")
    [m] = q.reserve(timeout=3600)

    [gone] = dev.expire(queue_name, m.id, wait=0)

    assert gone == {"subscriber": None, "reservation_id": m.reservation_id}
    [again] = q.reserve(timeout=3600)
    assert again.id == m.id
    assert again.reservation_id != m.reservation_id
    assert again.reserved_count == 2
    with pytest.raises(ReservationExpired):
        q.delete(m.id, reservation_id=m.reservation_id)
    q.delete(again.id, reservation_id=again.reservation_id)


def test_expire_answers_precise_errors(mq: IronMQ, dev: DevServer, queue_name: str) -> None:
    q = mq.queue(queue_name)
    [mid] = q.post("not reserved")
    auth = {"Authorization": "OAuth t0ken"}
    url = f"{dev.url}/_dev/expire"
    body = {"project": "dev", "queue": queue_name, "message_id": mid}

    nothing = httpx.post(url, json=body, headers=auth)
    assert (nothing.status_code, nothing.json()) == (
        409,
        {"msg": f"message {mid} has no live reservation to expire"},
    )
    missing = httpx.post(url, json={**body, "message_id": "1"}, headers=auth)
    assert (missing.status_code, missing.json()) == (404, {"msg": "Message not found"})
    no_queue = httpx.post(url, json={**body, "queue": queue_name + "-x"}, headers=auth)
    assert (no_queue.status_code, no_queue.json()) == (404, {"msg": "Queue not found"})
    incomplete = httpx.post(url, json={"queue": queue_name}, headers=auth)
    assert incomplete.status_code == 400
    assert httpx.post(url, content=b"{", headers=auth).status_code == 400
    assert httpx.post(url, json=body).status_code == 401  # the token guards the control plane
