"""The sans-I/O operations driven directly: no client, no transport, no sockets.

Each operation is a generator: it yields the :class:`Request` to send and receives the
:class:`Reply`. These tests play the server: they check every request an operation yields
(method, path, params, JSON body, retry safety) and what it makes of the replies.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import pytest

from ironpush._errors import (
    APIError,
    BadRequest,
    NotFound,
    ReservationExpired,
    ServiceUnavailable,
    Unauthorized,
    ValidationError,
)
from ironpush._protocol import Delivery, Reply, Request
from ironpush.client import _operations as ops
from ironpush.client._models import Alert, Message, PushStatus, Subscriber

T = TypeVar("T")
Exchange = tuple[Request, Reply]
COVERED: set[str] = set()


def covers(*names: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Mark a test as exercising these operations (checked by the completeness test)."""

    def mark(test: Callable[..., T]) -> Callable[..., T]:
        COVERED.update(names)
        return test

    return mark


def drive(op: ops.Op[T], exchanges: Sequence[Exchange]) -> T:
    """Play the server for ``op``: each request it yields must equal the next expected one,
    which is answered with its reply; the operation must then return (its result)."""
    expected = list(exchanges)
    try:
        request = next(op)
        while True:
            assert expected, f"unexpected extra request {request}"
            want, reply = expected.pop(0)
            assert request == want
            request = op.send(reply)
    except StopIteration as stop:
        assert not expected, f"requests never sent: {[r for r, _ in expected]}"
        return stop.value  # type: ignore[no-any-return]


def ok(data: Any = None) -> Reply:
    return Reply(200, data if data is not None else {})


def refused(op: ops.Op[Any], match: str) -> None:
    """The operation refuses its arguments before yielding any request."""
    with pytest.raises(ValidationError, match=match):
        next(op)


SUB = {"name": "billing", "url": "https://svc.example/ironmq/orders", "headers": {"X-K": "v"}}
PUSH_QUEUE = {
    "queue": {
        "name": "orders",
        "project_id": "p",
        "size": 3,
        "total_messages": 9,
        "type": "multicast",
        "push": {"subscribers": [SUB], "retries": 3, "retries_delay": 60, "error_queue": "errs"},
    }
}


# --------------------------------------------------------------------------- call


@covers("call")
@pytest.mark.parametrize(
    ("status", "msg", "exc"),
    [
        (400, "Bad JSON", BadRequest),
        (401, "Invalid token", Unauthorized),
        (403, "Reservation has timed out", ReservationExpired),
        (403, "Project suspended", APIError),
        (404, "Queue not found", NotFound),
        (500, "boom", APIError),
        (503, "busy", ServiceUnavailable),
        (504, "gateway", ServiceUnavailable),
    ],
)
def test_call_turns_an_error_reply_into_the_typed_error(
    status: int, msg: str, exc: type[APIError]
) -> None:
    request = Request("GET", "/queues/q")
    with pytest.raises(exc) as info:
        drive(ops.call(request), [(request, Reply(status, {"msg": msg}))])
    assert type(info.value) is exc
    assert (info.value.status_code, info.value.msg) == (status, msg)
    assert (info.value.method, info.value.path) == ("GET", "/queues/q")


@covers("call")
def test_call_returns_the_data_of_any_success_and_keeps_text_error_bodies() -> None:
    request = Request("GET", "/queues")
    assert drive(ops.call(request), [(request, Reply(201, {"a": 1}))]) == {"a": 1}
    assert drive(ops.call(request), [(request, Reply(204))]) is None
    with pytest.raises(APIError, match="upstream went away"):
        drive(ops.call(request), [(request, Reply(502, "upstream went away"))])


# --------------------------------------------------------------------------- queues


@covers("list_queues")
def test_list_queues_pages_with_params_and_skips_junk_entries() -> None:
    op = ops.list_queues(prefix="or", per_page=2, previous="a")
    params = {"prefix": "or", "per_page": "2", "previous": "a"}
    reply = ok({"queues": [{"name": "orders"}, "junk", {"name": "orders-2"}]})
    assert drive(op, [(Request("GET", "/queues", params=params), reply)]) == ["orders", "orders-2"]
    assert drive(ops.list_queues(), [(Request("GET", "/queues"), ok(None))]) == []
    refused(ops.list_queues(per_page=0), "per_page must be")


@covers("get_queue")
def test_get_queue_escapes_the_name_and_parses_the_push_settings() -> None:
    info = drive(ops.get_queue("orders"), [(Request("GET", "/queues/orders"), ok(PUSH_QUEUE))])
    assert (info.name, info.size, info.total_messages, info.type) == ("orders", 3, 9, "multicast")
    assert info.push is not None
    assert (info.push.retries, info.push.retries_delay, info.push.error_queue) == (3, 60, "errs")
    assert info.subscribers == (Subscriber("billing", SUB["url"], {"X-K": "v"}),)
    odd = drive(ops.get_queue("a b/c?#"), [(Request("GET", "/queues/a%20b%2Fc%3F%23"), ok({}))])
    assert (odd.name, odd.type, odd.is_push) == ("a b/c?#", "pull", False)  # named after the ask
    refused(ops.get_queue(""), "non-empty string")


@covers("create_queue")
def test_create_queue_puts_the_options_and_defaults_a_push_queue_to_multicast() -> None:
    op = ops.create_queue(
        "orders", subscribers=[SUB], retries=3, retries_delay=1.5, message_timeout=60.0
    )
    body = {
        "queue": {
            "message_timeout": 60,
            "push": {"subscribers": [SUB], "retries": 3, "retries_delay": 1.5},
            "type": "multicast",
        }
    }
    info = drive(op, [(Request("PUT", "/queues/orders", json=body), ok(PUSH_QUEUE))])
    assert info.name == "orders"
    pull = {"queue": {"type": "pull", "message_expiration": 3600}}
    op = ops.create_queue("jobs", type="pull", message_expiration=3600)
    assert drive(op, [(Request("PUT", "/queues/jobs", json=pull), ok({}))]).name == "jobs"
    refused(ops.create_queue("q", type="unicast"), "at least one subscriber")
    refused(ops.create_queue("q", type="fifo"), "queue type must be one of")
    refused(ops.create_queue("q", retries=101, subscribers=[SUB]), "retries must be")


@covers("update_queue")
def test_update_queue_patches_and_refuses_a_type_change() -> None:
    body = {"queue": {"message_expiration": 3600, "push": {"error_queue": "errs"}}}
    op = ops.update_queue("orders", message_expiration=3600, error_queue="errs")
    assert drive(op, [(Request("PATCH", "/queues/orders", json=body), ok(PUSH_QUEUE))]).is_push
    refused(ops.update_queue("orders", type="unicast"), "cannot change a queue's type")


@covers("update_push_queue")
def test_update_push_queue_adjusts_an_existing_push_queue() -> None:
    patch = {"queue": {"push": {"subscribers": [SUB], "retries": 5}}}
    op = ops.update_push_queue("orders", subscribers=[SUB], retries=5)
    info = drive(
        op,
        [
            (Request("GET", "/queues/orders"), ok(PUSH_QUEUE)),
            (Request("PATCH", "/queues/orders", json=patch), ok(PUSH_QUEUE)),
        ],
    )
    assert info.type == "multicast"


@covers("update_push_queue")
def test_update_push_queue_creates_a_missing_queue_with_its_type() -> None:
    create = {"queue": {"type": "unicast", "push": {"subscribers": [SUB]}}}
    op = ops.update_push_queue("orders", subscribers=[SUB], push_type="unicast")
    info = drive(
        op,
        [
            (Request("GET", "/queues/orders"), Reply(404, {"msg": "Queue not found"})),
            (Request("PUT", "/queues/orders", json=create), ok({"queue": create["queue"]})),
        ],
    )
    assert (info.name, info.type) == ("orders", "unicast")


@covers("update_push_queue")
@pytest.mark.parametrize(
    ("options", "current", "match"),
    [
        ({}, Reply(404, {"msg": "Queue not found"}), "does not exist; give subscribers"),
        ({"push_type": "unicast"}, ok(PUSH_QUEUE), "is a multicast queue and v3 cannot change"),
        ({"subscribers": [SUB]}, ok({"queue": {"name": "jobs"}}), "is a pull queue"),
    ],
)
def test_update_push_queue_refuses_what_v3_cannot_do(
    options: dict[str, Any], current: Reply, match: str
) -> None:
    op = ops.update_push_queue("orders", **options)
    assert next(op) == Request("GET", "/queues/orders")
    with pytest.raises(ValidationError, match=match):
        op.send(current)


@covers("update_push_queue")
def test_update_push_queue_checks_the_push_type_before_asking() -> None:
    refused(ops.update_push_queue("orders", push_type="broadcast"), "push_type must be one of")


@covers("delete_queue")
def test_delete_queue() -> None:
    reply = ok({"msg": "Deleted"})
    assert drive(ops.delete_queue("a b"), [(Request("DELETE", "/queues/a%20b"), reply)]) is None
    with pytest.raises(NotFound):
        drive(ops.delete_queue("gone"), [(Request("DELETE", "/queues/gone"), Reply(404))])


# --------------------------------------------------------------------------- messages


@covers("post")
def test_post_sends_every_message_once_and_never_as_retryable() -> None:
    messages = ["plain", b"bytes", {"body": "later", "delay": 5.0, "push_headers": {"X-A": "1"}}]
    body = {
        "messages": [
            {"body": "plain"},
            {"body": "bytes"},
            {"body": "later", "delay": 5, "push_headers": {"X-A": "1"}},
        ]
    }
    request = Request("POST", "/queues/q/messages", json=body, idempotent=False)
    reply = ok({"ids": ["1", 2, "3"], "msg": "Messages put on queue."})
    assert drive(ops.post("q", messages), [(request, reply)]) == ["1", "2", "3"]


@pytest.mark.parametrize(
    ("messages", "match"),
    [
        ([], "at least one message"),
        ([b"\xff"], "bytes must be UTF-8"),
        ([42], "cannot post a int"),
        ([{"body": "x", "timeout": 5}], "unsupported message field"),
        ([{"delay": 5}], "needs a 'body'"),
        ([{"body": "x", "delay": -1}], "delay must be"),
        ([{"body": "x", "push_headers": {"Iron-Message-Id": "x"}}], "set by the pusher"),
        ([{"body": "x", "push_headers": {"X-A": "a\r\nb"}}], "contains a line break"),
    ],
)
def test_post_refuses_bad_messages_before_sending(messages: list[Any], match: str) -> None:
    refused(ops.post("q", messages), match)


@covers("reserve")
def test_reserve_a_long_poll_extends_the_read_timeout() -> None:
    body = {"n": 10, "timeout": 30, "wait": 5}
    request = Request("POST", "/queues/q/reservations", json=body, idempotent=True, read_timeout=15)
    wire = {"id": "1", "body": "b", "reserved_count": 2, "reservation_id": "r1"}
    messages = drive(
        ops.reserve("q", n=10, timeout=30, wait=5), [(request, ok({"messages": [wire, "junk"]}))]
    )
    assert messages == [Message("1", "b", reserved_count=2, reservation_id="r1")]
    assert messages[0].raw == wire


@covers("reserve")
def test_reserve_with_delete_is_not_retryable() -> None:
    request = Request(
        "POST", "/queues/q/reservations", json={"n": 1, "delete": True}, idempotent=False
    )
    assert drive(ops.reserve("q", delete=True), [(request, ok({"messages": []}))]) == []
    refused(ops.reserve("q", n=101), "max must be")
    refused(ops.reserve("q", wait=31), "wait must be")


@covers("get_message")
def test_get_message_reads_the_wrapped_and_the_bare_shape() -> None:
    request = Request("GET", "/queues/q/messages/m%201")
    wrapped = ok({"message": {"id": "m 1", "body": "x", "reserved_count": 1}})
    assert drive(ops.get_message("q", "m 1"), [(request, wrapped)]) == Message("m 1", "x", 1)
    bare = ok({"id": "m 1", "body": "y"})
    assert drive(ops.get_message("q", "m 1"), [(request, bare)]) == Message("m 1", "y")


@covers("peek")
def test_peek_asks_for_n_messages() -> None:
    request = Request("GET", "/queues/q/messages", params={"n": "3"})
    reply = ok({"messages": [{"id": "1", "body": "a"}, {"id": "2", "body": "b"}]})
    assert [m.id for m in drive(ops.peek("q", n=3), [(request, reply)])] == ["1", "2"]
    refused(ops.peek("q", n=0), "max must be")


@covers("touch")
def test_touch_returns_the_new_reservation_id() -> None:
    body = {"reservation_id": "r1", "timeout": 60}
    request = Request("POST", "/queues/q/messages/m/touch", json=body, idempotent=False)
    reply = ok({"reservation_id": "r2", "msg": "Touched"})
    assert drive(ops.touch("q", "m", "r1", timeout=60), [(request, reply)]) == "r2"
    plain = Request(
        "POST", "/queues/q/messages/m/touch", json=body | {"timeout": 0.5}, idempotent=False
    )
    assert drive(ops.touch("q", "m", "r1", timeout=0.5), [(plain, ok({}))]) == ""
    refused(ops.touch("q", "m", ""), "reservation_id is required")


@covers("release")
def test_release_with_and_without_a_delay() -> None:
    path = "/queues/q/messages/m/release"
    delayed = Request("POST", path, json={"reservation_id": "r", "delay": 10}, idempotent=False)
    assert drive(ops.release("q", "m", "r", delay=10), [(delayed, ok())]) is None
    now = Request("POST", path, json={"reservation_id": "r"}, idempotent=False)
    assert drive(ops.release("q", "m", "r"), [(now, ok())]) is None
    refused(ops.release("q", "m", "r", delay=-1), "delay must be")


@covers("delete")
def test_delete_plain_reserved_and_as_a_push_acknowledgement() -> None:
    path = "/queues/q/messages/m"
    assert drive(ops.delete("q", "m"), [(Request("DELETE", path), ok())]) is None
    reserved = Request("DELETE", path, json={"reservation_id": "r"})
    assert drive(ops.delete("q", "m", reservation_id="r"), [(reserved, ok())]) is None
    ack = Request("DELETE", path, json={"reservation_id": "r", "subscriber_name": "s"})
    op = ops.delete("q", "m", reservation_id="r", subscriber_name="s")
    assert drive(op, [(ack, ok())]) is None
    refused(ops.delete("q", "m", subscriber_name="s"), "needs its reservation_id too")
    op = ops.delete("q", "m", reservation_id="r")
    with pytest.raises(ReservationExpired):
        drive(op, [(reserved, Reply(403, {"msg": "Reservation has timed out"}))])


@covers("delete_many")
def test_delete_many_accepts_ids_messages_and_dicts() -> None:
    items: list[Any] = [
        "1",
        Message("2", "b", reservation_id="r2"),
        Message("3", "c"),
        {"id": "4", "reservation_id": "r4"},
        {"id": 5},
    ]
    ids = [
        {"id": "1"},
        {"id": "2", "reservation_id": "r2"},
        {"id": "3"},
        {"id": "4", "reservation_id": "r4"},
        {"id": "5"},
    ]
    request = Request("DELETE", "/queues/q/messages", json={"ids": ids})
    assert drive(ops.delete_many("q", items), [(request, ok())]) is None


@pytest.mark.parametrize(
    ("items", "match"),
    [
        ([], "would clear the queue"),
        ([str(i) for i in range(101)], "at most 100"),
        ([42], "cannot delete 42"),
        ([""], "message id is required"),
        ([{"reservation_id": "r"}], "cannot delete"),
    ],
)
def test_delete_many_refuses_what_would_clear_or_confuse(items: list[Any], match: str) -> None:
    refused(ops.delete_many("q", items), match)


@covers("clear")
def test_clear_sends_an_empty_object() -> None:
    request = Request("DELETE", "/queues/q/messages", json={})
    assert drive(ops.clear("q"), [(request, ok({"msg": "Cleared"}))]) is None


# --------------------------------------------------------------------------- push queues


@covers("add_subscribers", "replace_subscribers")
@pytest.mark.parametrize(
    ("operation", "method"), [(ops.add_subscribers, "POST"), (ops.replace_subscribers, "PUT")]
)
def test_adding_and_replacing_subscribers(operation: Any, method: str) -> None:
    url = "https://svc.example/hook"
    named = Subscriber.coerce(url).name  # a bare URL gets a stable derived name
    body = {"subscribers": [SUB, {"name": named, "url": url}]}
    request = Request(method, "/queues/q/subscribers", json=body)
    assert drive(operation("q", [SUB, url]), [(request, ok())]) is None
    refused(operation("q", []), "at least one subscriber")


@covers("remove_subscribers")
def test_remove_subscribers_by_name_needs_no_lookup() -> None:
    body = {"subscribers": [{"name": "a"}, {"name": "b"}]}
    request = Request("DELETE", "/queues/q/subscribers", json=body)
    op = ops.remove_subscribers("q", ["a", Subscriber("b", "http://b"), "a"])
    assert drive(op, [(request, ok())]) is None
    refused(ops.remove_subscribers("q", []), "at least one subscriber")


@covers("remove_subscribers")
def test_remove_subscribers_by_url_looks_the_names_up_first() -> None:
    queue = {"queue": {"name": "q", "type": "multicast", "push": {"subscribers": [SUB]}}}
    body = {"subscribers": [{"name": "billing"}, {"name": "audit"}]}
    op = ops.remove_subscribers("q", [SUB["url"], "audit"])
    exchanges = [
        (Request("GET", "/queues/q"), ok(queue)),
        (Request("DELETE", "/queues/q/subscribers", json=body), ok()),
    ]
    assert drive(op, exchanges) is None
    op = ops.remove_subscribers("q", ["https://unknown.example/x"])
    assert next(op) == Request("GET", "/queues/q")
    with pytest.raises(ValidationError, match="no subscriber with that URL"):
        op.send(ok(queue))


@covers("push_statuses")
def test_push_statuses_reads_each_subscribers_state() -> None:
    request = Request("GET", "/queues/q/messages/m/subscribers")
    wire = [
        {"name": "a", "status": "deleted", "status_code": 200, "tries": 1},
        {"subscriber_name": "b", "status": "retrying", "retries_total": 2, "retries_remaining": 1},
    ]
    statuses = drive(ops.push_statuses("q", "m"), [(request, ok({"subscribers": wire}))])
    assert [(s.subscriber_name, s.status, s.tries, s.done) for s in statuses] == [
        ("a", "deleted", 1, True),
        ("b", "retrying", 2, False),
    ]
    assert isinstance(statuses[0], PushStatus)
    assert statuses[1].retries_remaining == 1


@covers("acknowledge")
def test_acknowledge_a_v3_push_deletes_with_its_reservation_and_subscriber() -> None:
    body = {"reservation_id": "r9", "subscriber_name": "billing"}
    request = Request("DELETE", "/queues/orders/messages/m1", json=body)
    op = ops.acknowledge("orders", Delivery("m1", "r9", "billing"))
    assert drive(op, [(request, ok({"msg": "Deleted"}))]) is None
    refused(ops.acknowledge("orders", Delivery("m1")), "needs Iron-Reservation-Id")


@covers("acknowledge")
def test_acknowledge_a_legacy_push_deletes_its_url_verbatim() -> None:
    url = "https://mq.example/1/projects/p/queues/orders/messages/m1/subscribers/s7"
    legacy = Delivery("m1", subscriber_message_url=url, flavour="legacy")
    assert drive(ops.acknowledge("orders", legacy), [(Request("DELETE", url), ok())]) is None
    with pytest.raises(NotFound):
        drive(ops.acknowledge("orders", legacy), [(Request("DELETE", url), Reply(404))])
    no_url = Delivery("m1", flavour="legacy")
    refused(ops.acknowledge("orders", no_url), "without Iron-Subscriber-Message-Url")


# --------------------------------------------------------------------------- alerts


ALERT = Alert("fixed", 100, "alerts-q", snooze=60)
ALERT_JSON = {
    "type": "fixed",
    "trigger": 100,
    "queue": "alerts-q",
    "direction": "asc",
    "snooze": 60,
}


@covers("add_alerts")
def test_add_alerts_patches_the_queue() -> None:
    body = {"queue": {"alerts": [ALERT_JSON, {"type": "progressive", "trigger": 5}]}}
    request = Request("PATCH", "/queues/q", json=body)
    op = ops.add_alerts("q", [ALERT, {"type": "progressive", "trigger": 5}])
    assert drive(op, [(request, ok())]) is None
    refused(ops.add_alerts("q", []), "at least one alert")


@covers("replace_alerts")
def test_replace_alerts_puts_the_list_and_an_empty_list_removes_all() -> None:
    request = Request("PUT", "/queues/q/alerts", json={"alerts": [ALERT_JSON]})
    assert drive(ops.replace_alerts("q", [ALERT]), [(request, ok())]) is None
    empty = Request("PUT", "/queues/q/alerts", json={"alerts": []})
    assert drive(ops.replace_alerts("q", []), [(empty, ok())]) is None


@covers("remove_alerts", "remove_alert")
def test_removing_alerts_by_id() -> None:
    body = {"alerts": [{"id": "a1"}, {"id": "a2"}]}
    request = Request("DELETE", "/queues/q/alerts", json=body)
    op = ops.remove_alerts("q", ["a1", Alert("fixed", 1, "x", id="a2")])
    assert drive(op, [(request, ok())]) is None
    refused(ops.remove_alerts("q", [Alert("fixed", 1, "x")]), "ids of the alerts")
    one = Request("DELETE", "/queues/q/alerts/a%2F1")
    assert drive(ops.remove_alert("q", "a/1"), [(one, ok())]) is None
    refused(ops.remove_alert("q", ""), "alert id is required")


# --------------------------------------------------------------------------- keystone


@covers("keystone_token")
def test_keystone_token_exchanges_credentials_for_a_token_and_its_expiry() -> None:
    body = {
        "auth": {
            "tenantName": "t",
            "passwordCredentials": {"username": "u", "password": "pw"},
        }
    }
    request = Request("POST", "https://ks.example/v2.0/tokens", json=body)
    reply = ok({"access": {"token": {"id": "tok", "expires": "2030-01-02T03:04:05Z"}}})
    op = ops.keystone_token("https://ks.example/v2.0/", tenant="t", username="u", password="pw")
    assert drive(op, [(request, reply)]) == ("tok", datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC))
    odd = ok({"access": {"token": {"id": "tok", "expires": "next tuesday"}}})
    op = ops.keystone_token("https://ks.example/v2.0", tenant="t", username="u", password="pw")
    assert drive(op, [(request, odd)]) == ("tok", None)
    op = ops.keystone_token("https://ks.example/v2.0", tenant="t", username="u", password="pw")
    with pytest.raises(ValidationError, match=r"without access\.token\.id"):
        drive(op, [(request, ok({"access": {}}))])


# --------------------------------------------------------------------------- completeness


def test_every_operation_is_driven_by_a_test_here() -> None:
    operations = {
        name
        for name, fn in vars(ops).items()
        if inspect.isfunction(fn)
        and fn.__module__.startswith(ops.__name__ + ".")  # the package's modules
        and str(inspect.signature(fn).return_annotation).startswith("Op[")
    }
    assert len(operations) > 20
    assert operations - COVERED == set()
