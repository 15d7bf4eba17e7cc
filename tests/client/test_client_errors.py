"""How the client twins fail: bad arguments refused before anything is sent, error statuses
mapped to the exception tree, which calls are retried (and which never are), and transport
failures (a closed port, a server that never answers) as bounded TransportErrors."""

from __future__ import annotations

import socket
import threading
from typing import Any

import httpx
import pytest
from client_kit import FAST_RETRY, KINDS, TOKEN, Recorder, build, call, close

from ironpush._errors import (
    APIError,
    BadRequest,
    NotFound,
    ReservationExpired,
    ServiceUnavailable,
    TransportError,
    Unauthorized,
    ValidationError,
)
from ironpush.client import AsyncIronMQ, IronMQ
from ironpush.client._retry import RetryPolicy
from ironpush.client._transports import LeanTransport

pytestmark = pytest.mark.anyio

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
