"""``acknowledge_all``: several acks in one call (the ack outbox's batches), each ending as
:meth:`acknowledge` would end it, on both twins and every backend against a real HTTP server;
the lean backend pipelines them (one write per connection)."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import httpx
import pytest
from client_kit import BASE, FAST_RETRY, TOKEN, call
from pytest_httpserver import HTTPServer
from werkzeug import Request as WRequest
from werkzeug import Response as WResponse

from ironpush._errors import NotFound, ReservationExpired, TransportError, ValidationError
from ironpush._protocol import Delivery
from ironpush.client import AsyncIronMQ, IronMQ
from ironpush.client._transports import (
    HTTPFailure,
    HttpxTransport,
    MockTransport,
    Response,
    WireBatch,
    WireRequest,
)

pytestmark = pytest.mark.anyio


def v3(message_id: str) -> Delivery:
    return Delivery(message_id, f"r-{message_id}", subscriber_name="billing")


class Scripted:
    """A real HTTP server answering each message id from its own script of statuses (the
    last one repeats; 200 when it has none), recording every request."""

    def __init__(self, server: HTTPServer, script: dict[str, list[int]]) -> None:
        self.script = script
        self.seen: list[tuple[str, str, bytes]] = []
        self.url = server.url_for("").rstrip("/")
        server.expect_request(re.compile(".*")).respond_with_handler(self.handle)

    def handle(self, request: WRequest) -> WResponse:
        path = request.environ.get("RAW_URI") or request.full_path
        self.seen.append((request.method, path, request.get_data()))
        steps = self.script.get(path.rsplit("/", 1)[-1], [200])
        status = steps.pop(0) if len(steps) > 1 else steps[0]
        body = '{"msg":"Deleted"}' if status < 400 else '{"msg":"Reservation has expired"}'
        return WResponse(body, status=status, content_type="application/json")


@pytest.fixture(params=["sync", "async", "async-lean"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def twin(kind: str, url: str) -> IronMQ | AsyncIronMQ:
    options: dict[str, Any] = {
        "project_id": "p1",
        "token": TOKEN,
        "cloud": url,
        "retry": FAST_RETRY,
        "timeout": 5,
    }
    if kind == "sync":
        return IronMQ(**options)
    return AsyncIronMQ(**options, backend="lean" if kind == "async-lean" else "httpx")


async def close(mq: IronMQ | AsyncIronMQ) -> None:
    await call(mq, "aclose" if isinstance(mq, AsyncIronMQ) else "close")


async def test_the_acks_are_the_requests_acknowledge_sends_each(
    kind: str, httpserver: HTTPServer
) -> None:
    server = Scripted(httpserver, {})
    mq = twin(kind, server.url)
    acks = [("orders", v3("m1")), ("a b", v3("m 2")), ("orders", v3("m3"))]
    assert await call(mq, "acknowledge_all", acks) == [None, None, None]
    batched = list(server.seen)
    server.seen.clear()
    for queue, delivery in acks:
        await call(mq, "acknowledge", queue, delivery)
    await close(mq)
    assert sorted(batched) == sorted(server.seen)  # the same requests, byte for byte
    assert sorted(path for _, path, _ in batched) == [
        f"{BASE}/queues/a%20b/messages/m%202",
        f"{BASE}/queues/orders/messages/m1",
        f"{BASE}/queues/orders/messages/m3",
    ]


async def test_each_ack_ends_as_acknowledge_would_end_it(kind: str, httpserver: HTTPServer) -> None:
    server = Scripted(httpserver, {"gone": [404], "late": [403], "flaky": [503, 200]})
    mq = twin(kind, server.url)
    legacy = Delivery(
        "old", None, subscriber_message_url=f"{server.url}/legacy/ack-old", flavour="legacy"
    )
    acks = [
        ("orders", v3("ok")),
        ("orders", v3("gone")),
        ("orders", v3("flaky")),
        ("orders", legacy),
        ("orders", Delivery("bare", None)),  # nothing to ack it with
        ("orders", v3("late")),
    ]
    ok, gone, flaky, old, bare, late = await call(mq, "acknowledge_all", acks)
    await close(mq)
    assert (ok, flaky, old) == (None, None, None)
    assert isinstance(gone, NotFound)
    assert isinstance(late, ReservationExpired)
    assert isinstance(bare, ValidationError)
    sent = Counter(path.rsplit("/", 1)[-1] for _, path, _ in server.seen)
    # the 503 was retried as the policy says; the legacy push was acked at its own URL
    assert sent == {"ok": 1, "gone": 1, "flaky": 2, "ack-old": 1, "late": 1}


async def test_the_lean_backend_writes_the_acks_together(
    httpserver: HTTPServer, writes: list[int]
) -> None:
    server = Scripted(httpserver, {})
    mq = twin("async-lean", server.url)
    assert isinstance(mq, AsyncIronMQ)
    errors = await mq.acknowledge_all([("orders", v3(f"m{i}")) for i in range(8)])
    await mq.aclose()
    assert errors == [None] * 8
    assert writes == [8]  # one connection, one write for the eight
    assert len(server.seen) == 8


class BatchMock(MockTransport):
    """A MockTransport that also takes calls together (``send_all``), failing the first
    attempt of the ids in ``drop`` without an answer (then ``send`` answers them)."""

    def __init__(self, drop: set[str]) -> None:
        super().__init__(lambda request: Response.from_json(200, {"msg": "Deleted"}))
        self.drop = drop
        self.batches: list[int] = []

    async def send_all(self, batch: WireBatch) -> list[Response | HTTPFailure]:
        self.batches.append(len(batch.items))
        answers: list[Response | HTTPFailure] = []
        for request in batch.requests():
            if request.url.rsplit("/", 1)[-1] in self.drop:
                answers.append(HTTPFailure("connection reset"))
            else:
                answers.append(await self.send(request))
        return answers


async def test_an_ack_whose_batch_attempt_failed_is_retried_alone() -> None:
    transport = BatchMock(drop={"m2"})
    mq = AsyncIronMQ(project_id="p1", token=TOKEN, transport=transport, retry=FAST_RETRY)
    assert await mq.acknowledge_all([("q", v3("m1")), ("q", v3("m2"))]) == [None, None]
    assert transport.batches == [2]
    urls = [r.url.rsplit("/", 1)[-1] for r in transport.sent]
    assert urls == ["m1", "m2"]  # m2's first attempt failed in the batch: sent again alone


async def test_an_ack_that_keeps_failing_reports_the_transport_error() -> None:
    def reset(request: WireRequest) -> Response:
        raise HTTPFailure("connection reset")

    transport = BatchMock(drop={"m1"})
    transport.handler = reset
    mq = AsyncIronMQ(project_id="p1", token=TOKEN, transport=transport, retry=FAST_RETRY)
    (error,) = await mq.acknowledge_all([("q", v3("m1"))])
    assert isinstance(error, TransportError)
    assert TOKEN not in str(error)
    assert len(transport.sent) == FAST_RETRY.attempts - 1  # the batch's was the first


async def test_a_transport_without_send_all_sends_them_concurrently() -> None:
    sent: list[str] = []

    def gone(request: httpx.Request) -> httpx.Response:
        sent.append(request.url.path.rsplit("/", 1)[-1])
        return httpx.Response(404, json={"msg": "gone"})

    transport = HttpxTransport(transport=httpx.MockTransport(gone))
    assert not hasattr(transport, "send_all")
    mq = AsyncIronMQ(project_id="p1", token=TOKEN, transport=transport)
    errors = await mq.acknowledge_all([("q", v3("m1")), ("q", v3("m2"))])
    assert [type(e) for e in errors] == [NotFound, NotFound]
    assert sorted(sent) == ["m1", "m2"]


async def test_a_mock_transport_answers_a_batch_from_its_handler_in_order() -> None:
    def answer(request: WireRequest) -> Response:
        if request.url.endswith("/m2"):
            raise HTTPFailure("connection reset")
        return Response.from_json(404 if request.url.endswith("/m3") else 200, {"msg": "x"})

    transport = MockTransport(answer)
    mq = AsyncIronMQ(project_id="p1", token=TOKEN, transport=transport, retry=FAST_RETRY)
    errors = await mq.acknowledge_all([("q", v3(f"m{i}")) for i in (1, 2, 3)])
    assert [type(e) for e in errors] == [type(None), TransportError, NotFound]
    urls = [r.url.rsplit("/", 1)[-1] for r in transport.sent]
    assert urls == ["m1", "m2", "m3", *["m2"] * (FAST_RETRY.attempts - 1)]
