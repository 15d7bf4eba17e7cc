"""The transport seam: every call of both twins goes through one interface, testable without
sockets (``ironpush.client._transports.MockTransport``), whichever backend production uses."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from ironpush._errors import NotFound, ServiceUnavailable, TransportError
from ironpush._json import dumps as _dumps
from ironpush._protocol import Delivery
from ironpush.client import AsyncIronMQ, IronMQ
from ironpush.client._lean import HTTPFailure, HTTPResponse, LeanHTTPClient
from ironpush.client._retry import RetryPolicy
from ironpush.client._transports import (
    AsyncTransport,
    HttpxTransport,
    LeanTransport,
    MockTransport,
    Response,
    SyncTransport,
    WireRequest,
)

pytestmark = pytest.mark.anyio

TOKEN = "tok-SECRET-0123456789abcdef"
CLOUD = "https://mq.example.com"
BASE = f"{CLOUD}/3/projects/p1"
FAST = RetryPolicy(attempts=3, backoff=0.001, max_backoff=0.002)


def deleted(request: WireRequest) -> Response:
    return Response.from_json(200, {"msg": "Deleted"})


def client(transport: Any, **options: Any) -> AsyncIronMQ:
    return AsyncIronMQ(project_id="p1", token=TOKEN, cloud=CLOUD, transport=transport, **options)


async def test_an_ack_goes_through_the_transport_as_one_exact_request() -> None:
    mock = MockTransport(deleted)
    mq = client(mock, timeout=7)
    await mq.acknowledge("orders", Delivery("m 1", "r9", "billing"))
    (sent,) = mock.sent
    assert (sent.method, sent.url) == ("DELETE", f"{BASE}/queues/orders/messages/m%201")
    assert sent.json() == {"reservation_id": "r9", "subscriber_name": "billing"}
    assert sent.headers["Authorization"] == f"OAuth {TOKEN}"
    assert sent.headers["Content-Type"] == "application/json"
    assert sent.headers["User-Agent"].startswith("ironpush/")
    assert sent.resend_stale  # an ack is idempotent: safe to resend on a stale connection
    assert (sent.timeout.connect, sent.timeout.read) == (7, 7)
    await mq.aclose()
    assert mock.closed


async def test_params_long_polls_and_non_idempotent_calls_reach_the_transport() -> None:
    def answer(request: WireRequest) -> Response:
        if request.url.endswith("/reservations"):
            return Response.from_json(200, {"messages": [{"id": "1", "body": "b"}]})
        if request.method == "POST":
            return Response.from_json(200, {"ids": ["7"]})
        return Response.from_json(200, {"queues": [{"name": "a b"}]})

    mock = MockTransport(answer)
    mq = client(mock, timeout=5)
    assert await mq.queues(prefix="a b", per_page=5) == ["a b"]
    assert await mq.queue("q").post("x") == ["7"]
    assert [m.id for m in await mq.queue("q").reserve(wait=20)] == ["1"]
    listing, post, reserve = mock.sent
    assert listing.url == f"{BASE}/queues?prefix=a+b&per_page=5"
    assert (listing.body, post.resend_stale, reserve.resend_stale) == (b"", False, True)
    assert reserve.timeout.read == 30  # wait + 10 s: the long poll must outlive its wait
    await mq.aclose()


async def test_an_async_handler_and_a_failure_acted_out_by_the_transport() -> None:
    calls: list[str] = []

    async def flaky(request: WireRequest) -> Response:
        calls.append(request.method)
        if len(calls) == 1:
            raise HTTPFailure("connection failed: refused", unsent=True)
        if len(calls) == 2:
            return Response.from_json(503, {"msg": "busy"})
        return Response.from_json(200, {"msg": "Deleted"})

    mq = client(MockTransport(flaky), retry=FAST)
    await mq.queue("q").delete("m", "r")
    assert calls == ["DELETE"] * 3  # a connection failure and a 503, both retried
    await mq.aclose()


@pytest.mark.parametrize("unsent", [True, False])
async def test_a_post_is_retried_after_a_failure_only_when_it_never_left(unsent: bool) -> None:
    mock = MockTransport(lambda request: _raise(HTTPFailure(f"boom {TOKEN}", unsent=unsent)))
    mq = client(mock, retry=FAST)
    with pytest.raises(TransportError) as info:
        await mq.queue("q").post("once")
    assert len(mock.sent) == (FAST.attempts if unsent else 1)
    assert info.value.unsent is unsent
    assert f"POST {BASE}/queues/q/messages failed: boom" in str(info.value)
    assert TOKEN not in str(info.value)  # a transport's message is redacted too
    await mq.aclose()


def _raise(exc: Exception) -> Response:
    raise exc


async def test_errors_from_the_transport_answer_keep_its_raw_response() -> None:
    def answer(request: WireRequest) -> Response:
        return Response(503, b'{"msg": "busy"}', {"Retry-After": "1"}, raw="the raw object")

    mq = client(MockTransport(answer), retry=RetryPolicy(attempts=1))
    with pytest.raises(ServiceUnavailable) as info:
        await mq.queue("q").info()
    assert (info.value.msg, info.value.response) == ("busy", "the raw object")
    await mq.aclose()


async def test_the_token_never_follows_a_legacy_ack_url_to_another_host() -> None:
    mock = MockTransport(deleted)
    mq = client(mock)
    url = "https://elsewhere.example/1/projects/p/queues/q/messages/m/subscribers/s"
    await mq.acknowledge("q", Delivery("m", subscriber_message_url=url, flavour="legacy"))
    assert mock.sent[0].url == url
    assert "Authorization" not in mock.sent[0].headers
    await mq.aclose()


def _comparable(method: str, url: str, headers: Sequence[tuple[str, str]], body: bytes) -> Any:
    # What the caller chose; httpx adds Host, Accept-Encoding, Connection and Content-Length.
    mine = {k.lower(): v for k, v in headers if k.lower() not in _ADDED_BY_HTTPX}
    return method, url, mine, json.loads(body) if body else None


_ADDED_BY_HTTPX = {"host", "accept-encoding", "connection", "content-length"}


async def test_both_twins_and_every_transport_send_the_same_wire_request() -> None:
    seen: list[Any] = []

    def ironpush_mock(request: WireRequest) -> Response:
        seen.append(
            _comparable(request.method, request.url, list(request.headers.items()), request.body)
        )
        return Response.from_json(200, {"ids": ["1"]})

    def httpx_mock(request: httpx.Request) -> httpx.Response:
        seen.append(
            _comparable(
                request.method, str(request.url), list(request.headers.items()), request.content
            )
        )
        return httpx.Response(200, json={"ids": ["1"]})

    message = {"body": "é ünïcode", "delay": 2, "push_headers": {"X-A": "1"}}
    for transport in (MockTransport(ironpush_mock), httpx.MockTransport(httpx_mock)):
        mq = client(transport)
        assert await mq.queue("a/b").post(message) == ["1"]
        await mq.aclose()
    with IronMQ(
        project_id="p1", token=TOKEN, cloud=CLOUD, transport=httpx.MockTransport(httpx_mock)
    ) as sync:
        assert sync.queue("a/b").post(message) == ["1"]
    assert len(seen) == 3
    assert seen[0] == seen[1] == seen[2]
    assert seen[0][1] == f"{BASE}/queues/a%2Fb/messages"


async def test_the_backend_chooses_the_default_transport() -> None:
    lean = AsyncIronMQ(project_id="p", token="t", backend="lean")
    assert isinstance(lean.transport, LeanTransport)
    plain = AsyncIronMQ(project_id="p", token="t")
    assert isinstance(plain.transport, HttpxTransport)
    wrapped = AsyncIronMQ(project_id="p", token="t", transport=httpx.MockTransport(_httpx_ok))
    assert isinstance(wrapped.transport, HttpxTransport)
    mock = MockTransport(deleted)
    assert AsyncIronMQ(project_id="p", token="t", backend="lean", transport=mock).transport is mock
    for mq in (lean, plain, wrapped):
        assert isinstance(mq.transport, AsyncTransport)
        await mq.aclose()
    with IronMQ(project_id="p", token="t") as sync:
        assert isinstance(sync.transport, SyncTransport)


def _httpx_ok(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={})


def test_a_lean_backend_with_an_httpx_transport_or_an_unknown_backend_is_refused() -> None:
    with pytest.raises(ValueError, match="does not send through httpx transports"):
        AsyncIronMQ(
            project_id="p", token="t", backend="lean", transport=httpx.MockTransport(_httpx_ok)
        )
    with pytest.raises(ValueError, match="backend must be"):
        AsyncIronMQ(project_id="p", token="t", backend="curl")  # type: ignore[arg-type]


class RecordingLean(LeanHTTPClient):
    """The lean client with its socket I/O replaced: what the adapter hands it, answered."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[dict[str, Any]] = []

    async def request(self, method: str, url: str, **options: Any) -> HTTPResponse:
        self.calls.append({"method": method, "url": url, **options})
        return HTTPResponse(404, b'{"msg": "Queue not found"}', [(b"Content-Type", b"x/y")])


async def test_the_lean_transport_uses_one_total_deadline_and_decodes_the_answer() -> None:
    lean = RecordingLean()
    mq = client(LeanTransport(lean), timeout=httpx.Timeout(3.0, connect=2.0))
    with pytest.raises(NotFound, match="Queue not found") as info:
        await mq.queue("q").delete("m")
    assert info.value.response is None  # the lean client has no response object to give
    (call,) = lean.calls
    assert (call["method"], call["url"], call["body"]) == (
        "DELETE",
        f"{BASE}/queues/q/messages/m",
        b"",
    )
    assert (call["timeout"], call["resend_stale"]) == (5.0, True)  # connect + read
    assert ("Authorization", f"OAuth {TOKEN}") in call["headers"]
    answer = await LeanTransport(lean).send(WireRequest("GET", f"{BASE}/queues", {}))
    assert (answer.status_code, answer.headers, answer.raw) == (404, {"Content-Type": "x/y"}, None)
    await mq.aclose()


async def test_a_routers_deferred_ack_goes_through_the_injected_transport() -> None:
    # The production ack path (router -> outbox -> AsyncIronMQ -> transport), no sockets.
    from support import build_push, wait_until_async

    from ironpush import Defer, PushMessage, PushRouter

    mock = MockTransport(deleted)
    mq = client(mock, retry=FAST)
    router = PushRouter(secret_keys=["k1"], client=mq)
    done: list[str] = []

    async def job(message_id: str) -> None:
        done.append(message_id)

    @router.route("/orders", queue="orders", subscriber="billing")
    async def orders(msg: PushMessage) -> Defer:
        return Defer(job, msg.id)

    headers, content, _ = build_push(router, "/orders", "{}", message_id="m1", reservation_id="r1")
    await router.startup()
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=router), base_url="http://svc"
        ) as http:
            assert (await http.post("/orders", headers=headers, content=content)).status_code == 202
        await wait_until_async(lambda: mock.sent, 10, "the ack to be sent")
    finally:
        await router.shutdown()
        await mq.aclose()
    (ack,) = mock.sent
    assert (ack.method, ack.url) == ("DELETE", f"{BASE}/queues/orders/messages/m1")
    assert ack.json() == {"reservation_id": "r1", "subscriber_name": "billing"}
    assert done == ["m1"]


class _Name(str):
    """A str subclass (what json.dumps writes as its text)."""


@dataclass
class _Point:
    x: int


@pytest.mark.parametrize(
    "data",
    [
        {"reservation_id": "r1", "subscriber_name": "billing"},
        {"messages": [{"body": "héllo ✓", "delay": 0, "push_headers": {"X-K": "v"}}]},
        {"n": 2, "timeout": 30.5, "wait": None, "delete": True, "ids": ["1", "2"]},
        {"kind": _Name("subclass of str")},
    ],
)
def test_a_request_body_is_the_bytes_json_dumps_makes(data: dict[str, Any]) -> None:
    # orjson when installed (the speedups extra), the standard library otherwise: same bytes.
    assert _dumps(data) == json.dumps(data, separators=(",", ":")).encode()


@pytest.mark.parametrize("value", [datetime(2026, 1, 1, tzinfo=UTC), _Point(1)])
def test_what_the_standard_library_refuses_is_refused_with_orjson_too(value: object) -> None:
    with pytest.raises(TypeError):
        _dumps({"value": value})
