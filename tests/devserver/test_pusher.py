"""The dev server's pusher, over real sockets: what a subscriber receives, failures and
retries, 202s and their acks. Real HTTP subscribers record every push."""

from __future__ import annotations

import socket
import time
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from push_kit import RETRY, gaps, push_queue
from subscriber_servers import Subscribers
from support import wait_until

from ironpush._errors import ReservationExpired
from ironpush._protocol import parse_delivery
from ironpush.client import IronMQ
from ironpush.client._models import ErrorReport
from ironpush.devserver import DevServer

DEV_OPTIONS = {"push_timeout": 2.0}  # the conftest's dev server: a push attempt times out in 2 s


def posted_to(mq: IronMQ, queue_name: str, url: str, body: Any, **settings: Any) -> str:
    """A push queue (``settings``) whose one subscriber ``s`` is ``url``; ``body`` posted to it,
    its message id."""
    push_queue(mq, queue_name, {"name": "s", "url": url}, **settings)
    [mid] = mq.queue(queue_name).post(body)
    return str(mid)


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
    mid = posted_to(
        mq,
        queue_name,
        url,
        {"body": "fails", "push_headers": {"X-Trace": "t"}},
        retries=2,
        error_queue=errors,
    )

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
    mid = posted_to(mq, queue_name, url, "x", retries=5)
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
    mid = posted_to(mq, queue_name, url, "x", retries=1, error_queue=errors)
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
    mid = posted_to(mq, queue_name, url, "long job", retries_delay=5)
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
        mid = posted_to(mq, queue_name, url, "long job", retries_delay=5)
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
    mid = posted_to(mq, queue_name, url, "job", retries=1)
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
    mid = posted_to(mq, queue_name, url, "job", retries=50)
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
