"""Bad HTTP against the dev server (issue 6, point 2): random paths and traversals, malformed
framing, oversized bodies, garbage on a real socket, and the regressions the fuzzers found.
The harness and the guarantees: fuzz_kit.py and test_fuzz_api.py."""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import quote, unquote

import pytest
from fuzz_kit import (
    FUZZ,
    HOOK,
    METHODS,
    PROJECT,
    SENTINEL,
    Dev,
    bodies,
    dev,
    fresh,
    messages,
    prepare,
)
from hypothesis import assume, given
from hypothesis import strategies as st
from support import exchange_raw

from ironpush.devserver import DevConfig, DevServer

__all__ = ["dev", "fresh"]  # fixtures


ODD_SEGMENTS = (
    "..",
    ".",
    "%2e%2e",
    "%2E%2E%2F",
    "..%2F..%2F",
    "%00",
    "%ff",
    "%",
    "%zz",
    "_dev",
    "reset",
    "3",
    "projects",
    "queues",
    "messages",
    SENTINEL,
    "keep",
    "",
    "a" * 3000,
)
raw_paths = st.lists(st.sampled_from(ODD_SEGMENTS) | st.text(max_size=8), max_size=10).map(
    lambda parts: ("/" + "/".join(quote(p, safe="%.") for p in parts)).encode("ascii")
)
TRAVERSALS = (
    b"/3/projects/fz/queues/..%2F..%2F_dev/reset",
    b"/3/projects/fz/queues/..%2F..%2F..%2F..%2F_dev%2Freset",
    b"/3/projects/fz/queues/../../../../_dev/reset",
    b"/3/projects/fz/queues/%2e%2e/%2e%2e/%2e%2e/%2e%2e/_dev/reset",
    b"/3/projects/fz/../sentinel/queues/keep",
    b"/3/projects/fz/queues/..%2F..%2Fsentinel%2Fqueues%2Fkeep",
    b"/3/projects/fz/%2e%2e/sentinel/queues/keep",
    b"/3/projects/sentinel%00/queues/keep",
    b"/3/projects/fz/queues/keep/../../../sentinel/queues/keep/messages",
    b"/_dev/reset/..",
    b"/_dev/./reset",
    b"/_dev/reset%00",
    b"//_dev/reset",
)


@FUZZ
@given(
    request=st.tuples(raw_paths, st.sampled_from(METHODS))
    | st.tuples(st.sampled_from(TRAVERSALS), st.sampled_from(["DELETE", "POST", "PUT"])),
    keep_raw=st.booleans(),
    body=bodies,
)
def test_random_paths_and_traversal_attempts_get_4xx_and_change_nothing(
    dev: Dev, request: tuple[bytes, str], keep_raw: bool, body: bytes | None
) -> None:
    raw_path, method = request
    path = unquote(raw_path.decode("ascii"), errors="replace")  # what servers put in "path"
    # Requests that really address the control plane or the sentinel project do what they say
    # (a reset, a delete): leave them out. Traversals towards them must change nothing.
    assume(path.rstrip("/") not in ("/_dev/reset", "/_dev/idle"))
    segments = (
        [unquote(p) for p in raw_path.decode("ascii").split("/")[1:]]
        if keep_raw
        else path.split("/")[1:]
    )
    assume(segments[:3] != ["3", "projects", SENTINEL])

    answer = dev.raw(
        method, path, raw_path=raw_path if keep_raw else None, chunks=[body] if body else []
    )

    assert answer.status is not None, path
    assert answer.status < 500, (path, answer)
    if answer.status >= 400 and method != "HEAD":
        assert isinstance(json.loads(answer.body)["msg"], str), answer
    dev.check()


HEADER_VALUES = (
    b"\xb2",
    b"-1",
    b"abc",
    b"99999999999999999999999999",
    b"\xff\xfe",
    b"\r\n",
    b"\x00",
    "€".encode(),
    b"",
)


@FUZZ
@given(
    headers=st.lists(
        st.tuples(
            st.sampled_from([b"content-length", b"content-type", b"x-subscribers-x"])
            | st.binary(max_size=16),
            st.sampled_from(HEADER_VALUES) | st.binary(max_size=40),
        ),
        max_size=6,
    ),
    chunks=st.lists(st.binary(max_size=100) | st.just(json.dumps(messages(1)).encode())),
    disconnect=st.booleans(),
    endpoint=st.sampled_from(["messages", "webhook", "reservations"]),
)
def test_malformed_framing_never_gives_a_5xx(
    dev: Dev,
    headers: list[tuple[bytes, bytes]],
    chunks: list[bytes],
    disconnect: bool,
    endpoint: str,
) -> None:
    path = f"/3/projects/{PROJECT}/queues/fz-pull/{endpoint}"
    answer = dev.raw(
        "POST", path, raw_path=path.encode(), headers=headers, chunks=chunks, disconnect=disconnect
    )
    assert answer.status is None or answer.status < 500, answer
    dev.check(queue="fz-pull")


# --------------------------------------------------------------------------- regressions


def test_regression_deeply_nested_json_is_400(dev: Dev) -> None:
    # Found by the fuzzer: RecursionError from json.loads -> 500.
    answer = dev.request("POST", "/3/projects/fz/queues/fz-pull/messages", content=b"[" * 50_000)
    assert (answer.status_code, answer.json()) == (400, {"msg": "Invalid JSON in request body"})


def test_regression_integer_too_large_for_a_float_is_400(dev: Dev) -> None:
    # Found by the fuzzer: math.isfinite(10**400) raised OverflowError -> 500.
    prepare(dev)  # the fuzzer may have deleted fz-pull (reserving on no queue is a 404)
    body = {"timeout": 10**400}
    answer = dev.api("POST", PROJECT, "queues", "fz-pull", "reservations", body=body)
    assert answer.status_code == 400
    assert answer.json()["msg"].startswith("timeout must be > 0 and <= 86400")


@pytest.mark.parametrize(
    "what",
    [
        {"messages": [{"body": "\ud800"}]},
        {"messages": [{"body": "x", "push_headers": {"\udfff": "v"}}]},
        {"queue": {"push": {"subscribers": [{"name": "\ud800", "url": HOOK}]}}},
        {"queue": {"push": {"subscribers": [{"url": HOOK, "headers": {"X-A": "\udc80"}}]}}},
        {"queue": {"alerts": [{"type": "fixed", "trigger": 1, "queue": "\ud800"}]}},
    ],
)
def test_regression_lone_surrogates_are_400_and_never_stored(dev: Dev, what: Any) -> None:
    # Found by the fuzzer: a JSON "\ud800" escape was accepted, then broke the answer (500) and
    # every later read of the queue (its subscribers or alerts could no longer be rendered).
    name = "surrogates-push" if "queue" in what and "push" in what["queue"] else "surrogates"
    if "messages" in what:
        answer = dev.api("POST", PROJECT, "queues", name, "messages", body=what)
    else:
        answer = dev.api("PUT", PROJECT, "queues", name, body=what)
    assert answer.status_code == 400, answer.text
    assert "lone surrogates" in answer.json()["msg"]
    dev.check(queue=name)


def test_regression_unicode_digits_in_limit_and_content_length(dev: Dev) -> None:
    # Found by the fuzzer: "²".isdigit() is true but int("²") raises -> 500.
    answer = dev.request("GET", "/_dev/deliveries", params={"limit": "²"})
    assert (answer.status_code, answer.json()) == (400, {"msg": "limit must be an integer"})
    path = f"/3/projects/{PROJECT}/queues/fz-pull/messages"
    raw = dev.raw(
        "POST",
        path,
        raw_path=path.encode(),
        headers=[(b"content-length", "²".encode("latin-1"))],
        chunks=[json.dumps(messages(1)).encode()],
    )
    assert raw.status == 201


def test_regression_a_client_leaving_mid_body_is_a_4xx_not_a_logged_500(
    dev: Dev, caplog: pytest.LogCaptureFixture
) -> None:
    # Found by the fuzzer: Starlette's ClientDisconnect reached the "unexpected error" branch.
    path = f"/3/projects/{PROJECT}/queues/fz-pull/messages"
    with caplog.at_level(logging.ERROR, logger="ironpush"):
        answer = dev.raw("POST", path, raw_path=path.encode(), chunks=[b'{"mess'], disconnect=True)
    assert answer.status == 400
    assert "disconnected" in json.loads(answer.body)["msg"]
    assert caplog.records == []


@pytest.mark.parametrize("method", ["TRACE", "CONNECT", "FOO"])
def test_regression_unknown_methods_get_a_json_405(dev: Dev, method: str) -> None:
    # Found by the fuzzer: Starlette answered methods outside the route's list in plain text.
    answer = dev.request(method, f"/3/projects/{PROJECT}/queues")
    assert (answer.status_code, answer.json()) == (405, {"msg": "Method Not Allowed"})


def test_traversal_to_the_control_plane_or_another_project_changes_nothing(fresh: Dev) -> None:
    # A fresh server: on the shared one the fuzzer may have created a queue literally named
    # "../../_dev/reset" (a valid name), which a DELETE then rightly deletes.
    prepare(fresh)
    for raw_path in TRAVERSALS:
        for method in ("POST", "DELETE", "GET"):
            path = unquote(raw_path.decode("ascii"))
            answer = fresh.raw(method, path, raw_path=raw_path)
            assert answer.status in (404, 405), (raw_path, answer)
            fresh.check()  # the sentinel project still has its queues and messages
    assert set(fresh.state()["projects"][PROJECT]) == {"fz-pull", "fz-push"}  # no reset


def test_bodies_over_the_request_limit_are_413_declared_or_streamed(dev: Dev) -> None:
    limit = DevConfig().max_request_size
    path = f"/3/projects/{PROJECT}/queues/fz-pull/messages"
    declared = dev.raw(
        "POST",
        path,
        raw_path=path.encode(),
        headers=[(b"content-length", str(limit + 1).encode())],
        chunks=[b"{}"],
    )
    assert declared.status == 413
    streamed = dev.raw("POST", path, raw_path=path.encode(), chunks=[b" " * (1 << 20)] * 9)
    assert streamed.status == 413
    assert json.loads(streamed.body)["msg"].startswith("request body is larger than")
    dev.check()


# --------------------------------------------------------------------------- real socket


def test_real_dev_server_answers_garbage_with_4xx_and_keeps_serving() -> None:
    head = b"POST /3/projects/dev/queues/q/messages HTTP/1.1\r\nHost: t\r\n"
    garbage = [
        (b"GARBAGE\r\n\r\n", False),
        (head + b"Content-Length: abc\r\n\r\n", False),
        (head + b"Content-Length: 5\r\nContent-Length: 9\r\n\r\nhello", False),
        (head + b"X-Big: " + b"a" * 200_000 + b"\r\n\r\n", False),
        (head + b"Transfer-Encoding: chunked\r\n\r\nZZ\r\n{}\r\n0\r\n\r\n", False),
        (head + b"Content-Length: 3\r\n\r\n[[[", False),
        (head + b"Content-Length: 2\r\nX: \xff\xfe\r\n\r\n{}", False),
        (head + b"Content-Length: 100\r\n\r\n{", True),  # the client goes away mid-body
        (b"GET /3/projects/dev/queues/%2e%2e%2F%2e%2e%2F_dev%2Freset HTTP/1.1\r\n\r\n", False),
        (b"POST /_dev/reset/.. HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n", False),
    ]
    with DevServer() as server, server.client() as mq:
        mq.queue("q").post("before")
        for data, half_close in garbage:
            status = exchange_raw(server.port, data, half_close=half_close)
            assert status is None or 400 <= status < 500, (data[:60], status)
            assert mq.queue("q").size() == 1  # still serving; nothing posted, nothing reset
        assert server.state()["projects"]["dev"]["q"]["size"] == 1
