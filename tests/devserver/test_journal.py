"""What the pusher tells people: ``/_dev/deliveries`` and each attempt's record (answer,
headers sent, secrets masked, how it was acknowledged)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from push_kit import push_queue
from subscriber_servers import Subscribers
from support import wait_until

from ironpush.client import IronMQ
from ironpush.devserver import DevServer

DEV_OPTIONS = {"push_timeout": 2.0}  # the conftest's dev server: a push attempt times out in 2 s


def test_deliveries_log_and_state_describe_pushes(
    mq: IronMQ, dev: DevServer, recorder: Subscribers, queue_name: str
) -> None:
    url = recorder.url(500, 200)
    push_queue(mq, queue_name, {"name": "s", "url": url}, retries=1)
    [mid] = mq.queue(queue_name).post("x")
    mq.queue(queue_name).wait_for_push(mid, timeout=5)
    log = dev.deliveries(message_id=mid)
    assert [(d["try"], d["status_code"], d["subscriber"]) for d in log] == [
        (1, 500, "s"),
        (2, 200, "s"),
    ]
    assert parse_qs(urlsplit(url).query) == {}
    state = dev.state()
    assert state["projects"]["dev"][queue_name]["total_messages"] == 1
    assert state["projects"]["dev"][queue_name]["size"] == 0


def test_each_attempt_record_keeps_the_answer_the_headers_sent_and_the_ack(
    mq: IronMQ, dev: DevServer, recorder: Subscribers, queue_name: str
) -> None:
    url = recorder.url(202) + "?token=url-secret-0123456789"
    sub = {"name": "s", "url": url, "headers": {"X-Push-Secret": "hdr-secret-0123456789"}}
    push_queue(mq, queue_name, sub, retries_delay=60)
    [mid] = mq.queue(queue_name).post({"body": "x", "push_headers": {"X-Trace": "t"}})
    [hit] = wait_until(lambda: recorder.at(url))
    rid = hit.headers["iron-reservation-id"]
    [pending] = wait_until(lambda: dev.deliveries(message_id=mid))
    assert pending["ack"] is None
    mq.queue(queue_name).delete(mid, reservation_id=rid, subscriber_name="s")

    [record] = dev.deliveries(message_id=mid)

    assert (record["status_code"], record["answer"], record["outcome"]) == (
        202,
        "answer 202",
        "deferred",
    )
    assert (record["try"], record["tries"]) == (1, 4)
    assert record["headers"]["X-Trace"] == "t"
    assert record["headers"]["Iron-Reservation-Id"] == rid
    assert record["headers"]["X-Push-Secret"] == "hdr-***"  # masked
    assert "url-secret-0123456789" not in str(record)
    assert record["ack"]["result"] == "acked"
    assert record["ack"]["via"] == "api"
