"""The dev server's v3 API through the real client (and raw HTTP for malformed input)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any, TypeVar
from urllib.parse import quote

import anyio
import httpx
import pytest
from support import wait_until

from ironpush._errors import BadRequest, NotFound, ReservationExpired, Unauthorized
from ironpush.client import IronMQ
from ironpush.client._models import Alert
from ironpush.devserver import DevServer

T = TypeVar("T")
HOOK = "http://127.0.0.1:9/never-called"  # subscribers that are never pushed to in these tests


@pytest.fixture(scope="module")
def dev() -> Iterator[DevServer]:
    with DevServer() as server:
        yield server


@pytest.fixture(scope="module")
def mq(dev: DevServer) -> Iterator[IronMQ]:
    with dev.client() as client:
        yield client


@pytest.fixture(scope="module")
def raw(dev: DevServer) -> Iterator[httpx.Client]:
    base = f"{dev.url}/3/projects/dev"
    with httpx.Client(base_url=base, headers={"Authorization": "OAuth dev"}) as client:
        yield client


def qpath(name: str, *rest: str) -> str:
    return "/queues/" + "/".join(quote(s, safe="") for s in (name, *rest))


# --------------------------------------------------------------------------- queues


def test_create_get_update_delete_a_pull_queue(mq: IronMQ, queue_name: str) -> None:
    info = mq.create_queue(queue_name, message_timeout=30, message_expiration=3600)
    assert (info.name, info.type, info.message_timeout, info.message_expiration) == (
        queue_name,
        "pull",
        30,
        3600,
    )
    assert info.size is None  # create answers without size/total_messages
    info = mq.update_queue(queue_name, message_timeout=45)
    assert (info.message_timeout, info.size, info.total_messages) == (45, 0, 0)
    assert mq.queue(queue_name).info().project_id == "dev"
    mq.delete_queue(queue_name)
    with pytest.raises(NotFound, match="Queue not found"):
        mq.queue(queue_name).info()


def test_push_queue_settings_round_trip(mq: IronMQ, queue_name: str) -> None:
    subs = [{"name": "a", "url": HOOK, "headers": {"X-Secret": "1"}}, {"name": "b", "url": HOOK}]
    info = mq.create_queue(
        queue_name, type="unicast", subscribers=subs, retries=7, retries_delay=0.5, error_queue="e"
    )
    assert info.type == "unicast"
    assert info.is_push
    assert info.push is not None
    assert (info.push.retries, info.push.retries_delay, info.push.error_queue) == (7, 0.5, "e")
    assert [(s.name, dict(s.headers)) for s in info.subscribers] == [
        ("a", {"X-Secret": "1"}),
        ("b", {}),
    ]
    info = mq.update_queue(queue_name, retries=2, error_queue="")
    assert info.push is not None
    assert (info.push.retries, info.push.error_queue) == (2, "")


def test_v3_queue_type_rules(mq: IronMQ, raw: httpx.Client, queue_name: str) -> None:
    mq.create_queue(queue_name)
    r = raw.patch(qpath(queue_name), json={"queue": {"type": "multicast"}})
    assert r.status_code == 400
    assert "type cannot be changed" in r.json()["msg"]
    with pytest.raises(BadRequest, match="pull queue"):
        mq.update_queue(queue_name, subscribers=[HOOK])
    with pytest.raises(BadRequest, match="pull queue"):
        mq.queue(queue_name).add_subscribers(HOOK)
    r = raw.put(qpath(f"{queue_name}-p"), json={"queue": {"type": "multicast"}})
    assert r.status_code == 400
    assert "at least one subscriber" in r.json()["msg"]
    body = {
        "queue": {
            "type": "multicast",
            "push": {"subscribers": [{"name": "a", "url": HOOK}]},
            "dead_letter": {"queue_name": "dlq"},
        }
    }
    r = raw.put(qpath(f"{queue_name}-p"), json=body)
    assert r.status_code == 400
    assert "dead_letter" in r.json()["msg"]
    r = raw.put(
        qpath(f"{queue_name}-p"), json={"queue": {"push": {"subscribers": [{"url": HOOK}]}}}
    )
    assert r.status_code == 200
    assert r.json()["queue"]["type"] == "multicast"
    r = raw.put(qpath(f"{queue_name}-p"), json={"queue": {"type": "unicast"}})
    assert r.status_code == 400  # re-creating with another type is a type change
    r = raw.patch(
        qpath(f"{queue_name}-p"), json={"queue": {"push": {"error_queue": f"{queue_name}-p"}}}
    )
    assert r.status_code == 400
    assert "itself" in r.json()["msg"]


def test_list_queues_is_alphabetical_with_prefix_and_paging(mq: IronMQ, queue_name: str) -> None:
    names = [f"{queue_name}-{c}" for c in "dbca"]
    for name in names:
        mq.create_queue(name)
    assert mq.queues(prefix=f"{queue_name}-") == sorted(names)
    assert mq.queues(prefix=f"{queue_name}-", per_page=2) == sorted(names)[:2]
    assert mq.queues(prefix=f"{queue_name}-", previous=f"{queue_name}-b") == sorted(names)[2:]
    assert list(mq.iter_queues(prefix=f"{queue_name}-")) == sorted(names)


def test_reserved_characters_in_queue_names(mq: IronMQ, queue_name: str) -> None:
    name = f"{queue_name} a/b?c#d%e&f+g=h;i'j"
    q = mq.queue(name)
    [mid] = q.post("odd")
    assert q.info().name == name
    assert name in mq.queues(prefix=queue_name)
    [m] = q.reserve()
    assert (m.id, m.body) == (mid, "odd")
    q.delete(m.id, m.reservation_id)
    assert mq.queues(prefix=queue_name) == [name]
    with pytest.raises(NotFound):
        mq.queue(f"{queue_name} a/b").info()  # %2F stays inside one name


# --------------------------------------------------------------------------- messages


def test_post_reserve_delete_and_counts(mq: IronMQ, queue_name: str) -> None:
    q = mq.queue(queue_name)
    ids = q.post("a", b"b", {"body": "c"})
    assert len(set(ids)) == 3
    assert [int(i) for i in ids] == sorted(int(i) for i in ids)
    assert (q.size(), q.total_messages()) == (3, 3)  # posting created a pull queue
    msgs = q.reserve(max=2)
    assert [(m.id, m.body, m.reserved_count) for m in msgs] == [(ids[0], "a", 1), (ids[1], "b", 1)]
    assert all(m.reservation_id for m in msgs)
    q.delete(msgs[0].id, msgs[0].reservation_id)
    q.delete_multiple(msgs[1])
    assert (q.size(), q.total_messages()) == (1, 3)
    [m] = q.reserve(max=5, delete=True)
    assert m.body == "c"
    assert q.size() == 0
    assert q.reserve() == []


def test_reserve_from_a_missing_queue_is_404(mq: IronMQ, queue_name: str) -> None:
    with pytest.raises(NotFound, match="Queue not found"):
        mq.queue(queue_name).reserve()


def test_expired_reservation_returns_the_message_to_the_front(mq: IronMQ, queue_name: str) -> None:
    q = mq.queue(queue_name)
    first, second = q.post("first", "second")
    [m] = q.reserve(timeout=0.2)
    assert m.id == first
    assert [x.id for x in q.peek(max=5)] == [second]
    wait_until(lambda: len(q.peek(max=5)) == 2, timeout=5)
    assert [x.id for x in q.peek(max=5)] == [first, second]  # back at the front
    [again] = q.reserve()
    assert (again.id, again.reserved_count) == (first, 2)
    with pytest.raises(ReservationExpired, match="Reservation timed out"):
        q.delete(first, m.reservation_id)
    with pytest.raises(ReservationExpired):
        q.delete(first)  # reserved: the reservation id is required
    q.delete(first, again.reservation_id)
    assert [x.id for x in q.peek(max=5)] == [second]


def test_touch_issues_a_new_reservation_and_release_puts_back_in_front(
    mq: IronMQ, queue_name: str
) -> None:
    q = mq.queue(queue_name)
    first, second = q.post("first", "second")
    [m] = q.reserve(timeout=30)
    new = q.touch(m.id, m.reservation_id or "", timeout=60)
    assert new
    assert new != m.reservation_id
    with pytest.raises(ReservationExpired):
        q.touch(m.id, m.reservation_id or "")
    q.release(m.id, new, delay=0.3)
    [n] = q.reserve()
    assert n.id == second  # first is delayed for 0.3 s
    [again] = wait_until(lambda: q.reserve(), timeout=5)
    assert again.id == first
    with pytest.raises(ReservationExpired):
        q.release(first, new)


def test_delayed_message_becomes_available_after_its_delay(mq: IronMQ, queue_name: str) -> None:
    q = mq.queue(queue_name)
    posted = time.monotonic()
    [mid] = q.post({"body": "later", "delay": 0.3})
    assert q.reserve() == []
    assert q.size() == 1
    [m] = wait_until(lambda: q.reserve(), timeout=5)
    assert m.id == mid
    assert time.monotonic() - posted >= 0.3


def test_peek_and_get_by_id_do_not_reserve(mq: IronMQ, queue_name: str) -> None:
    q = mq.queue(queue_name)
    ids = q.post("a", {"body": "b", "push_headers": {"X-H": "v"}})
    assert [m.id for m in q.peek(max=10)] == ids
    m = q.get_message_by_id(ids[1])
    assert (m.body, m.reserved_count, m.raw["push_headers"]) == ("b", 0, {"X-H": "v"})
    assert len(q.reserve(max=10)) == 2
    with pytest.raises(NotFound, match="Message not found"):
        q.get_message_by_id("12345")


def test_clear_removes_every_message_including_reserved(mq: IronMQ, queue_name: str) -> None:
    q = mq.queue(queue_name)
    q.post("a", "b", "c")
    q.reserve()
    q.clear()
    assert q.size() == 0
    assert q.reserve() == []


def test_delete_on_messages_without_ids_clears(
    raw: httpx.Client, mq: IronMQ, queue_name: str
) -> None:
    q = mq.queue(queue_name)
    for body in (None, b"{}"):
        q.post("a", "b")
        r = raw.request("DELETE", qpath(queue_name, "messages"), content=body)
        assert (r.status_code, r.json()) == (200, {"msg": "Cleared"})
        assert q.size() == 0


def test_an_empty_ids_list_is_refused_and_clears_nothing(
    raw: httpx.Client, mq: IronMQ, queue_name: str
) -> None:
    q = mq.queue(queue_name)
    q.post("a", "b")
    for body in (b'{"ids": []}', b'{"ids": null}'):
        r = raw.request("DELETE", qpath(queue_name, "messages"), content=body)
        assert r.status_code == 400, r.text
        assert "ids must" in r.json()["msg"]
    assert q.size() == 2


def test_delete_multiple_is_all_or_nothing(mq: IronMQ, queue_name: str) -> None:
    q = mq.queue(queue_name)
    a, b = q.post("a", "b")
    with pytest.raises(NotFound):
        q.delete_multiple(a, "999")
    assert q.size() == 2
    q.delete_multiple(a, b)
    assert q.size() == 0


def test_message_expiration_drops_old_messages(mq: IronMQ, queue_name: str) -> None:
    mq.create_queue(queue_name, message_expiration=0.3)
    q = mq.queue(queue_name)
    q.post("short-lived")
    assert q.size() == 1
    wait_until(lambda: q.size() == 0, timeout=5)


def test_dead_letter_after_max_reservations(mq: IronMQ, raw: httpx.Client, queue_name: str) -> None:
    body = {"queue": {"dead_letter": {"queue_name": f"{queue_name}-dlq", "max_reservations": 1}}}
    assert raw.put(qpath(queue_name), json=body).status_code == 200
    q = mq.queue(queue_name)
    q.post("poison")
    q.reserve(timeout=0.1)
    wait_until(lambda: q.size() == 0, timeout=5)
    [dead] = mq.queue(f"{queue_name}-dlq").reserve()
    assert dead.body == "poison"
    assert q.size() == 0


@pytest.mark.anyio
async def test_long_poll_reserve_returns_as_soon_as_a_message_arrives(
    dev: DevServer, queue_name: str
) -> None:
    async with dev.async_client() as amq:
        q = amq.queue(queue_name)
        await amq.create_queue(queue_name)
        result: list[Any] = []

        async def reserve() -> None:
            result.extend(await q.reserve(wait=10))

        async with anyio.create_task_group() as tg:
            tg.start_soon(reserve)
            waiting = dev.engine.store.queue("dev", queue_name).waiters
            deadline = time.monotonic() + 5
            while not waiting:  # the long poll is parked on the server
                assert time.monotonic() < deadline
                await anyio.sleep(0.005)
            started = time.monotonic()
            await q.post("wake up")
        assert [m.body for m in result] == ["wake up"]
        assert time.monotonic() - started < 10  # woken by the post, not at the end of wait=10
        assert await q.reserve(wait=0.2) == []


def test_webhook_posts_the_raw_body_with_x_subscribers_headers(
    mq: IronMQ, raw: httpx.Client, queue_name: str
) -> None:
    headers = {"X-Subscribers-X-Trace": "t1", "X-Subscribers-Content-Type": "bad", "X-Other": "1"}
    r = raw.post(qpath(queue_name, "webhook"), content=b"raw {body}", headers=headers)
    assert r.status_code == 201
    m = mq.queue(queue_name).get_message_by_id(r.json()["ids"][0])
    assert m.body == "raw {body}"
    assert {k.lower(): v for k, v in m.raw["push_headers"].items()} == {"x-trace": "t1"}


# --------------------------------------------------------------------------- subscribers, alerts


def test_subscribers_add_replace_remove(mq: IronMQ, queue_name: str) -> None:
    mq.create_queue(queue_name, subscribers=[{"name": "a", "url": HOOK}])
    q = mq.queue(queue_name)
    q.add_subscribers({"name": "b", "url": HOOK + "/b"}, {"name": "a", "url": HOOK + "/a2"})
    assert [(s.name, s.url) for s in q.subscribers()] == [("a", HOOK + "/a2"), ("b", HOOK + "/b")]
    q.replace_subscribers({"name": "c", "url": HOOK + "/c"})
    assert [s.name for s in q.subscribers()] == ["c"]
    q.add_subscribers(HOOK + "/d")
    q.remove_subscribers(HOOK + "/d")
    assert [s.name for s in q.subscribers()] == ["c"]
    with pytest.raises(NotFound, match="Subscriber"):
        q.remove_subscribers("nobody")


def test_alerts_add_replace_remove(mq: IronMQ, raw: httpx.Client, queue_name: str) -> None:
    q = mq.queue(queue_name)
    mq.create_queue(queue_name)
    q.add_alerts(
        Alert(type="fixed", trigger=10, queue="alerts"),
        {"type": "progressive", "trigger": 5, "queue": "al"},
    )
    alerts = q.info().alerts
    assert [(a.type, a.trigger, a.direction) for a in alerts] == [
        ("fixed", 10, "asc"),
        ("progressive", 5, "asc"),
    ]
    assert all(a.id for a in alerts)
    with pytest.raises(BadRequest, match="duplicates"):
        q.add_alerts(Alert(type="fixed", trigger=10, queue="other"))
    q.remove_alert(alerts[0].id or "")
    assert [a.trigger for a in q.info().alerts] == [5]
    q.update_alerts(Alert(type="fixed", trigger=1, queue="x", direction="desc", snooze=5))
    [only] = q.info().alerts
    assert (only.trigger, only.direction, only.snooze) == (1, "desc", 5)
    q.remove_alerts(only.id or "")
    assert q.info().alerts == ()
    with pytest.raises(NotFound):
        q.remove_alert("nope")
    mq.create_queue(f"{queue_name}-push", subscribers=[HOOK])
    with pytest.raises(BadRequest, match="Push queues do not support alerts"):
        mq.queue(f"{queue_name}-push").add_alerts(Alert(type="fixed", trigger=1, queue="x"))
    r = raw.put(
        qpath(f"{queue_name}-push", "alerts"),
        json={"alerts": [{"type": "fixed", "trigger": 1, "queue": "x"}]},
    )
    assert r.status_code == 400


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("method", "rest", "body", "fragment"),
    [
        ("POST", ("messages",), b"{not json", "Invalid JSON"),
        ("POST", ("messages",), b"[1]", "must be a JSON object"),
        ("POST", ("messages",), b'{"messages": []}', "non-empty"),
        ("POST", ("messages",), b'{"messages": [{"body": 1}]}', "string body"),
        (
            "POST",
            ("messages",),
            b'{"messages": [{"body": "x", "delay": "1"}]}',
            "delay must be a number",
        ),
        ("POST", ("messages",), b'{"messages": [{"body": "x", "delay": -1}]}', "delay must be"),
        (
            "POST",
            ("messages",),
            b'{"messages": [{"body": "x", "push_headers": {"Content-Type": "a"}}]}',
            "set by the pusher",
        ),
        (
            "POST",
            ("messages",),
            b'{"messages": [{"body": "x", "push_headers": '
            b'{"A": "1", "B": "1", "C": "1", "D": "1", "E": "1", "F": "1"}}]}',
            "at most 5",
        ),
        (
            "POST",
            ("messages",),
            b'{"messages": [{"body": "x", "push_headers": {"X-A": "a\\r\\nb"}}]}',
            "line break",
        ),
        (
            "POST",
            ("messages",),
            b'{"messages": [{"body": "x", "push_headers": {"Bad Name": "v"}}]}',
            "not a valid HTTP header",
        ),
        ("POST", ("reservations",), b'{"n": 0}', "n must be"),
        ("POST", ("reservations",), b'{"n": "two"}', "n must be an integer"),
        ("POST", ("reservations",), b'{"wait": 31}', "wait must be"),
        ("POST", ("reservations",), b'{"delete": "yes"}', "delete must be"),
        ("PUT", (), b'{"queue": {"type": "fanout"}}', "type must be"),
        ("PUT", (), b'{"queue": {"message_timeout": true}}', "message_timeout must be a number"),
        (
            "PUT",
            (),
            b'{"queue": {"type": "multicast", "push": {"subscribers": [{"name": "a", "url": "ftp://x"}]}}}',
            "scheme",
        ),
        (
            "PUT",
            (),
            b'{"queue": {"type": "multicast", "push": {"subscribers": '
            b'[{"url": "http://h", "headers": {"Iron-Message-Id": "1"}}]}}}',
            "set by the pusher",
        ),
        (
            "PUT",
            (),
            b'{"queue": {"type": "multicast", "push": {"retries": 101, "subscribers": [{"url": "http://h"}]}}}',
            "retries must be",
        ),
        ("PUT", (), b'{"queue": "x"}', "queue must be a JSON object"),
        ("DELETE", ("messages",), b'{"ids": "x"}', "ids must be an array"),
    ],
)
def test_bad_input_gets_a_precise_400(
    raw: httpx.Client,
    queue_name: str,
    method: str,
    rest: tuple[str, ...],
    body: bytes,
    fragment: str,
) -> None:
    raw.put(qpath(queue_name), json={})
    r = raw.request(method, qpath(queue_name, *rest), content=body)
    assert r.status_code == 400, r.text
    assert fragment in r.json()["msg"]


def test_message_size_and_unknown_routes(
    dev: DevServer, raw: httpx.Client, queue_name: str
) -> None:
    big = {"messages": [{"body": "x" * (256 * 1024 + 1)}]}
    r = raw.post(qpath(queue_name, "messages"), json=big)
    assert r.status_code == 400
    assert "larger than" in r.json()["msg"]
    r = raw.post(qpath(queue_name, "messages", "123"), json={})
    assert (r.status_code, r.json()) == (405, {"msg": "Method not allowed"})
    r = raw.get("/nothing/here")
    assert r.status_code == 404
    assert "msg" in r.json()
    r = httpx.get(f"{dev.url}/2/projects/dev/queues")
    assert r.status_code == 404
    assert "/3/projects" in r.json()["msg"]
    r = raw.get("/queues", params={"per_page": "many"})
    assert r.status_code == 400
    assert raw.get("/queues").status_code == 200  # the server kept serving


# --------------------------------------------------------------------------- auth and projects


def test_token_is_required_when_configured(
    queue_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    token = "tok-0123456789abcdef"
    caplog.set_level(logging.DEBUG, logger="ironpush")
    with DevServer(token=token) as dev:
        with dev.client() as mq:
            mq.queue(queue_name).post("x")
        bad = IronMQ(cloud=dev.url, project_id="dev", token="wrong")
        with bad, pytest.raises(Unauthorized, match="Invalid token"):
            bad.queue(queue_name).post("x")
        r = httpx.get(f"{dev.url}/3/projects/dev/queues")
        assert (r.status_code, r.json()) == (401, {"msg": "Invalid token"})
        assert httpx.get(f"{dev.url}/_dev/state").status_code == 401
        assert dev.state()["projects"]["dev"][queue_name]["size"] == 1
    assert token not in caplog.text


def test_any_project_id_or_only_a_fixed_one(dev: DevServer, queue_name: str) -> None:
    with IronMQ(cloud=dev.url, project_id="other-project", token="x") as other:
        other.queue(queue_name).post("x")
        assert other.queue(queue_name).size() == 1
    with DevServer(project_id="only") as fixed:
        with fixed.client() as mq:
            mq.queue(queue_name).post("x")
        other = IronMQ(cloud=fixed.url, project_id="other", token="x")
        with other, pytest.raises(NotFound, match="Project not found"):
            other.queue(queue_name).info()


def test_control_plane_state_reset_and_idle(queue_name: str) -> None:
    with DevServer() as dev, dev.client() as mq:
        mq.queue(queue_name).post("a", "b")
        mq.queue(queue_name).reserve()
        counts = dev.state()["projects"]["dev"][queue_name]
        assert (counts["size"], counts["ready"], counts["reserved"]) == (2, 1, 1)
        assert dev.wait_idle(timeout=1)
        dev.reset()
        assert dev.state()["projects"] == {}
        with pytest.raises(NotFound):
            mq.queue(queue_name).info()
