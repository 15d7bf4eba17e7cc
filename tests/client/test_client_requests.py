"""Every client method, on both twins, against a real HTTP server (pytest-httpserver): the
exact request it sends (method, escaped path, JSON body, headers) and how it parses the
documented v3 response shapes, including the multi-step push-queue calls and polling."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from client_kit import BASE, TOKEN, Recorder, call

from ironpush._errors import ValidationError
from ironpush._protocol import Delivery
from ironpush.client import AsyncIronMQ, IronMQ
from ironpush.client._models import Alert, Message, PushStatus, QueueInfo, Subscriber

pytestmark = pytest.mark.anyio

SUBS = [{"name": "a", "url": "http://a.example/push", "headers": {"X-K": "v"}}]
QUEUE = {
    "queue": {
        "project_id": "p1",
        "name": "a b",
        "size": 3,
        "total_messages": 7,
        "message_timeout": 60,
        "message_expiration": 604800,
        "type": "multicast",
        "push": {"subscribers": SUBS, "retries": 3, "retries_delay": 60, "error_queue": "errq"},
    }
}


@dataclass
class Case:
    """One client method: what it sends and how its answer is parsed."""

    target: str  # "client" or "queue"
    method: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    reply: Any
    http: str
    path: str
    body: Any
    check: Callable[[Any], bool]
    status: int = 200


def case(
    target: str,
    method: str,
    *args: Any,
    reply: Any = None,
    http: str,
    path: str,
    body: Any = None,
    check: Callable[[Any], bool] = lambda r: r is None,
    status: int = 200,
    **kwargs: Any,
) -> Case:
    return Case(target, method, args, kwargs, reply, http, path, body, check, status)


Q = f"{BASE}/queues/a%20b"


def deletes_m1(**body: str) -> dict[str, Any]:
    """The request that deletes message m1: ``DELETE .../messages/m1`` with ``body`` (if any)."""
    return {"http": "DELETE", "path": f"{Q}/messages/m1", "body": body or None}


CASES = [
    case(
        "client",
        "queues",
        reply={"queues": [{"name": "a"}, {"name": "b"}]},
        http="GET",
        path=f"{BASE}/queues",
        check=lambda r: r == ["a", "b"],
    ),
    case(
        "client",
        "queues",
        prefix="or",
        per_page=2,
        previous="a",
        reply={"queues": []},
        http="GET",
        path=f"{BASE}/queues?prefix=or&per_page=2&previous=a",
        check=lambda r: r == [],
    ),
    case(
        "client",
        "create_queue",
        "a b",
        type="unicast",
        subscribers=["http://x.example/p"],
        retries=2,
        retries_delay=0.5,
        error_queue="err",
        message_timeout=30,
        reply=QUEUE,
        http="PUT",
        path=Q,
        body={
            "queue": {
                "type": "unicast",
                "message_timeout": 30,
                "push": {
                    "subscribers": [
                        {
                            "name": Subscriber.coerce("http://x.example/p").name,
                            "url": "http://x.example/p",
                        }
                    ],
                    "retries": 2,
                    "retries_delay": 0.5,
                    "error_queue": "err",
                },
            }
        },
        check=lambda r: isinstance(r, QueueInfo) and r.type == "multicast",
    ),
    case(
        "client",
        "update_queue",
        "a b",
        message_expiration=100,
        reply=QUEUE,
        http="PATCH",
        path=Q,
        body={"queue": {"message_expiration": 100}},
        check=lambda r: r.size == 3 and r.push.error_queue == "errq",
    ),
    case("client", "delete_queue", "a b", reply={"msg": "Deleted"}, http="DELETE", path=Q),
    case(
        "client",
        "acknowledge",
        "a b",
        Delivery(message_id="m1", reservation_id="r1", subscriber_name="s1"),
        reply={"msg": "Deleted"},
        **deletes_m1(reservation_id="r1", subscriber_name="s1"),
    ),
    case(
        "queue",
        "info",
        reply=QUEUE,
        http="GET",
        path=Q,
        check=lambda r: (
            r.name == "a b"
            and r.is_push
            and r.subscribers[0].headers == {"X-K": "v"}
            and r.push.retries == 3
            and r.id is None
        ),
    ),
    case("queue", "size", reply=QUEUE, http="GET", path=Q, check=lambda r: r == 3),
    case("queue", "total_messages", reply=QUEUE, http="GET", path=Q, check=lambda r: r == 7),
    case("queue", "id", reply=QUEUE, http="GET", path=Q, check=lambda r: r is None),
    case(
        "queue",
        "create",
        type="pull",
        reply={"queue": {"name": "a b"}},
        http="PUT",
        path=Q,
        body={"queue": {"type": "pull"}},
        check=lambda r: r.name == "a b" and not r.is_push,
    ),
    case("queue", "delete_queue", http="DELETE", path=Q),
    case("queue", "clear", reply={"msg": "Cleared"}, http="DELETE", path=f"{Q}/messages", body={}),
    case(
        "queue",
        "post",
        "hello",
        b"bytes \xc3\xa9",
        {"body": "later", "delay": 5, "push_headers": {"X-Trace": "t1"}},
        reply={"ids": ["1", "2", "3"], "msg": "Messages put on queue."},
        status=201,
        http="POST",
        path=f"{Q}/messages",
        body={
            "messages": [
                {"body": "hello"},
                {"body": "bytes é"},
                {"body": "later", "delay": 5, "push_headers": {"X-Trace": "t1"}},
            ]
        },
        check=lambda r: r == ["1", "2", "3"],
    ),
    case(
        "queue",
        "reserve",
        max=5,
        timeout=30,
        wait=2,
        delete=True,
        reply={"messages": [{"id": "m", "body": "b", "reserved_count": 1, "reservation_id": "r"}]},
        http="POST",
        path=f"{Q}/reservations",
        body={"n": 5, "timeout": 30, "wait": 2, "delete": True},
        check=lambda r: r == [Message(id="m", body="b", reserved_count=1, reservation_id="r")],
    ),
    case(
        "queue",
        "get",
        reply={"messages": []},
        http="POST",
        path=f"{Q}/reservations",
        body={"n": 1},
        check=lambda r: r == [],
    ),
    case(
        "queue",
        "get_message_by_id",
        "m1",
        reply={"message": {"id": "m1", "body": "x"}},
        http="GET",
        path=f"{Q}/messages/m1",
        check=lambda r: r.id == "m1" and r.body == "x",
    ),
    case(
        "queue",
        "peek",
        max=3,
        reply={"messages": [{"id": "1", "body": "x"}]},
        http="GET",
        path=f"{Q}/messages?n=3",
        check=lambda r: [m.id for m in r] == ["1"],
    ),
    case(
        "queue",
        "touch",
        "m1",
        "r1",
        timeout=120,
        reply={"reservation_id": "r2", "msg": "Touched"},
        http="POST",
        path=f"{Q}/messages/m1/touch",
        body={"reservation_id": "r1", "timeout": 120},
        check=lambda r: r == "r2",
    ),
    case(
        "queue",
        "release",
        "m1",
        "r1",
        delay=10,
        reply={"msg": "Released"},
        http="POST",
        path=f"{Q}/messages/m1/release",
        body={"reservation_id": "r1", "delay": 10},
    ),
    case("queue", "delete", "m1", reply={"msg": "Deleted"}, **deletes_m1()),
    case(
        "queue",
        "delete",
        "m1",
        "r1",
        reply={"msg": "Deleted"},
        **deletes_m1(reservation_id="r1"),
    ),
    case(
        "queue",
        "delete_multiple",
        "m1",
        Message(id="m2", body="", reservation_id="r2"),
        {"id": "m3", "reservation_id": "r3"},
        http="DELETE",
        path=f"{Q}/messages",
        body={
            "ids": [
                {"id": "m1"},
                {"id": "m2", "reservation_id": "r2"},
                {"id": "m3", "reservation_id": "r3"},
            ]
        },
    ),
    case(
        "queue",
        "add_subscribers",
        "http://b.example/x",
        {"name": "c", "url": "http://c.example", "headers": {"H": "1"}},
        http="POST",
        path=f"{Q}/subscribers",
        body={
            "subscribers": [
                Subscriber.coerce("http://b.example/x").to_json(),
                {"name": "c", "url": "http://c.example", "headers": {"H": "1"}},
            ]
        },
    ),
    case(
        "queue",
        "replace_subscribers",
        Subscriber("n", "http://n.example"),
        http="PUT",
        path=f"{Q}/subscribers",
        body={"subscribers": [{"name": "n", "url": "http://n.example"}]},
    ),
    case(
        "queue",
        "remove_subscribers",
        "a",
        "b",
        http="DELETE",
        path=f"{Q}/subscribers",
        body={"subscribers": [{"name": "a"}, {"name": "b"}]},
    ),
    case(
        "queue",
        "get_message_push_statuses",
        "m1",
        reply={
            "subscribers": [
                {
                    "name": "a",
                    "retries_remaining": 2,
                    "tries": 1,
                    "status_code": 200,
                    "status": "deleted",
                    "url": "http://a",
                    "last_try_at": "2014-07-30T15:45:03Z",
                }
            ]
        },
        http="GET",
        path=f"{Q}/messages/m1/subscribers",
        check=lambda r: (
            r
            == [
                PushStatus(
                    subscriber_name="a",
                    url="http://a",
                    status="deleted",
                    status_code=200,
                    tries=1,
                    retries_remaining=2,
                    last_try_at="2014-07-30T15:45:03Z",
                )
            ]
        ),
    ),
    case(
        "queue",
        "delete_message_push_status",
        "m1",
        "r1",
        "sub",
        **deletes_m1(reservation_id="r1", subscriber_name="sub"),
    ),
    case(
        "queue",
        "add_alerts",
        {"type": "fixed", "trigger": 10, "queue": "al"},
        Alert(type="progressive", trigger=5, queue="al", direction="desc", snooze=60),
        http="PATCH",
        path=Q,
        body={
            "queue": {
                "alerts": [
                    {"type": "fixed", "trigger": 10, "queue": "al"},
                    {
                        "type": "progressive",
                        "trigger": 5,
                        "queue": "al",
                        "direction": "desc",
                        "snooze": 60,
                    },
                ]
            }
        },
    ),
    case(
        "queue",
        "update_alerts",
        {"type": "fixed", "trigger": 1, "queue": "al"},
        http="PUT",
        path=f"{Q}/alerts",
        body={"alerts": [{"type": "fixed", "trigger": 1, "queue": "al"}]},
    ),
    case(
        "queue",
        "remove_alerts",
        "x1",
        "x2",
        http="DELETE",
        path=f"{Q}/alerts",
        body={"alerts": [{"id": "x1"}, {"id": "x2"}]},
    ),
    case("queue", "remove_alert", "x1", http="DELETE", path=f"{Q}/alerts/x1"),
]


@pytest.mark.parametrize("c", CASES, ids=lambda c: f"{c.target}.{c.method}")
async def test_each_method_sends_the_documented_request_and_parses_the_reply(
    mq: IronMQ | AsyncIronMQ, rec: Recorder, c: Case
) -> None:
    rec.reply(c.status, c.reply)
    target = mq if c.target == "client" else mq.queue("a b")
    result = await call(target, c.method, *c.args, **c.kwargs)

    assert len(rec.calls) == 1
    sent = rec.last
    assert (sent.method, sent.uri) == (c.http, c.path)
    assert sent.body == c.body
    assert sent.headers["Authorization"] == f"OAuth {TOKEN}"
    assert sent.headers["User-Agent"].startswith("ironpush/")
    assert sent.headers["Accept"] == "application/json"
    if c.body is not None:
        assert sent.headers["Content-Type"] == "application/json"
    assert c.check(result), result


async def test_queue_names_with_reserved_characters_are_escaped_in_every_segment(
    mq: IronMQ | AsyncIronMQ, rec: Recorder
) -> None:
    await call(mq.queue("a/b?c#d%e f"), "delete", "id/1")
    assert rec.last.uri == f"{BASE}/queues/a%2Fb%3Fc%23d%25e%20f/messages/id%2F1"


async def test_acks_escape_the_queue_and_the_message_id_on_every_call(
    mq: IronMQ | AsyncIronMQ, rec: Recorder
) -> None:
    # The queue's part of an ack's path is remembered per queue: the message id never is.
    for message_id in ("id/1", "id 2"):
        await call(mq, "acknowledge", "a/b c", Delivery(message_id, "r", subscriber_name="s"))
    assert [c.uri for c in rec.calls] == [
        f"{BASE}/queues/a%2Fb%20c/messages/id%2F1",
        f"{BASE}/queues/a%2Fb%20c/messages/id%202",
    ]
    with pytest.raises(ValidationError, match="queue name"):
        await call(mq, "acknowledge", "", Delivery("m", "r", subscriber_name="s"))


async def test_iter_queues_follows_pages_with_previous(
    mq: IronMQ | AsyncIronMQ, rec: Recorder
) -> None:
    rec.reply(200, {"queues": [{"name": "a"}, {"name": "b"}]})
    rec.reply(200, {"queues": [{"name": "c"}]})
    if isinstance(mq, IronMQ):
        names = list(mq.iter_queues(per_page=2))
    else:
        names = [n async for n in mq.iter_queues(per_page=2)]
    assert names == ["a", "b", "c"]
    assert [c.uri for c in rec.calls] == [
        f"{BASE}/queues?per_page=2",
        f"{BASE}/queues?per_page=2&previous=b",
    ]


# --------------------------------------------------------------------------- update (push)


async def test_update_creates_a_missing_push_queue_with_put(
    mq: IronMQ | AsyncIronMQ, rec: Recorder
) -> None:
    rec.reply(404, {"msg": "Queue not found"})
    rec.reply(200, QUEUE)
    await call(
        mq.queue("a b"),
        "update",
        subscribers=["http://x.example/p"],
        push_type="unicast",
        retries=5,
    )
    assert [(c.method, c.uri) for c in rec.calls] == [("GET", Q), ("PUT", Q)]
    assert rec.last.body["queue"]["type"] == "unicast"
    assert rec.last.body["queue"]["push"]["retries"] == 5


async def test_update_patches_an_existing_push_queue(
    mq: IronMQ | AsyncIronMQ, rec: Recorder
) -> None:
    rec.reply(200, QUEUE)
    rec.reply(200, QUEUE)
    await call(mq.queue("a b"), "update", push_type="multicast", retries_delay=3)
    assert [(c.method, c.uri) for c in rec.calls] == [("GET", Q), ("PATCH", Q)]
    assert rec.last.body == {"queue": {"push": {"retries_delay": 3}}}


async def test_update_refuses_to_change_a_v3_queue_type(
    mq: IronMQ | AsyncIronMQ, rec: Recorder
) -> None:
    rec.reply(200, QUEUE)  # multicast
    with pytest.raises(ValidationError, match="cannot change a queue's type"):
        await call(mq.queue("a b"), "update", push_type="unicast")
    assert [c.method for c in rec.calls] == ["GET"]


async def test_remove_subscribers_by_url_looks_up_their_names(
    mq: IronMQ | AsyncIronMQ, rec: Recorder
) -> None:
    rec.reply(200, QUEUE)
    await call(mq.queue("a b"), "remove_subscribers", "http://a.example/push")
    assert [c.method for c in rec.calls] == ["GET", "DELETE"]
    assert rec.last.body == {"subscribers": [{"name": "a"}]}


async def test_remove_subscribers_by_unknown_url_raises(
    mq: IronMQ | AsyncIronMQ, rec: Recorder
) -> None:
    rec.reply(200, QUEUE)
    with pytest.raises(ValidationError, match="no subscriber with that URL"):
        await call(mq.queue("a b"), "remove_subscribers", "http://nope.example/")


def test_url_subscribers_get_a_stable_derived_name() -> None:
    a = Subscriber.coerce("https://api.example.com/ironmq/orders")
    b = Subscriber.coerce("https://api.example.com/ironmq/orders")
    c = Subscriber.coerce("https://api.example.com/ironmq/invoices")
    assert a == b
    assert a.name != c.name
    assert a.name.startswith("api.example.com-ironmq-orders-")


async def test_wait_for_push_returns_when_every_subscriber_is_done(
    mq: IronMQ | AsyncIronMQ, rec: Recorder
) -> None:
    rec.reply(200, {"subscribers": [{"name": "a", "status": "queued"}]})
    rec.reply(200, {"subscribers": [{"name": "a", "status": "deleted", "status_code": 200}]})
    statuses = await call(mq.queue("q"), "wait_for_push", "m", timeout=5, interval=0.01)
    assert [s.status for s in statuses] == ["deleted"]
    assert len(rec.calls) == 2


async def test_wait_for_push_times_out_with_the_last_statuses(
    mq: IronMQ | AsyncIronMQ, rec: Recorder
) -> None:
    for _ in range(100):
        rec.reply(200, {"subscribers": [{"name": "a", "status": "retrying"}]})
    with pytest.raises(TimeoutError, match="a=retrying"):
        await call(mq.queue("q"), "wait_for_push", "m", timeout=0.1, interval=0.01)
