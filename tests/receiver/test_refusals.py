"""Pushes the router refuses (400/401/403/413/404/405) and legacy pushes it accepts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from ironpush._signing import push_secret
from ironpush.receiver._router import PushRouter
from ironpush.testing import PushSimulator

from .contract import KEYS, Calls

pytestmark = pytest.mark.anyio


# --- 400 / 401 / 403 / 413 / 404 / 405 -------------------------------------------------------


async def test_missing_message_id_is_400(sim: PushSimulator, calls: Calls) -> None:
    headers = {sim.router.secret_header: push_secret("orders", "billing", KEYS)}
    answer = await sim.http.post("/plain", content=b"x", headers=headers)
    assert answer.status_code == 400
    assert "Iron-Message-Id" in answer.json()["error"]
    assert calls.messages == []


async def test_undecodable_body_on_a_json_route_is_400(sim: PushSimulator, calls: Calls) -> None:
    for body in (b"{not json", b"\xff\xfe"):
        assert (await sim.push("/json", body)).status_code == 400
    assert calls.messages == []


async def test_missing_secret_is_401_and_wrong_secret_403(sim: PushSimulator, calls: Calls) -> None:
    missing = await sim.push("/plain", "x", secret=None)
    wrong = await sim.push("/plain", "x", secret=push_secret("orders", "billing", ["stolen"]))
    other_route = await sim.push("/plain", "x", secret=push_secret("orders", "json-reader", KEYS))
    assert (missing.status_code, wrong.status_code, other_route.status_code) == (401, 403, 403)
    assert calls.messages == []
    assert sim.router.counters.totals["verification_failures"] == 3


async def test_verification_happens_before_the_body_is_read(router: PushRouter) -> None:
    received: list[str] = []
    headers = [(b"iron-message-id", b"m1"), (b"content-type", b"text/plain")]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        received.append("body")
        return {"type": "http.request", "body": b"x", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/plain", "headers": headers}
    await router(scope, receive, send)
    assert sent[0]["status"] == 401
    assert received == []


async def test_secret_signed_with_an_older_key_and_in_the_query_is_accepted(
    sim: PushSimulator,
) -> None:
    old = push_secret("orders", "billing", KEYS[:1])
    assert (await sim.push("/plain", "x", secret=old)).status_code == 200
    assert (await sim.push("/plain", "y", secret_in="query")).status_code == 200


async def test_router_without_the_old_key_refuses_its_secrets() -> None:
    router = PushRouter(secret_keys=KEYS[1:])
    router.add_route("/r", lambda msg: None, queue="orders", subscriber="billing")
    async with PushSimulator(router) as sim:
        old = push_secret("orders", "billing", KEYS[:1])
        assert (await sim.push("/r", "x", secret=old)).status_code == 403


async def test_headers_are_matched_case_insensitively(sim: PushSimulator, calls: Calls) -> None:
    headers = {
        "IRON-MESSAGE-ID": "m-upper",
        "iron-reservation-id": "r1",
        "Iron-Subscriber-NAME": "billing",
        "x-ironpush-secret": push_secret("orders", "billing", KEYS),
    }
    answer = await sim.http.post("/plain", content=b"x", headers=headers)
    assert answer.status_code == 200
    assert (calls.messages[0].id, calls.messages[0].reservation_id) == ("m-upper", "r1")


async def test_body_over_the_limit_is_413_by_header_and_while_streaming(calls: Calls) -> None:
    router = PushRouter(secret_keys=KEYS, body_limit=1000)
    router.add_route("/r", calls.messages.append, queue="q", subscriber="s")
    async with PushSimulator(router) as sim:
        assert (await sim.push("/r", b"a" * 1000)).status_code == 200
        assert (await sim.push("/r", b"a" * 1001)).status_code == 413
        headers, _, _ = __import__("ironpush.testing").testing.build_push(router, "/r")

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: chunked upload
            for _ in range(5):
                yield b"b" * 300

        answer = await sim.http.post("/r", content=chunks(), headers=headers)
        assert answer.status_code == 413
        assert len(calls.messages) == 1


async def test_unknown_path_is_404_and_wrong_method_405(sim: PushSimulator) -> None:
    assert (await sim.http.post("/nope")).status_code == 404
    answer = await sim.http.get("/plain")
    assert answer.status_code == 405
    assert answer.headers["allow"] == "POST"
    assert (await sim.http.post("/_health")).status_code == 405


# --- legacy ----------------------------------------------------------------------------------


async def test_legacy_push_is_parsed_and_acked_by_delete_on_its_url(
    sim: PushSimulator, calls: Calls
) -> None:
    result = await sim.push("/plain", "defer", legacy=True)
    assert result.status_code == 202
    [ack] = await sim.wait_for_acks(1)
    msg = calls.messages[0]
    assert msg.flavour == "legacy"
    assert msg.reservation_id is None
    assert msg.subscriber_name == "billing"
    assert ack.url == result.headers["Iron-Subscriber-Message-Url"]
    assert ack.reservation_id is None
