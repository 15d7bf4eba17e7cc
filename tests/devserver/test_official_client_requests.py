"""Issue 13: the exact requests the official IronMQ clients send get hosted IronMQ's answer.

Each test sends the bytes a client really sends (sources in each docstring: iron_mq_java
``Client.java``, iron_go3 ``mq/mq.go``, iron_mq_ruby ``lib/iron_mq`` and ``test/``, iron-mq 0.9
``iron_mq.py``, all at the commits the protocol reference cites) over a real socket, and
asserts the documented answer (or the dev server's documented decision, README "Dev server").
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from subscriber_servers import Subscribers
from support import wait_until

from ironpush.devserver import DevServer
from ironpush.devserver._queue_targets import NO_IRONWORKER


@pytest.fixture(scope="module")
def api(dev: DevServer) -> Iterator[httpx.Client]:
    headers = {"Authorization": "OAuth dev", "Content-Type": "application/json"}
    with httpx.Client(base_url=f"{dev.url}/3/projects/dev", headers=headers) as client:
        yield client


def q(name: str, *rest: str) -> str:
    return "/queues/" + "/".join(quote(s, safe="") for s in (name, *rest))


def push_queue(api: httpx.Client, name: str, *subscribers: dict[str, Any], **push: Any) -> None:
    push.setdefault("retries_delay", 60)  # long: tests end reservations with /_dev/expire
    body = {"queue": {"type": "multicast", "push": {"subscribers": list(subscribers), **push}}}
    r = api.put(q(name), json=body)
    assert r.status_code == 200, r.text


def statuses(api: httpx.Client, name: str, mid: str) -> list[dict[str, Any]]:
    answer: list[dict[str, Any]] = api.get(q(name, "messages", mid, "subscribers")).json()[
        "subscribers"
    ]
    return answer


# --------------------------------------------------------------------------- 1. method override


def test_java_client_deletes_and_patches_through_post_with_method_override(
    api: httpx.Client, queue_name: str
) -> None:
    """Java ``Client.singleRequest``: DELETE/PATCH go as POST + ``X-HTTP-Method-Override``."""
    java = {"User-Agent": "IronMQ Java Client"}

    def post(path: str, method: str, body: str | None) -> httpx.Response:
        headers = {**java, "X-HTTP-Method-Override": method}
        return api.post(path, content=body.encode() if body else b"", headers=headers)

    [a, b, c] = api.post(
        q(queue_name, "messages"), json={"messages": [{"body": x} for x in "abc"]}
    ).json()["ids"]
    r = post(q(queue_name), "PATCH", '{"queue":{"message_timeout":120}}')
    assert (r.status_code, r.json()["queue"]["message_timeout"]) == (200, 120)
    r = post(q(queue_name, "messages", a), "DELETE", "{}")  # gson drops the null reservation
    assert (r.status_code, r.json()) == (200, {"msg": "Deleted"})
    r = post(q(queue_name, "messages"), "DELETE", json.dumps({"ids": [{"id": b}]}))
    assert (r.status_code, r.json()) == (200, {"msg": "Deleted"})
    r = post(q(queue_name, "messages"), "DELETE", "{}")  # Queue.clear
    assert (r.status_code, r.json()) == (200, {"msg": "Cleared"})
    assert api.get(q(queue_name)).json()["queue"]["size"] == 0
    assert c  # cleared with the rest
    r = post(q(queue_name), "DELETE", None)  # Queue.destroy
    assert (r.status_code, r.json()) == (200, {"msg": "Deleted"})
    assert api.get(q(queue_name)).status_code == 404


def test_method_override_is_checked_and_only_applies_to_post(
    api: httpx.Client, queue_name: str
) -> None:
    api.put(q(queue_name), json={})
    r = api.post(q(queue_name), headers={"X-HTTP-Method-Override": "TRACE"})
    assert (r.status_code, r.json()) == (
        400,
        {"msg": "X-HTTP-Method-Override must be DELETE, PATCH or PUT"},
    )
    # A GET is a GET whatever the header says: nothing is deleted.
    r = api.get(q(queue_name), headers={"X-HTTP-Method-Override": "DELETE"})
    assert r.status_code == 200
    assert api.get(q(queue_name)).status_code == 200


# --------------------------------------------------------------------------- 2. zero timeouts


def test_go_client_zero_timeouts_mean_the_defaults(
    api: httpx.Client, dev: DevServer, queue_name: str
) -> None:
    """iron_go3 ``QueueInfo`` has no ``omitempty`` on the timeouts: unset = 0."""
    go_create = {
        "queue": {
            "name": queue_name,
            "size": 0,
            "total_messages": 0,
            "message_expiration": 0,
            "message_timeout": 0,
        }
    }
    r = api.put(q(queue_name), json=go_create)
    assert r.status_code == 200, r.text
    created = r.json()["queue"]
    assert (created["message_timeout"], created["message_expiration"]) == (60, 604800)
    api.patch(q(queue_name), json={"queue": {"message_timeout": 90}})
    r = api.patch(q(queue_name), json=go_create)  # Queue.Update with nothing set
    assert r.status_code == 200, r.text
    assert r.json()["queue"]["message_timeout"] == 90  # 0 = not given: unchanged

    api.post(q(queue_name, "messages"), json={"messages": [{"body": "go", "reserved_until": ""}]})
    before = time.time()
    r = api.post(  # LongPoll(n, timeout=0, wait=0, delete=false)
        q(queue_name, "reservations"), json={"n": 1, "timeout": 0, "wait": 0, "delete": False}
    )
    [m] = r.json()["messages"]
    held = dev.engine.state.ledger.live[m["id"]].reserved_until
    assert held is not None
    assert 90 - 5 <= held - before <= 90 + 5  # the queue's message_timeout, not 0


# --------------------------------------------------------------------------- 3 + 4. listing


def test_per_page_above_100_is_clamped_and_entries_carry_names_only(
    api: httpx.Client, queue_name: str
) -> None:
    """Go's suite lists with ``per_page=101``; Java's asserts entries have no project_id/id."""
    names = [f"{queue_name}-{i:03d}" for i in range(101)]
    for name in names:
        assert api.put(q(name), json={}).status_code == 200
    r = api.get("/queues", params={"per_page": "101", "prefix": f"{queue_name}-"})
    assert r.status_code == 200
    listed = r.json()["queues"]
    assert listed == [{"name": n} for n in names[:100]]
    rest = api.get("/queues", params={"previous": names[99], "prefix": f"{queue_name}-"})
    assert rest.json()["queues"] == [{"name": names[100]}]


def test_page_is_refused_past_the_first_page(api: httpx.Client, queue_name: str) -> None:
    api.put(q(queue_name), json={})
    assert api.get("/queues", params={"page": "0"}).status_code == 200
    r = api.get("/queues", params={"page": "1"})
    assert r.status_code == 400
    assert "previous" in r.json()["msg"]


# --------------------------------------------------------------------------- 5. duplicate names


def test_subscribers_sharing_a_name_are_kept_and_each_is_pushed(
    api: httpx.Client, dev: DevServer, subs: Subscribers, queue_name: str
) -> None:
    """Ruby ``test_post_and_instantiate`` creates two subscribers of one name, expects two."""
    one, two = subs.url(202), subs.url(202)
    push_queue(api, queue_name, {"name": "a", "url": one}, {"name": "a", "url": two})
    info = api.get(q(queue_name)).json()["queue"]["push"]["subscribers"]
    assert info == [{"name": "a", "url": one}, {"name": "a", "url": two}]

    [mid] = api.post(q(queue_name, "messages"), json={"messages": [{"body": "x"}]}).json()["ids"]
    [hit_one], [hit_two] = subs.wait_hits(one, 1), subs.wait_hits(two, 1)
    wait_until(lambda: [s["status"] for s in statuses(api, queue_name, mid)] == ["reserved"] * 2)
    # Two live reservations under one name: an ack by name alone cannot choose.
    r = api.request("DELETE", q(queue_name, "messages", mid), json={"subscriber_name": "a"})
    assert r.status_code == 400
    assert "give reservation_id" in r.json()["msg"]
    for hit in (hit_one, hit_two):
        body = {"reservation_id": hit.reservation_id, "subscriber_name": "a"}
        r = api.request("DELETE", q(queue_name, "messages", mid), json=body)
        assert (r.status_code, r.json()) == (200, {"msg": "Deleted"})
    assert [s["status"] for s in statuses(api, queue_name, mid)] == ["deleted", "deleted"]

    # Adding a subscriber updates the one of that name (documented): one "a" is left.
    r = api.post(q(queue_name, "subscribers"), json={"subscribers": [{"name": "a", "url": two}]})
    assert r.status_code == 200
    assert api.get(q(queue_name)).json()["queue"]["push"]["subscribers"] == [
        {"name": "a", "url": two}
    ]


# --------------------------------------------------------------------------- 6. alerts


def test_iron_mq_09_alert_removal_body_is_accepted(api: httpx.Client, queue_name: str) -> None:
    """iron-mq 0.9 ``remove_alerts(*ids)`` sends ``{"queue": {"alerts": ["<id>", ...]}}``."""
    alerts = [
        {"type": "fixed", "direction": "desc", "trigger": 1000, "queue": "a_q"},
        {"type": "fixed", "direction": "asc", "trigger": 10000, "queue": "a_q"},
        {"type": "progressive", "direction": "asc", "trigger": 500, "queue": "a_q"},
    ]
    api.put(q(queue_name), json={})
    api.patch(q(queue_name), json={"queue": {"alerts": alerts}})
    ids = [a["id"] for a in api.get(q(queue_name)).json()["queue"]["alerts"]]
    body = json.dumps({"queue": {"alerts": ids[:2]}}).encode()
    r = api.request("DELETE", q(queue_name, "alerts"), content=body)
    assert (r.status_code, r.json()) == (200, {"msg": "Alerts were deleted."})
    assert [a["id"] for a in api.get(q(queue_name)).json()["queue"]["alerts"]] == [ids[2]]
    # The shape of the Ruby and Java clients still works.
    r = api.request("DELETE", q(queue_name, "alerts"), json={"alerts": [{"id": ids[2]}]})
    assert (r.status_code, r.json()) == (200, {"msg": "Alerts were deleted."})
    assert "alerts" not in api.get(q(queue_name)).json()["queue"]


def test_iron_mq_09_update_alerts_put_replaces_them(api: httpx.Client, queue_name: str) -> None:
    """iron-mq 0.9 ``update_alerts`` sends ``PUT /queues/{q}`` with ``{"queue": {"alerts"}}``."""
    first = {"type": "fixed", "direction": "asc", "trigger": 5, "queue": "a_q"}
    second = {"type": "progressive", "direction": "asc", "trigger": 7, "queue": "a_q"}
    api.put(q(queue_name), json={"queue": {"alerts": [first]}})
    r = api.put(q(queue_name), json={"queue": {"alerts": [second]}})
    assert r.status_code == 200, r.text
    [alert] = api.get(q(queue_name)).json()["queue"]["alerts"]
    assert (alert["type"], alert["trigger"]) == ("progressive", 7)


# --------------------------------------------------------------------------- 7. ack by name


def test_ruby_subscriber_delete_acks_with_the_subscriber_name_alone(
    api: httpx.Client, dev: DevServer, subs: Subscribers, queue_name: str
) -> None:
    """Ruby ``test_202``: ``get_message(id).subscribers.each(&:delete)`` sends only the name."""
    url = subs.url(202)
    push_queue(api, queue_name, {"name": "name_1", "url": url})
    [mid] = api.post(q(queue_name, "messages"), json={"messages": [{"body": "x"}]}).json()["ids"]
    subs.wait_hits(url, 1)
    wait_until(lambda: statuses(api, queue_name, mid)[0]["status"] == "reserved")
    message = api.get(q(queue_name, "messages", mid)).json()["message"]
    assert "reservation_id" not in message  # v3 get-by-id shows none: the name must do

    r = api.request("DELETE", q(queue_name, "messages", mid), json={"subscriber_name": "name_1"})

    assert (r.status_code, r.json()) == (200, {"msg": "Deleted"})
    assert statuses(api, queue_name, mid)[0]["status"] == "deleted"
    again = api.request(
        "DELETE", q(queue_name, "messages", mid), json={"subscriber_name": "name_1"}
    )
    assert again.status_code == 200  # a repeated ack is harmless


def test_ack_by_name_alone_never_acks_a_reservation_that_ran_out(
    api: httpx.Client, dev: DevServer, subs: Subscribers, queue_name: str
) -> None:
    url = subs.url(202, 503)  # answers 202, then fails: the redelivery leaves no reservation
    push_queue(api, queue_name, {"name": "s", "url": url})
    [mid] = api.post(q(queue_name, "messages"), json={"messages": [{"body": "x"}]}).json()["ids"]
    dev.expire(queue_name, mid)  # the 202's reservation runs out: pushed again, answered 503
    subs.wait_hits(url, 2)
    wait_until(lambda: statuses(api, queue_name, mid)[0]["status"] == "retrying")

    r = api.request("DELETE", q(queue_name, "messages", mid), json={"subscriber_name": "s"})

    assert (r.status_code, r.json()) == (403, {"msg": "Reservation timed out"})
    assert statuses(api, queue_name, mid)[0]["status"] == "retrying"
    r = api.request("DELETE", q(queue_name, "messages", mid), json={"subscriber_name": "nobody"})
    assert r.status_code == 404


# --------------------------------------------------------------------------- 8. URL schemes


def test_ironworker_subscribers_are_stored_and_fail_with_a_clear_message(
    api: httpx.Client, queue_name: str
) -> None:
    errors = f"{queue_name}-errors"
    worker = {"name": "w", "url": "ironworker:///MyWorker"}
    push_queue(api, queue_name, worker, retries=0, error_queue=errors)
    assert api.get(q(queue_name)).json()["queue"]["push"]["subscribers"] == [worker]
    [mid] = api.post(q(queue_name, "messages"), json={"messages": [{"body": "x"}]}).json()["ids"]

    [status] = wait_until(
        lambda: (s := statuses(api, queue_name, mid)) and s[0]["status"] == "error" and s
    )

    assert (status["status_code"], status["msg"]) == (None, NO_IRONWORKER)
    report = wait_until(lambda: api.get(q(errors, "messages")).json().get("messages"))
    assert NO_IRONWORKER[:40] in report[0]["body"]


def test_ironmq_subscribers_fan_out_to_this_and_another_dev_server(
    api: httpx.Client, dev: DevServer, queue_name: str
) -> None:
    """``ironmq:///q``, ``ironmq://P:T@/q`` and ``ironmq://P:T@host:port/q`` (v3 push page)."""
    with DevServer(token="remote-token") as remote:
        subscribers = [
            {"name": "same", "url": f"ironmq:///{queue_name}-copy"},
            {"name": "other", "url": f"ironmq://elsewhere:any@/{queue_name}-copy"},
            {"name": "remote", "url": f"ironmq://far:remote-token@127.0.0.1:{remote.port}/in"},
            {"name": "refused", "url": f"ironmq://far:wrong@127.0.0.1:{remote.port}/in"},
        ]
        push_queue(api, queue_name, *subscribers, retries=0)
        [mid] = api.post(
            q(queue_name, "messages"),
            json={"messages": [{"body": "fan", "push_headers": {"X-Trace": "t1"}}]},
        ).json()["ids"]

        final = wait_until(
            lambda: (
                (s := statuses(api, queue_name, mid))
                and all(x["status"] in ("deleted", "error") for x in s)
                and s
            )
        )

        by_name = {s["name"]: (s["status"], s["status_code"]) for s in final}
        assert by_name == {
            "same": ("deleted", 200),
            "other": ("deleted", 200),
            "remote": ("deleted", 200),
            "refused": ("error", 401),
        }
        [copy] = api.get(q(f"{queue_name}-copy", "messages")).json()["messages"]
        assert (copy["body"], copy["push_headers"]) == ("fan", {"X-Trace": "t1"})
        with httpx.Client(base_url=api.base_url.join("/3/projects/elsewhere")) as other:
            other.headers.update(api.headers)
            [there] = other.get(q(f"{queue_name}-copy", "messages")).json()["messages"]
            assert there["body"] == "fan"
        auth = {"Authorization": "OAuth remote-token"}
        [arrived] = httpx.get(
            f"{remote.url}/3/projects/far/queues/in/messages", headers=auth
        ).json()["messages"]
        assert (arrived["body"], arrived["push_headers"]) == ("fan", {"X-Trace": "t1"})
    # The subscriber URLs' tokens stay out of the delivery log (the inspector and /_dev read it).
    log = json.dumps(dev.deliveries(queue=queue_name))
    assert "remote" in log
    assert "remote-token" not in log


def test_a_subscriber_may_not_push_into_its_own_queue(api: httpx.Client, queue_name: str) -> None:
    body = {
        "queue": {
            "type": "multicast",
            "push": {"subscribers": [{"name": "loop", "url": f"ironmq:///{queue_name}"}]},
        }
    }
    r = api.put(q(queue_name), json=body)
    assert r.status_code == 400
    assert "loop" in r.json()["msg"]


# --------------------------------------------------------------------------- 9. quieter ones


def test_a_missing_queue_is_a_404_before_the_body_is_looked_at(api: httpx.Client) -> None:
    missing = "never-created-queue"
    for method, rest in [
        ("PATCH", ()),
        ("POST", ("reservations",)),
        ("POST", ("messages", "1", "touch")),
        ("POST", ("messages", "1", "release")),
        ("DELETE", ("messages", "1")),
        ("DELETE", ("messages",)),
        ("POST", ("subscribers",)),
        ("PUT", ("subscribers",)),
        ("DELETE", ("subscribers",)),
        ("PUT", ("alerts",)),
        ("DELETE", ("alerts",)),
    ]:
        r = api.request(method, q(missing, *rest), content=b"{not json")
        assert (r.status_code, r.json()) == (404, {"msg": "Queue not found"}), (method, rest)


def test_ruby_per_message_timeout_on_post_is_ignored_as_v3_does(
    api: httpx.Client, queue_name: str
) -> None:
    """Ruby ``test_202`` posts ``queue.post(msg, timeout: 2)`` on v3 and expects success."""
    body = b'{"messages":[{"timeout":2,"expires_in":60,"body":"hello"}]}'
    r = api.post(q(queue_name, "messages"), content=body)
    assert r.status_code == 201, r.text
    [m] = api.post(q(queue_name, "reservations"), json={}).json()["messages"]
    assert m["body"] == "hello"


def test_ack_url_takes_the_token_from_its_own_oauth_parameter(
    subs: Subscribers, queue_name: str
) -> None:
    token = "ack-url-token-42"
    with DevServer(token=token) as dev, dev.client() as mq:
        url = subs.url(202)
        mq.create_queue(queue_name, subscribers=[{"name": "s", "url": url}], retries_delay=60)
        [mid] = mq.queue(queue_name).post("x")
        [hit] = subs.wait_hits(url, 1)
        ack = hit.headers["iron-subscriber-message-url"]
        assert token not in ack  # the pusher never hands the token to a subscriber
        wait_until(
            lambda: mq.queue(queue_name).get_message_push_statuses(mid)[0].status == "reserved"
        )
        assert httpx.delete(ack).status_code == 401
        assert httpx.delete(ack + "&oauth=wrong").status_code == 401
        r = httpx.delete(ack + f"&oauth={token}")
        assert (r.status_code, r.json()) == (200, {"msg": "Deleted"})
