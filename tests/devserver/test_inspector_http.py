"""The inspector over HTTP: what pages show, who may use them, the actions and ``/_dev/replay``."""

from __future__ import annotations

import re
from typing import Any

import httpx
from subscriber_servers import Subscribers
from support import wait_until

from ironpush.devserver import DevServer


def csrf(dev: DevServer) -> str:
    page = httpx.get(dev.url + "/_dev/ui").text
    found = re.search(r'<meta name="csrf" content="([^"]+)"', page)
    assert found is not None
    return found.group(1)


def act(dev: DevServer, name: str, form: dict[str, str], **headers: str) -> httpx.Response:
    return httpx.post(f"{dev.url}/_dev/ui/actions/{name}", data=form, headers=headers)


def push_queue(dev: DevServer, name: str, *subscribers: dict[str, Any], **options: Any) -> None:
    options.setdefault("retries_delay", 0.05)
    dev.client().create_queue(name, subscribers=list(subscribers), **options)


def test_pages_show_queues_messages_and_attempts_with_secrets_masked(
    dev: DevServer, subs: Subscribers, queue_name: str
) -> None:
    url = subs.url(500, 200) + "?ironpush_secret=url-secret-0123456789"
    sub = {"name": "billing", "url": url, "headers": {"X-Push-Secret": "hdr-secret-0123456789"}}
    push_queue(dev, queue_name, sub, retries=2, error_queue="errs")
    q = dev.client().queue(queue_name)
    [mid] = q.post({"body": '{"total": 7}', "push_headers": {"X-Trace": "t-1"}})
    q.wait_for_push(mid, timeout=10)

    overview = httpx.get(dev.url + "/_dev/ui")
    queue_page = httpx.get(f"{dev.url}/_dev/ui/q/dev/{queue_name}")
    message = httpx.get(f"{dev.url}/_dev/ui/q/dev/{queue_name}/m/{mid}")
    fragment = httpx.get(f"{dev.url}/_dev/ui/q/dev/{queue_name}/m/{mid}?fragment=attempts")

    assert overview.status_code == queue_page.status_code == message.status_code == 200
    assert overview.headers["content-security-policy"].startswith("default-src 'none'")
    assert queue_name in overview.text
    assert "retries 2, every 0.05s, errors → errs" in overview.text
    assert "billing" in queue_page.text
    assert "X-Trace: t-1" in message.text
    assert "&quot;total&quot;: 7" in message.text  # pretty-printed JSON, escaped
    assert message.text.count("<tr><td>1/3</td>") == 1
    assert "answer 500" in message.text
    assert f"Iron-Message-Id: {mid}" in message.text
    assert fragment.text.startswith('<div class="subscriber"')
    for page in (overview, queue_page, message, fragment):
        assert "url-secret-0123456789" not in page.text
        assert "hdr-secret-0123456789" not in page.text


def test_names_and_bodies_are_escaped(dev: DevServer) -> None:
    name = "<script>alert(1)</script>"
    dev.client().queue(name).post("<img src=x onerror=alert(2)>")
    overview = httpx.get(dev.url + "/_dev/ui").text
    queue_page = httpx.get(f"{dev.url}/_dev/ui/q/dev/%3Cscript%3Ealert(1)%3C%2Fscript%3E").text
    assert "<script>alert" not in overview
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in overview
    assert "<img src=x" not in queue_page
    assert "&lt;img src=x onerror=alert(2)&gt;" in queue_page


def test_actions_need_the_page_token_and_the_same_origin(dev: DevServer, queue_name: str) -> None:
    dev.client().queue(queue_name).post("keep me")
    form = {"project": "dev", "queue": queue_name}
    token = csrf(dev)
    own = dev.url

    refused = [
        act(dev, "clear", form),  # no token
        act(dev, "clear", {**form, "csrf": "guessed"}),
        act(dev, "clear", {**form, "csrf": token}, Origin="https://evil.example"),
        act(dev, "clear", {**form, "csrf": token}, **{"Sec-Fetch-Site": "cross-site"}),
        act(dev, "clear", {**form, "csrf": token}, Host="evil.example"),  # DNS rebinding
    ]

    assert [r.status_code for r in refused] == [403] * 5
    assert dev.client().queue(queue_name).size() == 1
    done = act(dev, "clear", {**form, "csrf": token}, Origin=own)
    assert done.status_code == 303
    assert dev.client().queue(queue_name).size() == 0
    shown = httpx.get(dev.url + done.headers["location"])
    assert "cleared" in shown.text
    assert httpx.get(dev.url + "/_dev/ui/actions/clear").status_code in (404, 405)  # POST only


def test_post_action_validates_and_posts(dev: DevServer, queue_name: str) -> None:
    token = csrf(dev)
    form = {"csrf": token, "project": "dev", "queue": queue_name, "delay": "0"}
    bad_header = act(dev, "post", {**form, "body": "x", "push_headers": "no colon"})
    bad_delay = act(dev, "post", {**form, "body": "x", "delay": "soon"})
    posted = act(dev, "post", {**form, "body": "hello", "push_headers": "X-Trace: 9"})
    assert bad_header.status_code == bad_delay.status_code == 400
    assert "expected Name: value" in bad_header.text
    assert posted.status_code == 303
    [message] = dev.client().queue(queue_name).peek()
    assert (message.body, message.raw["push_headers"]) == ("hello", {"X-Trace": "9"})


def test_replay_control_pushes_the_same_message_again(
    dev: DevServer, subs: Subscribers, queue_name: str
) -> None:
    a_url, b_url = subs.url(200), subs.url(500)
    push_queue(dev, queue_name, {"name": "a", "url": a_url}, {"name": "b", "url": b_url}, retries=0)
    q = dev.client().queue(queue_name)
    [mid] = q.post("job")
    statuses = q.wait_for_push(mid, timeout=10)
    assert sorted(s.status or "" for s in statuses) == ["deleted", "error"]
    replay = {"project": "dev", "queue": queue_name, "message_id": mid}

    done = httpx.post(dev.url + "/_dev/replay", json={**replay, "subscribers": ["b"]})

    assert done.json() == {"message_id": mid, "how": "same message", "subscribers": ["b"]}
    subs.wait_hits(b_url, 2)
    assert len(subs.at(a_url)) == 1  # only b was pushed again
    wait_until(lambda: all(s.done for s in q.get_message_push_statuses(mid)))
    unknown = httpx.post(dev.url + "/_dev/replay", json={**replay, "subscribers": ["zz"]})
    assert unknown.status_code == 404
    assert "no subscriber 'zz'" in unknown.json()["msg"]


def test_replay_of_a_message_no_longer_kept_posts_its_body_for_one_subscriber(
    dev: DevServer, subs: Subscribers, queue_name: str
) -> None:
    a_url, b_url = subs.url(200), subs.url(200)
    push_queue(dev, queue_name, {"name": "a", "url": a_url}, {"name": "b", "url": b_url})
    doc = {
        "project": "dev",
        "queue": queue_name,
        "message_id": "1",
        "subscribers": ["b"],
        "body": "again",
        "push_headers": {"X-Trace": "r"},
    }
    gone = httpx.post(dev.url + "/_dev/replay", json={**doc, "body": None})
    done = httpx.post(dev.url + "/_dev/replay", json=doc)
    assert gone.status_code == 404
    assert "no longer kept" in gone.json()["msg"]
    assert done.json()["how"] == "new message"
    [hit] = subs.wait_hits(b_url, 1)
    assert (hit.body, hit.headers["x-trace"]) == (b"again", "r")
    assert hit.headers["iron-message-id"] == done.json()["message_id"]
    assert dev.wait_idle(queue=queue_name)
    assert subs.at(a_url) == []


def test_replaying_a_message_still_being_pushed_changes_nothing(
    dev: DevServer, subs: Subscribers, queue_name: str
) -> None:
    url = subs.url(202)
    push_queue(dev, queue_name, {"name": "s", "url": url}, retries_delay=60)
    [mid] = dev.client().queue(queue_name).post("x")
    [first] = subs.wait_hits(url, 1)
    again = httpx.post(
        dev.url + "/_dev/replay", json={"project": "dev", "queue": queue_name, "message_id": mid}
    )
    assert again.json() == {"message_id": mid, "how": "already being pushed", "subscribers": ["s"]}
    [status] = dev.client().queue(queue_name).get_message_push_statuses(mid)
    assert (status.status, status.tries) == ("reserved", 1)  # the 202's reservation stands
    assert len(subs.at(url)) == 1
    dev.client().queue(queue_name).delete(
        mid, reservation_id=first.reservation_id, subscriber_name="s"
    )


def test_a_server_with_a_token_wants_it_once_then_keeps_a_cookie() -> None:
    with (
        DevServer(token="ui-t0ken-0123456789") as dev,
        httpx.Client(base_url=dev.url, follow_redirects=True) as browser,
    ):
        assert browser.get("/_dev/ui").status_code == 401
        assert browser.get("/_dev/ui?token=wrong").status_code == 401
        signed = browser.get("/_dev/ui?token=ui-t0ken-0123456789")
        assert signed.status_code == 200  # after the redirect, with the cookie
        cookie = browser.cookies.get("ironpush_inspector")
        assert cookie
        assert "ui-t0ken" not in cookie
        assert browser.get("/_dev/ui/static/inspector.js").status_code == 200
        assert "ui-t0ken-0123456789" not in signed.text
        with browser.stream("GET", "/_dev/events") as stream:  # the page's EventSource
            assert stream.status_code == 200


def test_static_files_ship_with_the_package(dev: DevServer) -> None:
    js = httpx.get(dev.url + "/_dev/ui/static/inspector.js")
    css = httpx.get(dev.url + "/_dev/ui/static/inspector.css")
    assert js.headers["content-type"].startswith("text/javascript")
    assert "EventSource" in js.text
    assert css.status_code == 200
    assert httpx.get(dev.url + "/_dev/ui/static/../app.py").status_code == 404


def test_clients_from_other_machines_are_refused() -> None:
    from starlette.requests import Request

    from ironpush.devserver import DevConfig
    from ironpush.devserver._inspector.guard import Guard

    guard = Guard(DevConfig())

    def request(client: str, host: str = "127.0.0.1:8080") -> Request:
        headers = [(b"host", host.encode())]
        scope = {"type": "http", "client": (client, 50000), "headers": headers, "path": "/"}
        return Request(scope)

    assert guard.refusal(request("192.0.2.7")) == (
        403,
        "the inspector answers clients on this machine (loopback) only",
    )
    assert guard.refusal(request("127.0.0.1")) is None
    assert guard.refusal(request("::1", "[::1]:8080")) is None
    assert guard.refusal(request("127.0.0.1", "localhost:8080")) is None
    assert guard.refusal(request("127.0.0.1", "rebound.example:8080"))[0] == 403


def test_an_error_report_is_replayed_from_its_queue_page(
    dev: DevServer, subs: Subscribers, queue_name: str
) -> None:
    url = subs.url(500, 200)
    errors = queue_name + "-errors"
    push_queue(dev, queue_name, {"name": "s", "url": url}, retries=0, error_queue=errors)
    [mid] = dev.client().queue(queue_name).post("job")
    [report] = wait_until(lambda: dev.client().queue(errors).peek())
    page = httpx.get(f"{dev.url}/_dev/ui/q/dev/{errors}").text
    assert "Error reports" in page
    assert f'data-testid="replay-report-{report.id}"' in page
    form = {"csrf": csrf(dev), "project": "dev", "queue": errors, "report_id": report.id}

    done = act(dev, "replay-report", form)

    assert done.status_code == 303
    [_, again] = subs.wait_hits(url, 2)
    assert again.headers["iron-message-id"] == mid  # the same message, pushed again
    assert dev.client().queue(errors).size() == 0
    shown = httpx.get(dev.url + done.headers["location"]).text
    assert f"replayed {mid} (same message) and deleted report {report.id}" in shown
