"""The IronMQ clients, both twins, against a real HTTP server (pytest-httpserver).

Every method is checked for the exact request it sends (method, escaped path, JSON body,
headers) and for how it parses the documented v3 response shapes.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import socket
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request as WRequest
from werkzeug import Response as WResponse

from ironpush._errors import (
    APIError,
    BadRequest,
    ConfigError,
    NotFound,
    ReservationExpired,
    ServiceUnavailable,
    TransportError,
    Unauthorized,
    ValidationError,
)
from ironpush._protocol import Delivery
from ironpush.client import AsyncIronMQ, IronMQ
from ironpush.client._models import Alert, ErrorReport, Message, PushStatus, QueueInfo, Subscriber
from ironpush.client._retry import RetryPolicy
from ironpush.client._transports import LeanTransport

pytestmark = pytest.mark.anyio

TOKEN = "tok-SECRET-0123456789abcdef"
FAST_RETRY = RetryPolicy(attempts=3, backoff=0.001, max_backoff=0.002)


@dataclass
class Call:
    method: str
    uri: str  # raw, as sent on the wire (escapes preserved)
    headers: dict[str, str]
    body: Any


class Recorder:
    """Records every request and answers with scripted replies (default: 200 ``{}``)."""

    def __init__(self, server: HTTPServer) -> None:
        self.server = server
        self.calls: list[Call] = []
        self.replies: deque[WResponse] = deque()
        server.expect_request(__import__("re").compile(".*")).respond_with_handler(self.handle)

    @property
    def url(self) -> str:
        return self.server.url_for("").rstrip("/")

    def reply(self, status: int = 200, data: Any = None, *, raw: bytes | None = None) -> None:
        if raw is not None:
            self.replies.append(WResponse(raw, status=status))
        else:
            self.replies.append(
                WResponse(
                    json.dumps(data if data is not None else {}),
                    status=status,
                    content_type="application/json",
                )
            )

    def handle(self, request: WRequest) -> WResponse:
        raw = request.get_data()
        body = json.loads(raw) if raw else None
        uri = request.environ.get("RAW_URI") or request.full_path
        self.calls.append(Call(request.method, uri, dict(request.headers), body))
        return self.replies.popleft() if self.replies else WResponse("{}", status=200)

    @property
    def last(self) -> Call:
        return self.calls[-1]


@pytest.fixture
def rec(httpserver: HTTPServer) -> Recorder:
    return Recorder(httpserver)


@pytest.fixture(params=["sync", "async", "async-lean"])
async def mq(request: pytest.FixtureRequest, rec: Recorder) -> AsyncIterator[IronMQ | AsyncIronMQ]:
    """Each test runs on the sync twin, the async twin, and the async twin's lean backend."""
    options: dict[str, Any] = {
        "project_id": "p1",
        "token": TOKEN,
        "cloud": rec.url,
        "retry": FAST_RETRY,
        "timeout": 5,
    }
    client: IronMQ | AsyncIronMQ
    if request.param == "sync":
        client = IronMQ(**options)
    else:
        client = AsyncIronMQ(
            **options, backend="lean" if request.param == "async-lean" else "httpx"
        )
    yield client
    if isinstance(client, IronMQ):
        client.close()
    else:
        await client.aclose()


async def call(obj: Any, name: str, *args: Any, **kwargs: Any) -> Any:
    """Call ``obj.name(...)`` on either twin, awaiting when it is the async one."""
    result = getattr(obj, name)(*args, **kwargs)
    if inspect.isawaitable(result):
        result = await result
    return result


BASE = "/3/projects/p1"
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
        http="DELETE",
        path=f"{Q}/messages/m1",
        body={"reservation_id": "r1", "subscriber_name": "s1"},
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
    case("queue", "delete", "m1", reply={"msg": "Deleted"}, http="DELETE", path=f"{Q}/messages/m1"),
    case(
        "queue",
        "delete",
        "m1",
        "r1",
        reply={"msg": "Deleted"},
        http="DELETE",
        path=f"{Q}/messages/m1",
        body={"reservation_id": "r1"},
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
        http="DELETE",
        path=f"{Q}/messages/m1",
        body={"reservation_id": "r1", "subscriber_name": "sub"},
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


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("method", "args", "match"),
    [
        ("delete_multiple", (), "empty list would clear"),
        ("post", (), "at least one message"),
        ("post", ({"body": "x", "push_headers": {"Content-Type": "a"}},), "set by the pusher"),
        ("post", ({"body": "x", "push_headers": {f"H{i}": "v" for i in range(6)}},), "at most 5"),
        ("post", ({"body": "x", "push_headers": {"X": "a\r\nEvil: 1"}},), "line break"),
        ("post", ({"body": "x", "push_headers": {"X": "v" * 1025}},), "1..1024"),
        ("post", ({"body": "x", "timeout": 30},), "unsupported message field"),
        ("post", (b"\xff\xfe",), "UTF-8"),
        ("post", ({"body": {"a": 1}},), "json.dumps"),
        ("reserve", (0,), "max must be"),
        ("touch", ("m", ""), "reservation_id is required"),
        ("remove_alerts", (), "ids of the alerts"),
        ("add_subscribers", (), "at least one subscriber"),
    ],
)
async def test_bad_arguments_raise_before_anything_is_sent(
    mq: IronMQ | AsyncIronMQ, rec: Recorder, method: str, args: tuple[Any, ...], match: str
) -> None:
    with pytest.raises(ValidationError, match=match):
        await call(mq.queue("q"), method, *args)
    assert rec.calls == []


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("status", "msg", "exc"),
    [
        (400, "Bad JSON", BadRequest),
        (401, "Invalid token", Unauthorized),
        (403, "Reservation timed out", ReservationExpired),
        (403, "Project suspended", APIError),
        (404, "Queue not found", NotFound),
        (500, "boom", APIError),
    ],
)
async def test_error_statuses_map_to_the_exception_tree(
    mq: IronMQ | AsyncIronMQ, rec: Recorder, status: int, msg: str, exc: type[APIError]
) -> None:
    rec.reply(status, {"msg": msg})
    with pytest.raises(exc) as info:
        await call(mq.queue("q"), "delete", "m1", "r1")
    err = info.value
    assert type(err) is exc
    assert (err.status_code, err.msg, err.method) == (status, msg, "DELETE")
    assert err.path == "/queues/q/messages/m1"
    lean = isinstance(mq, AsyncIronMQ) and isinstance(mq.transport, LeanTransport)
    assert err.response is None if lean else isinstance(err.response, httpx.Response)
    assert TOKEN not in str(err)
    assert TOKEN not in repr(err)
    assert len(rec.calls) == 1  # client errors and 500 are never retried


async def test_503_is_retried_for_idempotent_calls_then_raises(
    mq: IronMQ | AsyncIronMQ, rec: Recorder
) -> None:
    for _ in range(3):
        rec.reply(503, {"msg": "busy"})
    with pytest.raises(ServiceUnavailable):
        await call(mq.queue("q"), "info")
    assert len(rec.calls) == FAST_RETRY.attempts


async def test_504_then_success_returns_the_result(mq: IronMQ | AsyncIronMQ, rec: Recorder) -> None:
    rec.reply(504, {"msg": "gateway"})
    rec.reply(200, {"queues": [{"name": "x"}]})
    assert await call(mq, "queues") == ["x"]
    assert len(rec.calls) == 2


async def test_post_is_never_retried_after_it_may_have_arrived(
    mq: IronMQ | AsyncIronMQ, rec: Recorder
) -> None:
    rec.reply(503, {"msg": "busy"})
    with pytest.raises(ServiceUnavailable):
        await call(mq.queue("q"), "post", "once")
    assert len(rec.calls) == 1


async def test_reserve_with_delete_is_not_retried(mq: IronMQ | AsyncIronMQ, rec: Recorder) -> None:
    rec.reply(503, {"msg": "busy"})
    with pytest.raises(ServiceUnavailable):
        await call(mq.queue("q"), "reserve", delete=True)
    assert len(rec.calls) == 1


async def test_a_2xx_without_content_type_or_body_is_fine(
    mq: IronMQ | AsyncIronMQ, rec: Recorder
) -> None:
    rec.reply(200, raw=b"")
    assert await call(mq.queue("q"), "delete", "m") is None
    rec.reply(200, raw=b'{"queues": [{"name": "z"}]}')
    assert await call(mq, "queues") == ["z"]


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port: int = s.getsockname()[1]
    s.close()
    return port


def build(kind: str, **options: Any) -> IronMQ | AsyncIronMQ:
    if kind == "sync":
        return IronMQ(**options)
    return AsyncIronMQ(**options, backend="lean" if kind == "async-lean" else "httpx")


async def close(client: IronMQ | AsyncIronMQ) -> None:
    if isinstance(client, IronMQ):
        client.close()
    else:
        await client.aclose()


KINDS = ["sync", "async", "async-lean"]


@pytest.mark.parametrize("kind", KINDS)
async def test_unreachable_server_raises_transport_error_after_retrying(kind: str) -> None:
    attempts: list[int] = []

    class CountingRetry(RetryPolicy):
        def delay(self, attempt: int) -> float:
            attempts.append(attempt)
            return 0.001

    url = f"http://127.0.0.1:{_closed_port()}"
    client = build(kind, project_id="p", token=TOKEN, cloud=url, retry=CountingRetry(attempts=3))
    with pytest.raises(TransportError) as info:
        await call(client.queue("q"), "post", "x")  # unsent: even a post may be retried
    assert info.value.unsent
    assert attempts == [1, 2]
    assert "failed" in str(info.value)
    assert TOKEN not in str(info.value)
    await close(client)


@pytest.mark.parametrize("kind", KINDS)
async def test_a_server_that_never_answers_times_out(kind: str) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:  # accept and hold connections without answering
        listener.settimeout(0.05)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    client = build(
        kind,
        project_id="p",
        token=TOKEN,
        cloud=url,
        retry=RetryPolicy(attempts=1),
        timeout=httpx.Timeout(0.3),
    )
    try:
        with pytest.raises(TransportError, match=r"ReadTimeout|no answer within") as info:
            await call(client.queue("q"), "info")
        assert not info.value.unsent  # the request went out; only the answer is missing
    finally:
        stop.set()
        thread.join()
        for conn in accepted:
            conn.close()
        listener.close()
        await close(client)


# --------------------------------------------------------------------------- acks and secrets


async def test_legacy_ack_deletes_the_url_and_keeps_the_token_at_home(
    mq: IronMQ | AsyncIronMQ, rec: Recorder, httpserver: HTTPServer
) -> None:
    # Same origin: the token is sent.
    own = f"{rec.url}/1/projects/p1/queues/q/messages/m/subscribers/s"
    await call(
        mq,
        "acknowledge",
        "q",
        Delivery(message_id="m", subscriber_message_url=own, flavour="legacy"),
    )
    assert rec.last.method == "DELETE"
    assert rec.last.uri == "/1/projects/p1/queues/q/messages/m/subscribers/s"
    assert rec.last.headers["Authorization"] == f"OAuth {TOKEN}"
    # Another origin (a push header could name any host): no token.
    foreign = own.replace("localhost", "127.0.0.1")
    assert foreign != own
    await call(
        mq,
        "acknowledge",
        "q",
        Delivery(message_id="m", subscriber_message_url=foreign, flavour="legacy"),
    )
    assert "Authorization" not in rec.last.headers


async def test_ack_token_without_secret_keys_is_a_config_error(mq: IronMQ | AsyncIronMQ) -> None:
    with pytest.raises(ConfigError, match="IRONPUSH_SECRET_KEYS"):
        await call(mq, "ack", "whatever")


def test_reprs_never_show_the_token(rec: Recorder) -> None:
    with IronMQ(project_id="p1", token=TOKEN, cloud=rec.url) as mq:
        texts = [repr(mq), repr(mq.settings), str(mq.settings), repr(mq.queue("q"))]
    assert all(TOKEN not in t for t in texts)


async def test_keystone_login_supplies_the_token(rec: Recorder) -> None:
    rec.reply(200, {"access": {"token": {"id": "ks-token", "expires": "2999-01-01T00:00:00Z"}}})
    rec.reply(200, {"queues": []})
    rec.reply(200, {"queues": []})
    keystone = {"server": rec.url + "/v2.0", "tenant": "t", "username": "u", "password": "pw"}
    async with AsyncIronMQ(project_id="p1", keystone=keystone, cloud=rec.url) as mq:
        await mq.queues()
        await mq.queues()
    login, first, second = rec.calls
    assert (login.method, login.uri) == ("POST", "/v2.0/tokens")
    assert login.body == {
        "auth": {"tenantName": "t", "passwordCredentials": {"username": "u", "password": "pw"}}
    }
    assert "Authorization" not in login.headers
    assert first.headers["Authorization"] == second.headers["Authorization"] == "OAuth ks-token"


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


# --------------------------------------------------------------------------- regressions


def test_a_token_that_cannot_travel_in_a_header_is_refused_without_echoing_it() -> None:
    with pytest.raises(ConfigError, match="cannot be sent in an HTTP header") as info:
        IronMQ(project_id="p", token="tok-SECRET\nvalue", cloud="http://127.0.0.1:9")
    assert "tok-SECRET" not in str(info.value)


@pytest.mark.parametrize("kind", KINDS)
async def test_transport_errors_never_quote_the_token(kind: str, rec: Recorder) -> None:
    # Bypass the configuration check to reach the HTTP library with an illegal header value.
    good = IronMQ(project_id="p1", token=TOKEN, cloud=rec.url).settings
    bad = dataclasses.replace(good, token=TOKEN + "\x00")
    client = build(kind, settings=bad, retry=RetryPolicy(attempts=1))
    with pytest.raises(TransportError) as info:
        await call(client, "queues")
    assert TOKEN not in str(info.value)
    await close(client)


@pytest.mark.parametrize(
    "message",
    ["bad \ud800 body", {"body": "ok", "push_headers": {"X-A": "bad \udcff"}}],
)
async def test_text_that_cannot_be_encoded_is_a_validation_error(
    mq: IronMQ | AsyncIronMQ, rec: Recorder, message: Any
) -> None:
    with pytest.raises(ValidationError, match="valid Unicode"):
        await call(mq.queue("q"), "post", message)
    assert rec.calls == []


def test_push_status_and_error_report_reprs_mask_secret_urls() -> None:
    url = "https://svc.example.com/ironmq/orders?ironpush_secret=s3cr3t-value-0123456789"
    status = PushStatus.from_json({"name": "a", "url": url, "status": "deleted"})
    report = ErrorReport.from_json(
        {"source_msg_id": "1", "subscribers": [{"name": "a", "url": url, "code": 500}]}
    )
    for text in (repr(status), repr(report)):
        assert "s3cr3t-value" not in text
        assert "svc.example.com" in text
