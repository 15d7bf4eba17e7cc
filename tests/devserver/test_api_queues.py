"""The dev server's queue endpoints through the real client (and raw HTTP): queues, their
types and names, subscribers and alerts."""

from __future__ import annotations

from typing import TypeVar

import httpx
import pytest
from api_kit import HOOK, qpath

from ironpush._errors import BadRequest, NotFound
from ironpush.client import IronMQ
from ironpush.client._models import Alert

T = TypeVar("T")


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
