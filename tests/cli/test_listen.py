"""``ironpush listen --app``: real processes end to end.

One dev server per module; its push queues each have a *production* subscriber (a real HTTP
server answering 200). A real local service (:mod:`listen_service` under uvicorn, configured
for the dev server and nothing else) and ``ironpush listen --app`` (a subprocess) run for the
whole module. Every message posted must reach production exactly once *and* the local
service through the listener.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from devserver.subscriber_servers import Subscribers
from listen_kit import Listener, Service, dev, finished, listen_env, make_push_queue, mq, subs
from listen_routes import QUEUES, SUBSCRIBER
from support import wait_until

from ironpush.client import IronMQ
from ironpush.devserver import DevServer

FAST = {"retries": 2, "retries_delay": 0.2}  # failing pushes: three tries in well under 1 s
PATIENT = {"retries": 2, "retries_delay": 60}  # 202s: the ack has a minute to arrive

__all__ = ["dev", "mq", "subs"]  # fixtures


@pytest.fixture(scope="module")
def production(subs: Subscribers) -> Subscribers:
    """The production subscribers: the kit's module-wide servers."""
    return subs


@pytest.fixture(scope="module")
def prod_urls(mq: IronMQ, production: Subscribers) -> dict[str, str]:
    urls = {}
    for path, queue in QUEUES.items():
        urls[queue] = production.url(200)
        settings = FAST if path == "/failing" else PATIENT
        make_push_queue(mq, queue, urls[queue], error_queue=f"{queue}-errors", **settings)
    return urls


@pytest.fixture(scope="module")
def env(dev: DevServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return listen_env(dev, tmp_path_factory.mktemp("listen-home"))


@pytest.fixture(scope="module")
def service(env: dict[str, str], prod_urls: dict[str, str]) -> Iterator[Service]:
    svc = Service(env)
    yield svc
    svc.stop()


@pytest.fixture(scope="module")
def listener(service: Service, env: dict[str, str]) -> Iterator[Listener]:
    args = ["--app", "listen_service:router", "--forward-to", service.url + "/ironmq"]
    # One message at a time per queue (the lost-reservation test needs it), a short relay
    # reservation (touched while held), and failed reports posted to the error queue.
    args += ["--max-in-flight", "1", "--reservation", "3", "--error-queue"]
    proc = Listener(*args, env=env)
    yield proc
    assert proc.interrupt() == 0, proc.err[-20:]


POSTED: list[str] = []


def post(mq: IronMQ, route: str, body: str, **push_headers: str) -> str:
    POSTED.append(body)
    message: dict[str, Any] = {"body": body}
    if push_headers:
        message["push_headers"] = push_headers
    [message_id] = mq.queue(QUEUES[route]).post(message)
    return message_id


def relayed_post(mq: IronMQ, service: Service, route: str, body: str) -> str:
    """Post ``body`` to ``route``'s queue; the id of the relayed copy the service got."""
    post(mq, route, body)
    return relayed_id(service, body)


def relayed_id(service: Service, body: str) -> str:
    found: str = wait_until(lambda: service.state()["ids"].get(body), 20, f"{body} to arrive")
    return found


def relay_size(mq: IronMQ, listener: Listener, route: str) -> int:
    return mq.queue(listener.relay_queue(QUEUES[route])).info().size or 0


def test_a_quick_200_deletes_the_relayed_copy_and_production_gets_the_original(
    mq: IronMQ, listener: Listener, service: Service, production: Subscribers, prod_urls: Any
) -> None:
    original = post(mq, "/quick", "q1", **{"X-Trace": "t-1"})
    relayed = relayed_id(service, "q1")
    push = listener.wait_event("push", lambda e: e["message_id"] == relayed)
    assert (push["queue"], push["status"], push["result"]) == ("listen-quick", 200, "deleted")
    assert (push["try"], push["tries"], push["subscriber"]) == (1, 3, SUBSCRIBER)
    assert push["latency_ms"] >= 0
    assert service.calls("/quick") == ["q1"]
    [hit] = production.wait_hits(prod_urls["listen-quick"], 1)
    assert hit.body == b"q1"
    assert hit.headers["iron-message-id"] == original
    # What the service received: IronMQ's pusher headers, the relayed queue's ids.
    seen = service.state()["headers"]["q1"]
    assert relayed != original
    assert seen["iron-message-id"] == relayed
    assert seen["iron-subscriber-name"] == SUBSCRIBER
    assert seen["user-agent"] == "IronMQ Pusherd"
    assert seen["content-type"] == "text/plain; encoding=utf-8"
    assert seen["x-trace"] == "t-1"  # the message's push headers travel with it
    ack_base = listener.ready["ack_url"]
    assert seen["iron-subscriber-message-url"].startswith(ack_base + "/3/projects/")
    assert "x-ironpush-secret" not in seen  # verified by the router, hidden from handlers
    [relay] = [r for r in listener.ready["relays"] if r["queue"] == "listen-quick"]
    assert relay["headers"]["X-Ironpush-Secret"].endswith("***")  # masked in the output
    assert set(push) == {"event", "at", "text", "queue", "message_id", "subscriber", "url"} | {
        "try",
        "tries",
        "status",
        "latency_ms",
        "error",
        "result",
    }
    wait_until(lambda: relay_size(mq, listener, "/quick") == 0, 10, "the relay queue to empty")


def test_a_defer_job_is_acknowledged_through_the_listener(
    mq: IronMQ, listener: Listener, service: Service, production: Subscribers, prod_urls: Any
) -> None:
    relayed = relayed_post(mq, service, "/defer", "d1")
    push = listener.wait_event("push", lambda e: e["message_id"] == relayed)
    assert (push["status"], push["result"]) == (202, "deferred")
    ack = listener.wait_event("ack", lambda e: e["message_id"] == relayed)
    assert (ack["queue"], ack["subscriber"], ack["result"]) == ("listen-defer", SUBSCRIBER, "acked")
    assert service.state()["jobs"] == ["d1"]
    assert relay_size(mq, listener, "/defer") == 0
    assert len(listener.pushes("listen-defer", relayed)) == 1  # acked before any new try
    [hit] = production.wait_hits(prod_urls["listen-defer"], 1)
    assert hit.body == b"d1"


def test_an_external_worker_acks_with_its_token_through_the_routers_ack_endpoint(
    mq: IronMQ, listener: Listener, service: Service
) -> None:
    relayed = relayed_post(mq, service, "/worker", "w1")
    listener.wait_event("push", lambda e: e["message_id"] == relayed and e["status"] == 202)
    assert listener.events("ack") == [
        e for e in listener.events("ack") if e["message_id"] != relayed
    ]
    token = service.state()["tokens"]["w1"]
    answer = httpx.post(service.url + "/ironmq/_ack", content=token)
    assert (answer.status_code, answer.json()["status"]) == (200, "acked")
    listener.wait_event("ack", lambda e: e["message_id"] == relayed)
    assert relay_size(mq, listener, "/worker") == 0
    again = httpx.post(service.url + "/ironmq/_ack", content=token)
    assert again.json()["status"] == "done"  # a second ack sends nothing


def test_a_202_outliving_the_relay_reservation_is_kept_alive_until_the_ack(
    mq: IronMQ, listener: Listener, service: Service
) -> None:
    """The module's listener reserves for 3 s: a job acked later than that is still settled,
    because the relay reservation is touched meanwhile, and the ack deletes with the newest."""
    relayed = relayed_post(mq, service, "/worker", "w-slow")
    first = listener.wait_event("touch", lambda e: e["message_id"] == relayed)
    listener.wait_event("touch", lambda e: e["message_id"] == relayed and e != first)
    token = service.state()["tokens"]["w-slow"]
    assert httpx.post(service.url + "/ironmq/_ack", content=token).json()["status"] == "acked"
    listener.wait_event("ack", lambda e: e["message_id"] == relayed)
    assert len(listener.pushes("listen-worker", relayed)) == 1  # never pushed again
    assert relayed not in [e["message_id"] for e in listener.events("lost")]
    assert relay_size(mq, listener, "/worker") == 0


def test_a_failing_handler_is_retried_then_reported_to_the_error_queue(
    mq: IronMQ, listener: Listener, service: Service, production: Subscribers, prod_urls: Any
) -> None:
    relayed = relayed_post(mq, service, "/failing", "f1")
    failed = listener.wait_event("failed", lambda e: e["message_id"] == relayed)
    pushes = listener.pushes("listen-failing", relayed)
    assert [(p["try"], p["status"]) for p in pushes] == [(1, 500), (2, 500), (3, 500)]
    assert [p["result"] for p in pushes] == ["retrying", "retrying", "failed"]
    assert service.calls("/failing") == ["f1", "f1", "f1"]
    assert failed["posted_to"] == "listen-failing-errors"
    reports = [json.loads(m.body) for m in mq.queue("listen-failing-errors").peek(max=100)]
    [report] = [r for r in reports if r.get("source_msg_id") == relayed]
    assert report["body"] == "f1"
    [sub] = report["subscribers"]
    assert sub["code"] == 500
    assert sub["name"].startswith("listen-")  # the listener's, never production's name
    assert report["relay_queue"] == listener.relay_queue("listen-failing")
    assert relay_size(mq, listener, "/failing") == 0
    [hit] = production.wait_hits(prod_urls["listen-failing"], 1)  # production: once, 200
    assert hit.body == b"f1"


def test_a_redelivery_after_a_lost_reservation_is_answered_from_the_store(
    mq: IronMQ, dev: DevServer, listener: Listener, service: Service
) -> None:
    """The handler runs while the relay's reservation runs out (as when a laptop sleeps):
    its 200 cannot delete the relayed copy, IronMQ hands it out again, and the service answers
    the second push from its dedupe store without running the handler again."""
    relayed = relayed_post(mq, service, "/gated", "g1")  # the handler started and waits
    relay = listener.relay_queue("listen-gated")
    dev.expire(relay, relayed)  # the relay's reservation ends now
    httpx.post(service.url + "/gate")  # the handler finishes: 200, too late to delete
    pushes = wait_until(
        lambda: len(ps := listener.pushes("listen-gated", relayed)) >= 2 and ps, 20, "two pushes"
    )
    first, second = pushes[:2]
    assert (first["try"], first["status"], first["result"]) == (1, 200, "lost")
    assert (second["try"], second["status"], second["result"]) == (2, 200, "deleted")
    assert service.calls("/gated") == ["g1"]  # the handler ran once
    assert [e["message_id"] for e in listener.events("lost")] == [relayed]
    wait_until(lambda: relay_size(mq, listener, "/gated") == 0, 10, "the relay queue to empty")


def test_the_ack_endpoint_refuses_unknown_messages_and_stale_reservations(
    listener: Listener,
) -> None:
    base = listener.ready["ack_url"]
    relay = listener.relay_queue("listen-quick")
    url = f"{base}/3/projects/p/queues/{relay}/messages/123/subscribers/{SUBSCRIBER}"
    answer = httpx.delete(url, params={"reservation_id": "nope"})
    assert (answer.status_code, answer.json()) == (404, {"msg": "Message not found"})
    assert httpx.post(url).status_code == 405


def test_production_received_every_message_exactly_once(
    production: Subscribers, prod_urls: dict[str, str], service: Service
) -> None:
    for queue, url in prod_urls.items():
        bodies = [h.body.decode() for h in production.at(url)]
        assert len(bodies) == len(set(bodies)), (queue, bodies)
    received = sorted(h.body.decode() for url in prod_urls.values() for h in production.at(url))
    assert received == sorted(POSTED)


def test_subscribe_apps_stale_scan_reports_listeners_apart_from_stale_routes(
    listener: Listener, env: dict[str, str]
) -> None:
    base = "http://127.0.0.1:9/ironmq"
    args = ["subscribe", "--app", "listen_service:router", "--base-url", base, "--dry-run"]
    proc = finished(env, *args, "--json")
    assert proc.proc.returncode == 0, proc.err
    report = json.loads("\n".join(proc.out))
    assert report["stale"] == []
    found = {(x["queue"], x["subscriber"]["url"]) for x in report["listeners"]}
    relays = {(r["queue"], r["listener"]["url"]) for r in listener.ready["relays"]}
    assert found == relays
    text = finished(env, *args)
    assert any(line.startswith("listener: listen-") for line in text.out)
