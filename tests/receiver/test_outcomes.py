"""Each handler outcome's answer (200, 5xx, Drop), through httpx.ASGITransport."""

from __future__ import annotations

import logging
import threading

import pytest
from support import wait_until_async

from ironpush.testing import PushSimulator

from .contract import Calls

pytestmark = pytest.mark.anyio


# --- 200 ---------------------------------------------------------------------------------


async def test_none_answers_200_and_the_handler_sees_the_push(
    sim: PushSimulator, calls: Calls
) -> None:
    result = await sim.push("/plain", "hello", headers={"X-Custom": "v"})
    assert result.status_code == 200
    assert result.response.content == b""  # the status says it all (issue 12: an empty 200)
    [msg] = calls.messages
    assert (msg.id, msg.body, msg.text, msg.queue) == (
        result.message_id,
        b"hello",
        "hello",
        "orders",
    )
    assert msg.subscriber_name == "billing"
    assert msg.reservation_id == result.reservation_id
    assert msg.flavour == "v3"
    assert msg.attempt == 1
    assert msg.headers["x-custom"] == "v"
    assert msg.headers["X-CUSTOM"] == "v"
    assert "x-ironpush-secret" not in msg.headers  # handlers never see the push secret
    assert sim.acks == []  # a 200 is the ack


async def test_ack_answers_200(sim: PushSimulator) -> None:
    assert (await sim.push("/plain", "ack")).status_code == 200


async def test_sync_handler_runs_in_a_worker_thread_and_gets_parsed_json(
    sim: PushSimulator, calls: Calls
) -> None:
    result = await sim.push("/json", {"id": 7})
    assert result.status_code == 200
    assert calls.messages[0].json() == {"id": 7}
    assert calls.threads[0] != threading.current_thread().name


async def test_redelivery_of_a_handled_message_answers_200_without_the_handler(
    sim: PushSimulator, calls: Calls
) -> None:
    first = await sim.push("/plain", "ack")
    again = await sim.redeliver(first)
    assert (again.status_code, again.json()) == (200, {"status": "duplicate"})
    assert len(calls.messages) == 1
    assert sim.router.counters.totals["duplicates"] == 1


async def test_same_message_for_another_subscriber_is_not_a_duplicate(
    sim: PushSimulator, calls: Calls
) -> None:
    first = await sim.push("/plain", "ack")
    other = await sim.push("/json", "{}", message_id=first.message_id)
    assert other.status_code == 200
    assert len(calls.messages) == 2


# --- 5xx ---------------------------------------------------------------------------------


async def test_retry_answers_503_and_the_redelivery_runs_the_handler_again(
    sim: PushSimulator, calls: Calls
) -> None:
    first = await sim.push("/plain", "retry")
    assert first.status_code == 503
    again = await sim.redeliver(first, body="ack")
    assert again.status_code == 200
    assert [m.attempt for m in calls.messages] == [1, 2]


async def test_exception_answers_500_without_traceback_and_is_logged(
    sim: PushSimulator, calls: Calls, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="ironpush"):
        first = await sim.push("/plain", "raise")
    assert first.status_code == 500
    assert "secret internal detail" not in first.response.text
    assert "Traceback" not in first.response.text
    assert any("secret internal detail" in (r.exc_text or "") for r in caplog.records)
    again = await sim.redeliver(first, body="ack")
    assert again.status_code == 200
    assert len(calls.messages) == 2


async def test_unknown_handler_result_is_an_error(sim: PushSimulator) -> None:
    assert (await sim.push("/plain", "bad")).status_code == 500


# --- Drop ----------------------------------------------------------------------------------


async def test_drop_answers_200_counts_and_posts_to_the_dead_letter_queue(
    sim: PushSimulator, calls: Calls
) -> None:
    result = await sim.push("/plain", "drop")
    assert (result.status_code, result.json()) == (200, {"status": "dropped"})
    await wait_until_async(lambda: len(sim.posts) == 1)
    [post] = sim.posts
    assert post.queue == "dead"
    assert f'"source_msg_id": "{result.message_id}"' in post.body
    assert "poison" in post.body
    assert sim.router.counters.totals["dropped"] == 1
    again = await sim.redeliver(result)
    assert again.json() == {"status": "duplicate"}
    assert len(calls.messages) == 1
