"""The receiver contract (DESIGN.md), row by row, through httpx.ASGITransport."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from support import wait_until_async

from ironpush._errors import ConfigError
from ironpush._protocol import Delivery
from ironpush._signing import load_ack_token, push_secret
from ironpush.receiver._outcomes import Ack, Defer, Drop, PushMessage, Retry
from ironpush.receiver._router import PushRouter
from ironpush.receiver.stores import MemoryStore
from ironpush.testing import PushSimulator

pytestmark = pytest.mark.anyio
KEYS = ["key-old", "key-new"]


class Calls:
    """What the handlers saw."""

    def __init__(self) -> None:
        self.messages: list[PushMessage] = []
        self.jobs: list[str] = []
        self.threads: list[str] = []


@pytest.fixture
def calls() -> Calls:
    return Calls()


@pytest.fixture
def router(calls: Calls) -> PushRouter:
    router = PushRouter(secret_keys=KEYS, dead_letter_queue="dead")

    @router.route("/plain", queue="orders", subscriber="billing")
    async def plain(msg: PushMessage) -> Any:
        calls.messages.append(msg)
        action = msg.text
        if action == "ack":
            return Ack()
        if action == "retry":
            return Retry("not now")
        if action == "raise":
            raise RuntimeError("secret internal detail")
        if action == "drop":
            return Drop("poison")
        if action == "external":
            return Defer()
        if action == "defer":
            return Defer(job, msg.id)
        if action == "bad":
            return 42
        return None

    def job(message_id: str) -> None:
        calls.jobs.append(message_id)

    @router.route("/json", queue="orders", subscriber="json-reader", json=True)
    def sync_json(msg: PushMessage) -> None:
        calls.messages.append(msg)
        calls.threads.append(threading.current_thread().name)

    return router


@pytest.fixture
async def sim(router: PushRouter) -> AsyncIterator[PushSimulator]:
    async with PushSimulator(router) as sim:
        yield sim


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


# --- 202 -----------------------------------------------------------------------------------


async def test_defer_answers_202_runs_the_job_and_acks_its_reservation(
    sim: PushSimulator, calls: Calls
) -> None:
    result = await sim.push("/plain", "defer")
    assert (result.status_code, result.json()) == (202, {"status": "deferred"})
    [ack] = await sim.wait_for_acks(1)
    assert calls.jobs == [result.message_id]
    assert (ack.queue, ack.message_id) == ("orders", result.message_id)
    assert (ack.reservation_id, ack.subscriber_name) == (result.reservation_id, "billing")
    assert sim.router.counters.totals["deferred"] == 1
    await wait_until_async(lambda: sim.router.counters.totals["acked"] == 1)


async def test_redelivery_during_a_deferred_job_answers_202_and_the_ack_uses_the_newest(
    calls: Calls,
) -> None:
    router = PushRouter(secret_keys=KEYS)
    release = anyio.Event()

    @router.route("/slow", queue="q", subscriber="s")
    async def slow(msg: PushMessage) -> Defer:
        calls.messages.append(msg)
        return Defer(job)

    async def job() -> None:
        calls.jobs.append("started")
        await release.wait()

    async with PushSimulator(router) as sim:
        first = await sim.push("/slow", "x")
        assert first.status_code == 202
        await wait_until_async(lambda: calls.jobs == ["started"])
        second = await sim.redeliver(first)
        third = await sim.redeliver(first)
        assert (second.status_code, third.status_code) == (202, 202)
        assert third.json() == {"status": "in_progress"}
        release.set()
        [ack] = await sim.wait_for_acks(1)
        assert ack.reservation_id == third.reservation_id != first.reservation_id
        assert len(calls.messages) == 1
        assert calls.jobs == ["started"]
        done = await sim.redeliver(first)
        assert done.json() == {"status": "duplicate"}


async def test_redelivery_while_the_first_handler_still_runs_does_not_run_it_twice(
    calls: Calls,
) -> None:
    router = PushRouter(secret_keys=KEYS)
    release = threading.Event()

    @router.route("/slow", queue="q", subscriber="s")
    def slow(msg: PushMessage) -> None:  # e.g. the pusher timed out after 10 s
        calls.messages.append(msg)
        release.wait(10)

    async with PushSimulator(router) as sim, anyio.create_task_group() as tg:
        results: list[Any] = []

        async def first_push() -> None:
            results.append(await sim.push("/slow", "x", message_id="m-1"))

        tg.start_soon(first_push)
        await wait_until_async(lambda: len(calls.messages) == 1)
        second = await sim.push("/slow", "x", message_id="m-1")
        assert (second.status_code, second.json()) == (202, {"status": "in_progress"})
        release.set()
        [ack] = await sim.wait_for_acks(1)
        # the first answer went to a pusher that gave up: the newest reservation is acked
        assert ack.reservation_id == second.reservation_id
        await wait_until_async(lambda: len(results) == 1)
        assert results[0].status_code == 200
        assert len(calls.messages) == 1


async def test_failed_job_is_not_acked_and_the_redelivery_runs_again(calls: Calls) -> None:
    router = PushRouter(secret_keys=KEYS)

    @router.route("/flaky", queue="q", subscriber="s")
    async def flaky(msg: PushMessage) -> Defer:
        calls.messages.append(msg)
        return Defer(job, msg.attempt)

    async def job(attempt: int) -> None:
        calls.jobs.append(f"attempt {attempt}")
        if attempt == 1:
            raise RuntimeError("job failed")

    async with PushSimulator(router) as sim:
        first = await sim.push("/flaky", "x")
        await wait_until_async(lambda: router.counters.totals["jobs_failed"] == 1)
        assert sim.acks == []
        second = await sim.redeliver(first)
        assert second.status_code == 202
        [ack] = await sim.wait_for_acks(1)
        assert ack.reservation_id == second.reservation_id
        assert calls.jobs == ["attempt 1", "attempt 2"]


async def test_late_ack_is_counted_and_not_retried(calls: Calls) -> None:
    router = PushRouter(secret_keys=KEYS)

    @router.route("/late", queue="q", subscriber="s")
    async def late(msg: PushMessage) -> Defer:
        return Defer(calls.jobs.append, "ran")

    async with PushSimulator(router, ack_status=403) as sim:
        await sim.push("/late", "x")
        await wait_until_async(lambda: router.counters.totals["late_acks"] == 1)
        assert len(sim.acks) == 1
        assert await router.store.depth() == 0


async def test_deferred_capacity_full_answers_503(calls: Calls) -> None:
    router = PushRouter(secret_keys=KEYS, max_deferred=1)
    release = anyio.Event()

    @router.route("/busy", queue="q", subscriber="s")
    async def busy(msg: PushMessage) -> Defer:
        calls.messages.append(msg)
        return Defer(release.wait)

    async with PushSimulator(router) as sim:
        assert (await sim.push("/busy", "1")).status_code == 202
        full = await sim.push("/busy", "2")
        assert (full.status_code, full.json()) == (503, {"status": "busy"})
        release.set()
        await sim.wait_for_acks(1)
        # the refused message was not recorded as handled: its redelivery runs
        assert (await sim.redeliver(full)).status_code == 202
        await sim.wait_for_acks(2)


async def test_external_defer_then_ack_endpoint_uses_the_newest_reservation(
    sim: PushSimulator, calls: Calls
) -> None:
    first = await sim.push("/plain", "external")
    assert first.status_code == 202
    token = calls.messages[0].ack_token
    assert load_ack_token(token, KEYS)[1].reservation_id == first.reservation_id
    second = await sim.redeliver(first)  # the worker is slow: IronMQ pushed again
    assert second.json() == {"status": "in_progress"}
    assert len(calls.messages) == 1
    answer = await sim.http.post("/_ack", content=token)
    assert (answer.status_code, answer.json()) == (200, {"status": "acked"})
    [ack] = sim.acks
    assert ack.reservation_id == second.reservation_id
    assert (await sim.redeliver(first)).json() == {"status": "duplicate"}


async def test_ack_endpoint_accepts_json_and_reports_late_acks(calls: Calls) -> None:
    router = PushRouter(secret_keys=KEYS)

    @router.route("/ext", queue="q", subscriber="s")
    async def ext(msg: PushMessage) -> Defer:
        calls.messages.append(msg)
        return Defer()

    async with PushSimulator(router, ack_status=404) as sim:
        await sim.push("/ext", "x")
        answer = await sim.http.post("/_ack", json={"token": calls.messages[0].ack_token})
        assert answer.json() == {"status": "late"}
        assert router.counters.totals["late_acks"] == 1


async def test_ack_endpoint_refuses_bad_tokens(sim: PushSimulator) -> None:
    answer = await sim.http.post("/_ack", content=b"forged.token.value")
    assert answer.status_code == 403
    assert sim.acks == []
    secret = push_secret("orders", "billing", KEYS)  # a push secret is not an ack token
    assert (await sim.http.post("/_ack", content=secret)).status_code == 403


async def test_release_endpoint_lets_the_next_push_run_the_handler(
    sim: PushSimulator, calls: Calls
) -> None:
    first = await sim.push("/plain", "external")
    answer = await sim.http.post("/_release", content=calls.messages[0].ack_token)
    assert answer.json() == {"status": "released"}
    again = await sim.redeliver(first, body="ack")
    assert again.status_code == 200
    assert [m.attempt for m in calls.messages] == [1, 2]


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


# --- configuration -----------------------------------------------------------------------------


def test_router_without_keys_refuses_to_build(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IRONPUSH_SECRET_KEYS", raising=False)
    with pytest.raises(ConfigError, match="secret"):
        PushRouter()


def test_keys_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IRONPUSH_SECRET_KEYS", "env-old,env-new")
    assert PushRouter().keys == ("env-old", "env-new")


async def test_verify_false_accepts_unsigned_pushes_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("IRONPUSH_SECRET_KEYS", raising=False)
    with caplog.at_level(logging.WARNING, logger="ironpush.receiver"):
        router = PushRouter(verify=False)
    assert "NOT verified" in caplog.text
    seen: list[PushMessage] = []
    router.add_route("/r", seen.append, queue="q", subscriber="s")
    async with PushSimulator(router) as sim:
        assert (await sim.push("/r", "x")).status_code == 200
    with pytest.raises(ConfigError):
        _ = seen[0].ack_token


def test_route_declaration_errors() -> None:
    router = PushRouter(secret_keys=KEYS)
    router.add_route("/a", print, queue="q", subscriber="s")
    for path in ("no-slash", "/_health", "/_mine"):
        with pytest.raises(ValueError, match="must start"):
            router.add_route(path, print, queue="q2", subscriber="s")
    with pytest.raises(ValueError, match="already"):
        router.add_route("/a/", print, queue="q2", subscriber="s")
    with pytest.raises(ValueError, match="already has a route"):
        router.add_route("/b", print, queue="q", subscriber="s")
    with pytest.raises(ValueError, match="push_type"):
        router.add_route("/c", print, queue="q3", subscriber="s", push_type="pull")


def test_subscriptions_carry_the_secret_and_push_settings() -> None:
    router = PushRouter(secret_keys=KEYS)

    @router.route("/orders", queue="orders", subscriber="billing", retries=5, retries_delay=30)
    async def orders(msg: PushMessage) -> None: ...

    [sub] = router.subscriptions("https://api.example.com/ironmq/")
    assert sub.queue == "orders"
    assert sub.subscriber.name == "billing"
    assert sub.subscriber.url == "https://api.example.com/ironmq/orders"
    secret = sub.subscriber.headers["X-Ironpush-Secret"]
    assert secret == push_secret("orders", "billing", KEYS)
    assert secret not in repr(sub)
    assert sub.push_settings == {"retries": 5, "retries_delay": 30}
    [query] = router.subscriptions("https://h/ironmq", secret_in="query")
    assert query.subscriber.url.startswith("https://h/ironmq/orders?ironpush_secret=")
    assert query.subscriber.headers == {}


# --- observability -----------------------------------------------------------------------------


async def test_one_log_line_per_delivery_without_secrets(
    sim: PushSimulator, calls: Calls, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="ironpush.receiver"):
        result = await sim.push("/plain", "external")
        await sim.redeliver(result)
    lines = [r for r in caplog.records if r.getMessage().startswith("push ")]
    assert len(lines) == 2
    assert lines[0].__dict__["outcome"] == "deferred"
    assert lines[1].__dict__["outcome"] == "in_progress"
    assert result.message_id in lines[0].getMessage()
    assert "queue=orders" in lines[0].getMessage()
    secret = push_secret("orders", "billing", KEYS)
    assert secret not in caplog.text
    assert calls.messages[0].ack_token not in caplog.text
    assert secret not in repr(sim.router)
    assert secret not in repr(calls.messages[0])


async def test_health_endpoint_reports_counters_and_gauges(sim: PushSimulator) -> None:
    await sim.push("/plain", "ack")
    await sim.push("/plain", "x", secret=None)
    health = (await sim.http.get("/_health")).json()
    assert health["status"] == "ok"
    assert health["routes"] == 2
    assert health["counters"]["received"] == 2
    assert health["counters"]["acked"] == 1
    assert health["counters"]["verification_failures"] == 1
    assert health["outbox_depth"] == 0
    assert health["inflight_jobs"] == 0


async def test_metrics_endpoint_serves_prometheus_text(sim: PushSimulator) -> None:
    await sim.push("/plain", "drop")
    answer = await sim.http.get("/_metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    assert "ironpush_dropped_total 1.0" in answer.text
    assert 'ironpush_pushes_total{outcome="dropped",queue="orders",subscriber="billing"} 1.0' in (
        answer.text
    )


async def test_metrics_without_prometheus_client_gives_a_pip_hint(
    sim: PushSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(__import__("sys").modules, "prometheus_client", None)
    answer = await sim.http.get("/_metrics")
    assert answer.status_code == 501
    assert "pip install 'ironpush[metrics]'" in answer.text


# --- lifecycle ----------------------------------------------------------------------------------


async def test_shutdown_waits_for_jobs_then_refuses_new_deferred_work(calls: Calls) -> None:
    router = PushRouter(secret_keys=KEYS, shutdown_grace=5)

    @router.route("/d", queue="q", subscriber="s")
    async def deferring(msg: PushMessage) -> Defer:
        return Defer(job)

    async def job() -> None:
        await anyio.sleep(0.05)
        calls.jobs.append("finished")

    async with PushSimulator(router) as sim:
        assert (await sim.push("/d", "x")).status_code == 202
        await router.shutdown()  # graceful: the running job finishes and is acked
        assert calls.jobs == ["finished"]
        assert len(sim.acks) == 1
        refused = await sim.push("/d", "y")
        assert refused.status_code == 503
        assert (await sim.http.get("/_health")).json()["status"] == "draining"


async def test_shutdown_cancels_jobs_past_the_grace_and_releases_them(calls: Calls) -> None:
    store = MemoryStore()
    router = PushRouter(secret_keys=KEYS, store=store, shutdown_grace=0.05)

    @router.route("/d", queue="q", subscriber="s")
    async def deferring(msg: PushMessage) -> Defer:
        return Defer(anyio.sleep, 60)

    async with PushSimulator(router) as sim:
        first = await sim.push("/d", "x")
        await router.shutdown()
        assert sim.acks == []
        claim = await store.claim((first.message_id, "s"), Delivery("d"), lease=30, ttl=60)
        assert claim.status == "new"
        assert claim.attempt == 2


async def test_expired_claim_of_a_crashed_process_is_taken_over(calls: Calls) -> None:
    now = [1000.0]
    store = MemoryStore(clock=lambda: now[0])
    router = PushRouter(secret_keys=KEYS, store=store, claim_lease=30)
    router.add_route("/r", calls.messages.append, queue="q", subscriber="s")
    await store.claim(("m-crash", "s"), Delivery("m-crash"), lease=30, ttl=600)  # a crash
    async with PushSimulator(router) as sim:
        blocked = await sim.push("/r", "x", message_id="m-crash")
        assert blocked.status_code == 202
        assert calls.messages == []
        now[0] += 31
        taken = await sim.push("/r", "x", message_id="m-crash")
        assert taken.status_code == 200
        assert calls.messages[0].attempt == 2


async def test_dedupe_off_runs_every_push(calls: Calls) -> None:
    router = PushRouter(secret_keys=KEYS, dedupe=False)
    router.add_route("/r", calls.messages.append, queue="q", subscriber="s")
    async with PushSimulator(router) as sim:
        first = await sim.push("/r", "x")
        await sim.redeliver(first)
    assert len(calls.messages) == 2


async def test_lifespan_protocol_when_run_alone(router: PushRouter) -> None:
    messages = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[str] = []

    async def receive() -> dict[str, str]:
        return messages.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message["type"])

    await router({"type": "lifespan"}, receive, send)
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


async def test_metrics_collector_registers_in_a_user_registry(sim: PushSimulator) -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    await sim.push("/plain", "ack")
    registry = CollectorRegistry()
    registry.register(sim.router.metrics_collector())
    text = generate_latest(registry).decode()
    assert "ironpush_acked_total 1.0" in text
    assert "ironpush_outbox_depth 0.0" in text
