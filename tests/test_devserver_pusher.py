"""The dev server's pusher, over real sockets: real HTTP subscribers record every push."""

from __future__ import annotations

import itertools
import socket
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import pytest
from devserver.subscriber_servers import Hit, Subscribers
from support import wait_until

from ironpush._errors import ReservationExpired
from ironpush._protocol import parse_delivery
from ironpush.client import IronMQ
from ironpush.client._models import ErrorReport
from ironpush.devserver import DevServer

T = TypeVar("T")
RETRY = 0.15  # retries_delay used by the timing tests (the hosted minimum is 3 s)


@pytest.fixture(scope="module")
def recorder() -> Iterator[Subscribers]:
    with Subscribers() as rec:
        yield rec


@pytest.fixture(scope="module")
def dev() -> Iterator[DevServer]:
    with DevServer(push_timeout=2.0) as server:
        yield server


@pytest.fixture(scope="module")
def mq(dev: DevServer) -> Iterator[IronMQ]:
    with dev.client() as client:
        yield client


def push_queue(mq: IronMQ, name: str, *subscribers: Any, **options: Any) -> str:
    options.setdefault("retries_delay", RETRY)
    mq.create_queue(name, subscribers=list(subscribers), **options)
    return name


def gaps(hits: list[Hit]) -> list[float]:
    return [b.at - a.at for a, b in itertools.pairwise(hits)]


# --------------------------------------------------------------------------- what is sent


def test_push_sends_raw_body_and_ironmq_headers(
    mq: IronMQ, dev: DevServer, recorder: Subscribers, queue_name: str
) -> None:
    url = recorder.url(200)
    sub = {"name": "first", "url": url, "headers": {"X-Push-Secret": "abc"}}
    push_queue(mq, queue_name, sub)
    [mid] = mq.queue(queue_name).post({"body": '{"n": 1}', "push_headers": {"X-Trace": "t-1"}})

    [hit] = wait_until(lambda: recorder.at(url))
    statuses = mq.queue(queue_name).wait_for_push(mid, timeout=5)

    assert hit.body == b'{"n": 1}'
    h = hit.headers
    assert h["user-agent"] == "IronMQ Pusherd"
    assert h["content-type"] == "text/plain; encoding=utf-8"
    assert h["iron-message-id"] == mid
    assert h["iron-subscriber-name"] == "first"
    assert len(h["iron-reservation-id"]) >= 16
    assert h["x-push-secret"] == "abc"
    assert h["x-trace"] == "t-1"
    assert h["iron-subscriber-message-url"] == (
        f"{dev.url}/3/projects/dev/queues/{quote(queue_name, safe='')}/messages/{mid}"
        f"/subscribers/first?reservation_id={h['iron-reservation-id']}"
    )
    [status] = statuses
    assert (status.subscriber_name, status.url, status.status) == ("first", url, "deleted")
    assert (status.status_code, status.tries, status.retries_remaining) == (200, 1, 3)
    assert status.last_try_at is not None
    assert status.last_try_at.endswith("Z")
    datetime.fromisoformat(status.last_try_at.replace("Z", "+00:00"))
    assert mq.queue(queue_name).size() == 0  # delivered to every subscriber: removed


def test_subscriber_headers_override_content_type_and_user_agent(
    mq: IronMQ, recorder: Subscribers, queue_name: str
) -> None:
    url = recorder.url(200)
    headers = {"Content-Type": "application/json", "User-Agent": "my-pusher"}
    push_queue(mq, queue_name, {"name": "s", "url": url, "headers": headers})
    mq.queue(queue_name).post("{}")
    [hit] = wait_until(lambda: recorder.at(url))
    assert hit.headers["content-type"] == "application/json"
    assert hit.headers["user-agent"] == "my-pusher"


def test_delayed_push_message_is_pushed_after_its_delay(
    mq: IronMQ, recorder: Subscribers, queue_name: str
) -> None:
    url = recorder.url(200)
    push_queue(mq, queue_name, {"name": "s", "url": url})
    posted = time.monotonic()
    mq.queue(queue_name).post({"body": "later", "delay": 0.3})
    [hit] = wait_until(lambda: recorder.at(url))
    assert hit.at - posted >= 0.3  # never before its delay


# --------------------------------------------------------------------------- failures and retries


def test_failing_subscriber_is_retried_after_retries_delay_then_reported(
    mq: IronMQ, recorder: Subscribers, queue_name: str
) -> None:
    url = recorder.url(503)
    errors = f"{queue_name}-errors"
    push_queue(mq, queue_name, {"name": "s", "url": url}, retries=2, error_queue=errors)
    [mid] = mq.queue(queue_name).post({"body": "fails", "push_headers": {"X-Trace": "t"}})

    [status] = mq.queue(queue_name).wait_for_push(mid, timeout=5)
    hits = recorder.at(url)
    assert len(hits) == 3  # retries + 1 tries in all
    assert all(gap >= RETRY for gap in gaps(hits)), gaps(hits)  # never before retries_delay
    assert len({h.headers["iron-reservation-id"] for h in hits}) == 3
    assert {h.headers["iron-message-id"] for h in hits} == {mid}
    assert (status.status, status.status_code, status.tries) == ("error", 503, 3)
    assert status.retries_remaining == 0
    assert status.msg == "answer 503"

    [report_msg] = mq.queue(errors).reserve(max=5)
    report = ErrorReport.parse(report_msg.body)
    assert (report.source_msg_id, report.body) == (mid, "fails")
    assert report.headers["X-Trace"] == "t"
    [failed] = report.subscribers
    assert (failed.name, failed.url, failed.code, failed.msg) == ("s", url, 503, "answer 503")
    assert mq.queue(queue_name).get_message_by_id(mid).body == "fails"  # still readable by id


def test_other_2xx_and_redirects_are_failures_and_never_followed(
    mq: IronMQ, recorder: Subscribers, queue_name: str
) -> None:
    url = recorder.url(201, 302, 204, 200)
    push_queue(mq, queue_name, {"name": "s", "url": url}, retries=5)
    [mid] = mq.queue(queue_name).post("x")
    [status] = mq.queue(queue_name).wait_for_push(mid, timeout=5)
    assert [h.path for h in recorder.hits if h.path == "/elsewhere"] == []
    assert len(recorder.at(url)) == 4
    assert (status.status, status.tries, status.retries_remaining) == ("deleted", 4, 2)


def test_connection_refused_is_a_failed_try(mq: IronMQ, queue_name: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    errors = f"{queue_name}-errors"
    url = f"http://127.0.0.1:{port}/gone"
    push_queue(mq, queue_name, {"name": "s", "url": url}, retries=1, error_queue=errors)
    [mid] = mq.queue(queue_name).post("x")
    [status] = mq.queue(queue_name).wait_for_push(mid, timeout=5)
    assert (status.status, status.tries, status.status_code) == ("error", 2, None)
    assert status.msg is not None
    assert "connection" in status.msg
    [failed] = ErrorReport.parse(mq.queue(errors).reserve()[0].body).subscribers
    assert failed.code is None
    assert failed.msg == status.msg


def test_no_answer_within_push_timeout_is_a_failed_try(
    recorder: Subscribers, queue_name: str
) -> None:
    with DevServer(push_timeout=0.2) as dev, dev.client() as mq:
        slow, fast = recorder.url(200, query="sleep=2"), recorder.url(200)
        push_queue(mq, queue_name, {"name": "slow", "url": slow}, retries=1)
        [mid] = mq.queue(queue_name).post("x")
        [status] = mq.queue(queue_name).wait_for_push(mid, timeout=5)
        assert (status.status, status.tries, status.status_code) == ("error", 2, None)
        assert status.msg == "no answer within 0.2 s"
        tries = dev.deliveries(message_id=mid)
        assert [t["try"] for t in tries] == [1, 2]
        # uvloop's timers have millisecond granularity
        assert all(t["duration_ms"] / 1000 >= 0.195 for t in tries), tries
        # a subscriber that answers in time is unaffected by the short timeout
        mq.queue(queue_name).replace_subscribers({"name": "fast", "url": fast})
        [mid2] = mq.queue(queue_name).post("y")
        [ok] = mq.queue(queue_name).wait_for_push(mid2, timeout=5)
        assert (ok.status, ok.tries) == ("deleted", 1)


# --------------------------------------------------------------------------- 202 and acks


def test_202_reserves_until_acknowledged_through_the_api(
    mq: IronMQ, dev: DevServer, recorder: Subscribers, queue_name: str
) -> None:
    url = recorder.url(202)
    push_queue(mq, queue_name, {"name": "s", "url": url}, retries_delay=5)
    [mid] = mq.queue(queue_name).post("long job")
    [hit] = wait_until(lambda: recorder.at(url))
    [status] = wait_until(lambda: mq.queue(queue_name).get_message_push_statuses(mid))
    wait_until(lambda: mq.queue(queue_name).get_message_push_statuses(mid)[0].status == "reserved")
    assert mq.queue(queue_name).size() == 1

    mq.acknowledge(queue_name, parse_delivery(hit.headers))

    [status] = mq.queue(queue_name).get_message_push_statuses(mid)
    assert (status.status, status.status_code, status.tries) == ("deleted", 202, 1)
    assert mq.queue(queue_name).size() == 0
    assert dev.wait_idle(queue=queue_name, timeout=1)
    mq.acknowledge(queue_name, parse_delivery(hit.headers))  # a repeated ack is harmless


def test_202_acknowledged_by_delete_on_the_subscriber_message_url(
    recorder: Subscribers, queue_name: str
) -> None:
    # The ack URL needs no body; on a server that requires a token it needs the token too
    # (header, or the URL's own ?oauth=): issue 13 point 9.
    token = "s3cret-token-123"
    with DevServer(token=token) as dev, dev.client() as mq:
        url = recorder.url(202)
        push_queue(mq, queue_name, {"name": "s", "url": url}, retries_delay=5)
        [mid] = mq.queue(queue_name).post("long job")
        [hit] = wait_until(lambda: recorder.at(url))
        ack_url = hit.headers["iron-subscriber-message-url"]
        assert ack_url.startswith(dev.url)
        wait_until(
            lambda: mq.queue(queue_name).get_message_push_statuses(mid)[0].status == "reserved"
        )

        assert httpx.delete(ack_url).status_code == 401  # no token: refused, nothing acked
        assert mq.queue(queue_name).get_message_push_statuses(mid)[0].status == "reserved"
        response = httpx.delete(ack_url, headers={"Authorization": f"OAuth {token}"})

        assert response.status_code == 200
        assert response.json() == {"msg": "Deleted"}
        [status] = mq.queue(queue_name).get_message_push_statuses(mid)
        assert status.status == "deleted"
        wrong = ack_url.replace("reservation_id=", "reservation_id=x") + f"&oauth={token}"
        assert httpx.delete(wrong).status_code == 403


def test_unacknowledged_202_is_pushed_again_with_a_new_reservation(
    mq: IronMQ, recorder: Subscribers, queue_name: str
) -> None:
    url = recorder.url(202)
    push_queue(mq, queue_name, {"name": "s", "url": url}, retries=1)
    [mid] = mq.queue(queue_name).post("job")
    [status] = mq.queue(queue_name).wait_for_push(mid, timeout=5)
    first, second = recorder.at(url)
    assert second.at - first.at >= RETRY
    assert first.headers["iron-reservation-id"] != second.headers["iron-reservation-id"]
    assert (status.status, status.tries, status.status_code) == ("error", 2, 202)
    with pytest.raises(ReservationExpired):
        mq.acknowledge(queue_name, parse_delivery(first.headers))


def test_ack_with_a_stale_reservation_is_refused_while_a_newer_one_works(
    mq: IronMQ, recorder: Subscribers, queue_name: str
) -> None:
    url = recorder.url(202)
    push_queue(mq, queue_name, {"name": "s", "url": url}, retries=50)
    [mid] = mq.queue(queue_name).post("job")
    first = wait_until(lambda: len(recorder.at(url)) >= 2 and recorder.at(url)[0])
    with pytest.raises(ReservationExpired):
        mq.acknowledge(queue_name, parse_delivery(first.headers))

    def ack_newest() -> bool:
        # a reservation lasts only retries_delay (0.15 s): on a slow machine the newest one
        # may run out before the ack lands; then the next push brings a newer one
        try:
            mq.acknowledge(queue_name, parse_delivery(recorder.at(url)[-1].headers))
        except ReservationExpired:
            return False
        return True

    wait_until(ack_newest)
    [status] = mq.queue(queue_name).get_message_push_statuses(mid)
    assert status.status == "deleted"


# --------------------------------------------------------------------------- multicast / unicast


def test_multicast_subscribers_are_independent(
    mq: IronMQ, recorder: Subscribers, queue_name: str
) -> None:
    good, flaky = recorder.url(200), recorder.url(500, 500, 200)
    push_queue(mq, queue_name, {"name": "good", "url": good}, {"name": "flaky", "url": flaky})
    [mid] = mq.queue(queue_name).post("fan out")
    statuses = {s.subscriber_name: s for s in mq.queue(queue_name).wait_for_push(mid, timeout=5)}
    assert len(recorder.at(good)) == 1
    assert len(recorder.at(flaky)) == 3
    assert (statuses["good"].status, statuses["good"].tries) == ("deleted", 1)
    assert (statuses["flaky"].status, statuses["flaky"].tries) == ("deleted", 3)
    assert recorder.at(good)[0].headers["iron-subscriber-name"] == "good"
    assert mq.queue(queue_name).size() == 0


def test_multicast_error_queue_gets_one_report_per_failed_subscriber(
    mq: IronMQ, recorder: Subscribers, queue_name: str
) -> None:
    errors = f"{queue_name}-errors"
    a, b, ok = recorder.url(500), recorder.url(404), recorder.url(200)
    subs = [{"name": "a", "url": a}, {"name": "b", "url": b}, {"name": "ok", "url": ok}]
    push_queue(mq, queue_name, *subs, retries=0, error_queue=errors)
    [mid] = mq.queue(queue_name).post("x")
    mq.queue(queue_name).wait_for_push(mid, timeout=5)
    reports = [ErrorReport.parse(m.body) for m in mq.queue(errors).reserve(max=10)]
    failed = sorted((r.subscribers[0].name, r.subscribers[0].code) for r in reports)
    assert failed == [("a", 500), ("b", 404)]
    assert all(len(r.subscribers) == 1 and r.source_msg_id == mid for r in reports)


def test_unicast_tries_subscribers_in_order_and_moves_on_at_once(
    mq: IronMQ, recorder: Subscribers, queue_name: str
) -> None:
    a, b, c = recorder.url(500), recorder.url(503), recorder.url(200)
    subs = [{"name": "a", "url": a}, {"name": "b", "url": b}, {"name": "c", "url": c}]
    push_queue(mq, queue_name, *subs, type="unicast", retries_delay=30)
    [mid] = mq.queue(queue_name).post("one of you")
    statuses = {s.subscriber_name: s for s in mq.queue(queue_name).wait_for_push(mid, timeout=5)}
    hits = [recorder.at(u)[0] for u in (a, b, c)]
    assert [len(recorder.at(u)) for u in (a, b, c)] == [1, 1, 1]
    assert hits[0].at < hits[1].at < hits[2].at
    assert hits[2].at - hits[0].at < 30  # under retries_delay (30): no wait between them
    assert statuses["c"].status == "deleted"
    assert (statuses["a"].status, statuses["a"].status_code) == ("error", 500)
    assert (statuses["b"].status, statuses["b"].status_code) == ("error", 503)


def test_unicast_repeats_the_round_after_retries_delay_and_reports_once(
    mq: IronMQ, recorder: Subscribers, queue_name: str
) -> None:
    errors = f"{queue_name}-errors"
    a, b = recorder.url(500), recorder.url(502)
    subs = [{"name": "a", "url": a}, {"name": "b", "url": b}]
    push_queue(mq, queue_name, *subs, type="unicast", retries=1, error_queue=errors)
    [mid] = mq.queue(queue_name).post("nobody wants me")
    statuses = mq.queue(queue_name).wait_for_push(mid, timeout=5)
    a1, a2 = recorder.at(a)
    b1, b2 = recorder.at(b)
    assert a1.at < b1.at < a2.at < b2.at
    assert a2.at - b1.at >= RETRY  # the next round waits retries_delay
    assert {(s.subscriber_name, s.status, s.tries) for s in statuses} == {
        ("a", "error", 2),
        ("b", "error", 2),
    }
    [report] = [ErrorReport.parse(m.body) for m in mq.queue(errors).reserve(max=10)]
    assert [(s.name, s.code) for s in report.subscribers] == [("a", 500), ("b", 502)]


def test_unicast_skips_subscribers_after_one_succeeds(
    mq: IronMQ, recorder: Subscribers, queue_name: str
) -> None:
    a, b = recorder.url(200), recorder.url(200)
    push_queue(mq, queue_name, {"name": "a", "url": a}, {"name": "b", "url": b}, type="unicast")
    mids = mq.queue(queue_name).post("1", "2", "3")
    for mid in mids:
        [status] = mq.queue(queue_name).wait_for_push(mid, timeout=5)
        assert (status.subscriber_name, status.status) == ("a", "deleted")
    assert len(recorder.at(a)) == 3
    assert recorder.at(b) == []


# --------------------------------------------------------------------------- subscribers over time


def test_only_subscribers_present_at_post_time_get_a_message(
    mq: IronMQ, recorder: Subscribers, queue_name: str
) -> None:
    holder, late = recorder.url(202), recorder.url(200)
    push_queue(mq, queue_name, {"name": "holder", "url": holder}, retries_delay=5)
    q = mq.queue(queue_name)
    [first] = q.post("before")
    wait_until(lambda: recorder.at(holder))
    q.add_subscribers({"name": "late", "url": late})
    [second] = q.post("after")
    wait_until(lambda: recorder.at(late))
    assert [h.body for h in recorder.at(late)] == [b"after"]
    assert [s.subscriber_name for s in q.get_message_push_statuses(first)] == ["holder"]

    # With every subscriber removed, new messages are not pushed: they wait on the queue.
    q.remove_subscribers("holder", "late")
    [third] = q.post("nobody")
    q.add_subscribers({"name": "late", "url": late})
    assert q.get_message_push_statuses(third) == []
    [held] = q.reserve()
    assert (held.id, held.body) == (third, "nobody")
    assert second != third


def test_removing_a_subscriber_drops_its_pending_pushes(
    mq: IronMQ, dev: DevServer, recorder: Subscribers, queue_name: str
) -> None:
    ok, failing = recorder.url(200), recorder.url(500)
    push_queue(
        mq, queue_name, {"name": "ok", "url": ok}, {"name": "bad", "url": failing}, retries=50
    )
    [mid] = mq.queue(queue_name).post("x")
    wait_until(lambda: len(recorder.at(failing)) >= 2)
    mq.queue(queue_name).remove_subscribers(failing)  # by URL
    assert dev.wait_idle(queue=queue_name, timeout=5)
    assert [s.subscriber_name for s in mq.queue(queue_name).get_message_push_statuses(mid)] == [
        "ok"
    ]


def test_ironmq_scheme_subscriber_fans_out_into_another_queue(
    mq: IronMQ, recorder: Subscribers, queue_name: str
) -> None:
    target = f"{queue_name}-copy"
    push_queue(mq, queue_name, {"name": "copy", "url": f"ironmq:///{target}"})
    [mid] = mq.queue(queue_name).post({"body": "dup", "push_headers": {"X-A": "1"}})
    [status] = mq.queue(queue_name).wait_for_push(mid, timeout=5)
    assert status.status == "deleted"
    [copied] = mq.queue(target).reserve()
    assert copied.body == "dup"


# --------------------------------------------------------------------------- concurrency


def test_a_slow_subscriber_does_not_delay_other_messages(
    recorder: Subscribers, queue_name: str
) -> None:
    slow, fast = recorder.url(200, hold=True), recorder.url(200)
    with DevServer(push_timeout=30) as dev, dev.client() as mq:  # no push times out while held
        push_queue(mq, f"{queue_name}-slow", {"name": "s", "url": slow})
        push_queue(mq, queue_name, {"name": "f", "url": fast})
        slow_ids = mq.queue(f"{queue_name}-slow").post(*["slow"] * 5)
        try:
            # All five reach the subscriber while none is answered: they do not wait in turn...
            recorder.wait_hits(slow, 5)
            # ...nor does another queue's message wait for them.
            mq.queue(queue_name).post("fast")
            recorder.wait_hits(fast, 1)
            assert len(recorder.at(slow)) == 5  # still unanswered, not retried
        finally:
            recorder.release()
        for mid in slow_ids:
            [status] = mq.queue(f"{queue_name}-slow").wait_for_push(mid, timeout=10)
            assert status.status == "deleted"
        recorder.hold_again()


def test_push_statuses_of_a_pull_message_are_empty_and_unknown_ids_404(
    mq: IronMQ, queue_name: str
) -> None:
    [mid] = mq.queue(queue_name).post("pull")
    assert mq.queue(queue_name).get_message_push_statuses(mid) == []
    response = httpx.get(
        f"{mq.settings.base_url}/queues/{quote(queue_name, safe='')}/messages/123/subscribers",
        headers={"Authorization": "OAuth dev"},
    )
    assert response.status_code == 404
    assert response.json() == {"msg": "Message not found"}


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
