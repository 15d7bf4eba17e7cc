"""What the receiver fuzzer found, pinned as plain tests, and bad HTTP over real sockets."""

from __future__ import annotations

import httpx
import pytest
from support import exchange_raw

from ironpush._signing import push_secret
from ironpush.receiver._outcomes import PushMessage
from ironpush.receiver._router import PushRouter
from ironpush.server_thread import ServerThread

from .fuzz_kit import BY_PATH, KEYS, LIMIT, SECRET, Call, Receiver, build_push, fresh_id

# --------------------------------------------------------------------------- regressions


def test_regression_deeply_nested_json_on_a_json_route_is_400_not_a_crash(rx: Receiver) -> None:
    # Found by the fuzzer: json.loads raised RecursionError (not ValueError) -> a 500.
    route = BY_PATH["/json"]
    before = len(rx.calls)
    answer = rx.request(
        route.path, headers=rx.valid_headers(route, fresh_id()), chunks=[b"[" * LIMIT]
    )
    assert (answer.status, answer.error()) == (400, "body is not valid JSON")
    assert len(rx.calls) == before


@pytest.mark.parametrize("escape", [b"%E2%82%AC", b"%FF", b"%C3%A9abc"])
def test_regression_non_latin1_query_secret_is_403_not_a_crash(rx: Receiver, escape: bytes) -> None:
    # Found by the fuzzer: the query secret was encoded as latin-1 -> UnicodeEncodeError.
    route = BY_PATH["/plain"]
    headers = [h for h in rx.valid_headers(route, fresh_id()) if h[0] != SECRET]
    answer = rx.request(route.path, headers=headers, query=b"ironpush_secret=" + escape)
    assert (answer.status, answer.error()) == (403, "push secret wrong")


def test_regression_deeply_nested_json_ack_body_is_403_not_a_crash(rx: Receiver) -> None:
    # Found by the fuzzer: /_ack parsed {"token": ...} bodies without catching RecursionError.
    answer = rx.request("/_ack", chunks=[b'{"token": ' + b"[" * 10_000])
    assert answer.status == 403
    assert "invalid ack token" in answer.error()


def test_repeated_secret_headers_the_last_one_decides(rx: Receiver) -> None:
    route = BY_PATH["/plain"]
    good = rx.secret(route)
    base = [h for h in rx.valid_headers(route, fresh_id()) if h[0] != SECRET]
    forged_last = rx.request(route.path, headers=[*base, (SECRET, good), (SECRET, b"forged")])
    assert forged_last.status == 403
    base = [h for h in rx.valid_headers(route, fresh_id()) if h[0] != SECRET]
    good_last = rx.request(route.path, headers=[*base, (SECRET, b"forged"), (SECRET, good)])
    assert good_last.status == 200


# --------------------------------------------------------------------------- real sockets


def test_real_server_answers_garbage_with_4xx_and_keeps_serving() -> None:
    calls: list[Call] = []
    router = PushRouter(secret_keys=KEYS)

    @router.route("/plain", queue="orders", subscriber="billing")
    async def plain(msg: PushMessage) -> None:
        calls.append(Call("/plain", msg.id, msg.body, False))

    secret = push_secret("orders", "billing", KEYS).encode()
    head = b"POST /plain HTTP/1.1\r\nHost: t\r\n"
    signed = head + b"X-Ironpush-Secret: " + secret + b"\r\nIron-Message-Id: m-garbage\r\n"
    garbage = [
        (b"GARBAGE\r\n\r\n", False),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64, True),  # a TLS hello
        (head + b"No colon here\r\n\r\n", False),
        (head + b"X-Big: " + b"a" * 200_000 + b"\r\n\r\n", False),
        (head + b"Content-Length: abc\r\n\r\n", False),
        (head + b"Content-Length: 5\r\nContent-Length: 7\r\n\r\nhello", False),
        (head + b"X-Nul: a\x00b\r\n\r\n", False),
        (head + b"Transfer-Encoding: chunked\r\n\r\nZZZ\r\nabc\r\n0\r\n\r\n", False),
        (head + b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n", False),
        (b"POST /../plain HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n", False),
        (b"POST /%2e%2e/plain%00 HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n", False),
        (b"POST /" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: t\r\n\r\n", False),
        # verified and named, but the body never arrives in full: the handler must not run
        (signed + b"Content-Length: 100\r\n\r\nabc", True),
        (signed + b"Transfer-Encoding: chunked\r\n\r\n5\r\nab", True),
    ]
    with ServerThread(router) as server:
        valid = 0
        for data, half_close in garbage:
            status = exchange_raw(server.port, data, half_close=half_close)
            assert status is None or 400 <= status < 500, (data[:60], status)
            headers, body, _ = build_push(router, "/plain", b"still here")
            answer = httpx.post(f"{server.url}/plain", content=body, headers=headers, timeout=10)
            assert answer.status_code == 200, (data[:60], answer.text)
            valid += 1
        assert [c.body for c in calls] == [b"still here"] * valid
