"""The dev server's refusals: precise 400s for bad input, sizes, unknown routes, the token and
the fixed project."""

from __future__ import annotations

import logging
from typing import TypeVar

import httpx
import pytest
from api_kit import qpath

from ironpush._errors import NotFound, Unauthorized
from ironpush.client import IronMQ
from ironpush.devserver import DevServer

T = TypeVar("T")


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
