"""``strict`` / ``ironpush dev --strict``: hosted IronMQ's limits, refused with a precise 400.

The same requests are accepted by a default dev server (fast tests need sub-second timings),
so each case is sent to both and the answers compared.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote

import httpx
import pytest
from dev_process import DevProcess

from ironpush.devserver import DevServer

HOOK = "http://127.0.0.1:9/never-called"


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[httpx.Client, httpx.Client]]:
    with DevServer() as relaxed, DevServer(strict=True) as strict:
        clients = [
            httpx.Client(
                base_url=f"{server.url}/3/projects/dev", headers={"Authorization": "OAuth dev"}
            )
            for server in (relaxed, strict)
        ]
        with clients[0], clients[1]:
            yield clients[0], clients[1]


def qpath(name: str, *rest: str) -> str:
    return "/queues/" + "/".join(quote(s, safe="") for s in (name, *rest))


def push_body(**push: object) -> dict[str, object]:
    return {"queue": {"type": "multicast", "push": {"subscribers": [{"url": HOOK}], **push}}}


QUEUE_CASES = [
    ({"queue": {"message_timeout": 10}}, "message_timeout must be >= 30"),
    ({"queue": {"message_timeout": 45.5}}, "message_timeout must be a whole number"),
    ({"queue": {"message_expiration": 0.5}}, "message_expiration must be a whole number"),
    (push_body(retries_delay=1), "retries_delay must be >= 3"),
    (push_body(retries_delay=0), "retries_delay must be >= 3"),
    (push_body(retries_delay=3.5), "retries_delay must be a whole number"),
]


@pytest.mark.parametrize(("body", "refusal"), QUEUE_CASES)
def test_queue_settings_below_hosted_minimums(
    servers: tuple[httpx.Client, httpx.Client], queue_name: str, body: object, refusal: str
) -> None:
    relaxed, strict = servers
    assert relaxed.put(qpath(queue_name), json=body).status_code == 200
    r = strict.put(qpath(queue_name), json=body)
    assert r.status_code == 400, r.text
    assert refusal in r.json()["msg"]
    assert "hosted IronMQ" in r.json()["msg"]
    assert strict.get(qpath(queue_name)).status_code == 404  # nothing was created


def test_hosted_values_pass_strict_mode(
    servers: tuple[httpx.Client, httpx.Client], queue_name: str
) -> None:
    _, strict = servers
    r = strict.put(qpath(queue_name), json={"queue": {"message_timeout": 30}})
    assert r.status_code == 200
    # 0 means "the default" in both modes (the Go client sends it when unset).
    r = strict.patch(qpath(queue_name), json={"queue": {"message_timeout": 0}})
    assert r.json()["queue"]["message_timeout"] == 30
    r = strict.put(qpath(queue_name + "-p"), json=push_body(retries_delay=3))
    assert r.status_code == 200


MESSAGE_CASES = [
    ("messages", {"messages": [{"body": "x", "delay": 0.5}]}, "delay must be a whole number"),
    ("reservations", {"timeout": 10}, "timeout must be >= 30"),
    ("reservations", {"timeout": 30.5}, "timeout must be a whole number"),
    ("reservations", {"wait": 0.2}, "wait must be a whole number"),
]


@pytest.mark.parametrize(("endpoint", "body", "refusal"), MESSAGE_CASES)
def test_message_timings_below_hosted_rules(
    servers: tuple[httpx.Client, httpx.Client],
    queue_name: str,
    endpoint: str,
    body: object,
    refusal: str,
) -> None:
    relaxed, strict = servers
    for client in servers:
        client.put(qpath(queue_name), json={})
    assert relaxed.post(qpath(queue_name, endpoint), json=body).status_code in (200, 201)
    r = strict.post(qpath(queue_name, endpoint), json=body)
    assert r.status_code == 400, r.text
    assert refusal in r.json()["msg"]


def test_touch_and_release_timings(
    servers: tuple[httpx.Client, httpx.Client], queue_name: str
) -> None:
    _, strict = servers
    strict.post(qpath(queue_name, "messages"), json={"messages": [{"body": "x"}]})
    [m] = strict.post(qpath(queue_name, "reservations"), json={"timeout": 30}).json()["messages"]
    rid = m["reservation_id"]
    r = strict.post(
        qpath(queue_name, "messages", m["id"], "touch"), json={"reservation_id": rid, "timeout": 5}
    )
    assert (r.status_code, "timeout must be >= 30" in r.json()["msg"]) == (400, True)
    r = strict.post(
        qpath(queue_name, "messages", m["id"], "release"),
        json={"reservation_id": rid, "delay": 1.5},
    )
    assert (r.status_code, "delay must be a whole number" in r.json()["msg"]) == (400, True)
    r = strict.post(
        qpath(queue_name, "messages", m["id"], "release"), json={"reservation_id": rid, "delay": 1}
    )
    assert r.status_code == 200


def test_message_size_is_hosted_smallest_plan_and_n_is_100(
    servers: tuple[httpx.Client, httpx.Client], queue_name: str
) -> None:
    relaxed, strict = servers
    fits, too_big = "x" * (64 * 1024), "x" * (64 * 1024 + 1)
    assert (
        strict.post(qpath(queue_name, "messages"), json={"messages": [{"body": fits}]}).status_code
        == 201
    )
    r = strict.post(qpath(queue_name, "messages"), json={"messages": [{"body": too_big}]})
    assert (r.status_code, "larger than 65536 bytes" in r.json()["msg"]) == (400, True)
    assert (
        relaxed.post(
            qpath(queue_name, "messages"), json={"messages": [{"body": too_big}]}
        ).status_code
        == 201
    )
    for client in servers:  # 100 messages per reserve in both modes
        r = client.post(qpath(queue_name, "reservations"), json={"n": 101})
        assert (r.status_code, r.json()["msg"]) == (400, "n must be 1..100, got 101")


def test_the_dev_command_takes_strict() -> None:
    dev = DevProcess("--strict", env={"IRONPUSH_DEV_TOKEN": ""}, module="ironpush.devserver")
    try:
        assert "hosted IronMQ's limits enforced (--strict)" in dev.text()
        r = httpx.put(f"{dev.url}/3/projects/dev/queues/strict", json=push_body(retries_delay=1))
        assert r.status_code == 400
        assert "retries_delay must be >= 3" in r.json()["msg"]
    finally:
        assert dev.stop() == 0
