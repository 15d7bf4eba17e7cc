"""multicast and unicast queues over real sockets: independent subscribers, subscribers in
order, subscribers added and removed, ``ironmq://`` fan-out, concurrency."""

from __future__ import annotations

from push_kit import RETRY, push_queue
from subscriber_servers import Subscribers
from support import wait_until

from ironpush.client import IronMQ
from ironpush.client._models import ErrorReport
from ironpush.devserver import DevServer

DEV_OPTIONS = {"push_timeout": 2.0}  # the conftest's dev server: a push attempt times out in 2 s


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
