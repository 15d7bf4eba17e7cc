"""The official Python client (iron-mq 0.9 on iron-core 1.2.1) against a real dev server.

A representative scenario set of that client's own calls, over real sockets, with real
subscriber servers on 127.0.0.1: the pull lifecycle, push queues answering 200, 202 and
failures, subscriber management and alerts. Regressions in what that client sends or reads
show here. ``IronMQ.queues()`` is left out: on Python 3 it always raises
``AttributeError: module 'urllib' has no attribute 'urlencode'`` (a client defect, fixed on
the client's master but never released; protocol reference §6).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import iron_mq
import pytest
import requests
from subscriber_servers import Subscribers
from support import wait_until

from ironpush.devserver import DevServer


@pytest.fixture(scope="module")
def dev() -> Iterator[DevServer]:
    with DevServer(token="py-client-token") as server:
        yield server


@pytest.fixture(scope="module")
def mq(dev: DevServer) -> iron_mq.IronMQ:
    return iron_mq.IronMQ(
        project_id="dev",
        token="py-client-token",
        host="127.0.0.1",
        port=dev.port,
        protocol="http",
    )


def final_statuses(q: iron_mq.Queue, mid: str) -> list[dict[str, Any]]:
    """The push statuses once no subscriber is queued or retrying any more."""

    def settled() -> list[dict[str, Any]] | None:
        found: list[dict[str, Any]] = q.get_message_push_statuses(mid)["subscribers"]
        pending = any(s["status"] in ("queued", "retrying") for s in found)
        return None if pending else found

    return wait_until(settled, 10, f"the pushes of {mid} to settle")


# --------------------------------------------------------------------------- pull


def test_pull_lifecycle(mq: iron_mq.IronMQ, queue_name: str) -> None:
    created = mq.create_queue(queue_name, {"message_timeout": 30, "message_expiration": 3600})
    assert (created["name"], created["type"], created["message_timeout"]) == (
        queue_name,
        "pull",
        30,
    )
    q = mq.queue(queue_name)

    posted = q.post("first", {"body": "second"}, {"body": "third"})
    assert posted["msg"] == "Messages put on queue."
    first_id, second_id, third_id = posted["ids"]
    assert (q.size(), q.total_messages()) == (3, 3)
    assert [m["body"] for m in q.peek(max=2)["messages"]] == ["first", "second"]

    reserved = q.reserve(max=2, timeout=30)["messages"]
    assert [m["id"] for m in reserved] == [first_id, second_id]
    assert all(m["reserved_count"] == 1 and m["reservation_id"] for m in reserved)
    a, b = reserved
    touched = q.touch(a["id"], a["reservation_id"], timeout=60)
    assert touched["msg"] == "Touched"
    again = q.touch(a["id"], touched["reservation_id"])  # each touch gives a new reservation
    assert again["reservation_id"] != touched["reservation_id"]
    assert q.release(b["id"], b["reservation_id"])["msg"] == "Released"
    assert q.get_message_by_id(second_id)["body"] == "second"

    assert q.delete(a["id"], reservation_id=again["reservation_id"]) == {"msg": "Deleted"}
    with pytest.raises(requests.HTTPError) as stale:
        q.delete(b["id"], reservation_id=b["reservation_id"])  # released: that id is stale
    assert stale.value.response.status_code == 403

    # Released messages go to the front (v3): "second" comes before "third".
    reserved = q.reserve(max=2, timeout=30)
    assert [m["id"] for m in reserved["messages"]] == [second_id, third_id]
    assert q.delete_multiple(messages=reserved) == {"msg": "Deleted"}
    assert q.size() == 0

    ids = q.post("x", "y")["ids"]
    assert q.delete_multiple(ids=ids) == {"msg": "Deleted"}
    q.post("gone on reserve")
    [popped] = q.reserve(delete=True)["messages"]
    assert popped["body"] == "gone on reserve"
    assert "reservation_id" not in popped
    q.post("deprecated get")
    assert q.get()["messages"][0]["body"] == "deprecated get"  # get() = reserve() alias
    assert q.clear() == {"msg": "Cleared"}
    assert q.reserve(wait=0)["messages"] == []

    assert q.delete_queue() == {"msg": "Deleted"}
    with pytest.raises(requests.HTTPError) as missing:
        q.info()
    assert missing.value.response.status_code == 404


def test_update_queue_and_a_wrong_token(
    mq: iron_mq.IronMQ, dev: DevServer, queue_name: str
) -> None:
    mq.create_queue(queue_name)
    updated = mq.update_queue(queue_name, {"message_timeout": 120})
    assert (updated["message_timeout"], updated["size"]) == (120, 0)
    assert mq.queue(queue_name).update({"message_expiration": 7200})["message_expiration"] == 7200
    wrong = iron_mq.IronMQ(
        project_id="dev", token="wrong", host="127.0.0.1", port=dev.port, protocol="http"
    )
    with pytest.raises(requests.HTTPError) as refused:
        wrong.queue(queue_name).info()
    assert refused.value.response.status_code == 401


# --------------------------------------------------------------------------- push


def test_push_queue_answers_200_and_202(
    mq: iron_mq.IronMQ, dev: DevServer, subs: Subscribers, queue_name: str
) -> None:
    ok, deferred = subs.url(200), subs.url(202)
    subscribers = [
        {"name": "ok", "url": ok, "headers": {"X-Secret": "s1"}},
        {"name": "later", "url": deferred},
    ]
    # A 202 holds the message for retries_delay (60 s): the test ends it with /_dev/expire.
    push = {"subscribers": subscribers, "retries": 3, "retries_delay": 60}
    mq.create_queue(queue_name, {"type": "multicast", "push": push})
    q = mq.queue(queue_name)
    [mid] = q.post({"body": '{"order": 7}', "push_headers": {"X-Trace": "t-7"}})["ids"]

    [pushed] = subs.wait_hits(ok, 1)
    assert pushed.body == b'{"order": 7}'
    assert pushed.headers["iron-message-id"] == mid
    assert (pushed.headers["x-secret"], pushed.headers["x-trace"]) == ("s1", "t-7")
    [held] = subs.wait_hits(deferred, 1)
    by_name = {s["name"]: s for s in final_statuses(q, mid)}
    assert (by_name["ok"]["status"], by_name["ok"]["status_code"]) == ("deleted", 200)
    assert (by_name["later"]["status"], by_name["later"]["status_code"]) == ("reserved", 202)

    # An unacknowledged 202 is pushed again with a new reservation; the new one acks.
    dev.expire(queue_name, mid, subscriber="later")
    redelivered = subs.wait_hits(deferred, 2)[1]
    assert redelivered.reservation_id != held.reservation_id
    assert {s["name"]: s for s in final_statuses(q, mid)}["later"]["tries"] == 2
    acked = q.delete(mid, reservation_id=redelivered.reservation_id, subscriber_name="later")
    assert acked == {"msg": "Deleted"}
    assert {s["name"]: s["status"] for s in final_statuses(q, mid)}["later"] == "deleted"
    with pytest.raises(requests.HTTPError) as stale:
        q.delete(mid, reservation_id=held.reservation_id, subscriber_name="later")
    assert stale.value.response.status_code == 403


def test_push_failures_are_retried_then_reported_to_the_error_queue(
    mq: iron_mq.IronMQ, subs: Subscribers, queue_name: str
) -> None:
    failing = subs.url(500)
    errors = f"{queue_name}-errors"
    push = {
        "subscribers": [{"name": "broken", "url": failing}],
        "retries": 2,
        "retries_delay": 0,  # below hosted's 3 s minimum: the dev server takes it
        "error_queue": errors,
    }
    mq.create_queue(queue_name, {"type": "multicast", "push": push})
    q = mq.queue(queue_name)
    [mid] = q.post("doomed")["ids"]

    [status] = final_statuses(q, mid)

    assert (status["status"], status["tries"], status["retries_remaining"]) == ("error", 3, 0)
    assert status["status_code"] == 500
    assert len(subs.wait_hits(failing, 3)) == 3
    # The report is in the error queue, read with the same client.
    [report] = wait_until(lambda: mq.queue(errors).reserve()["messages"])
    content = json.loads(report["body"])
    assert (content["source_msg_id"], content["body"]) == (mid, "doomed")
    [failure] = content["subscribers"]
    assert (failure["name"], failure["url"], failure["code"]) == ("broken", failing, 500)


def test_push_ack_by_subscriber_name(
    mq: iron_mq.IronMQ, subs: Subscribers, queue_name: str
) -> None:
    url = subs.url(202)
    mq.create_queue(
        queue_name, {"type": "unicast", "push": {"subscribers": [{"name": "only", "url": url}]}}
    )
    q = mq.queue(queue_name)
    [mid] = q.post("long job")["ids"]
    subs.wait_hits(url, 1)
    wait_until(lambda: q.get_message_push_statuses(mid)["subscribers"][0]["status"] == "reserved")

    assert q.delete(mid, subscriber_name="only") == {"msg": "Deleted"}

    [status] = q.get_message_push_statuses(mid)["subscribers"]
    assert status["status"] == "deleted"


def test_subscriber_management(mq: iron_mq.IronMQ, subs: Subscribers, queue_name: str) -> None:
    first, second, third = subs.url(), subs.url(), subs.url()
    mq.create_queue(
        queue_name, {"type": "multicast", "push": {"subscribers": [{"name": "a", "url": first}]}}
    )
    q = mq.queue(queue_name)

    assert q.add_subscribers({"name": "b", "url": second}) == {"msg": "Updated"}
    assert q.add_subscribers({"name": "a", "url": third}) == {"msg": "Updated"}  # same name
    assert [(s["name"], s["url"]) for s in q.info()["push"]["subscribers"]] == [
        ("a", third),
        ("b", second),
    ]
    assert q.remove_subscribers("a") == {"msg": "Updated"}
    assert [s["name"] for s in q.info()["push"]["subscribers"]] == ["b"]
    assert q.replace_subscribers({"name": "c", "url": first}) == {"msg": "Updated"}
    assert [s["name"] for s in q.info()["push"]["subscribers"]] == ["c"]

    [mid] = q.post("to c")["ids"]
    [hit] = subs.wait_hits(first, 1)
    assert (hit.headers["iron-subscriber-name"], hit.headers["iron-message-id"]) == ("c", mid)


# --------------------------------------------------------------------------- alerts


def test_alerts(mq: iron_mq.IronMQ, queue_name: str) -> None:
    mq.create_queue(queue_name)
    q = mq.queue(queue_name)
    added = q.add_alerts(
        {"type": "fixed", "direction": "desc", "trigger": 1000, "queue": "a_q"},
        {"type": "fixed", "direction": "asc", "trigger": 10000, "queue": "a_q"},
        {"type": "progressive", "direction": "asc", "trigger": 500, "queue": "a_q"},
    )
    assert len(added["alerts"]) == 3
    ids = [a["id"] for a in q.info()["alerts"]]
    last = ids[2]

    assert q.remove_alerts(*ids[:2]) == {"msg": "Alerts were deleted."}  # Iron.io's own test
    assert [a["id"] for a in q.info()["alerts"]] == [last]

    replaced = q.update_alerts(
        {"type": "progressive", "direction": "desc", "trigger": 5, "queue": "b"}
    )
    [alert] = replaced["alerts"]
    assert (alert["type"], alert["direction"], alert["trigger"], alert["queue"]) == (
        "progressive",
        "desc",
        5,
        "b",
    )
    assert [a["id"] for a in q.info()["alerts"]] == [alert["id"]]
    with pytest.raises(requests.HTTPError) as dup:  # a duplicate of a current alert
        q.add_alerts({"type": "progressive", "direction": "desc", "trigger": 5, "queue": "b"})
    assert dup.value.response.status_code == 400
