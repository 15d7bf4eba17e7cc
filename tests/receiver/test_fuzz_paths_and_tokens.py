"""Fuzzed: random paths and methods, and bad ack tokens (see :mod:`.fuzz_kit`)."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from ironpush._protocol import Delivery
from ironpush._signing import dump_ack_token

from .fuzz_kit import (
    ACK_LIMIT,
    BY_PATH,
    FUZZ,
    INTERNAL,
    KEYS,
    SECRET,
    Receiver,
    json_values,
    random_headers,
    small_chunks,
)

ODD_PATHS = (
    "/",
    "",
    "/plain/",
    "/plain//",
    "//plain",
    "/plain/..",
    "/../plain",
    "/./plain",
    "/%2e%2e/plain",
    "/plain%00",
    "/plain\x00",
    "/PLAIN",
    "/plain;x=1",
    "/_health/",
    "/_ack",
    "/_release",
    "/_metrics",
    "/_unknown",
    "/_",
    "/plain/" + "a" * 10_000,
    "/" + "%" * 300,
    "/\u202eevil",
)


def expected_status(path: str, method: str, root_path: str) -> set[int]:
    """The documented answer for a request without a push secret or a valid token."""
    if root_path and path.startswith(root_path):
        path = path[len(root_path) :]
    if len(path) > 1:
        path = path.rstrip("/")
    path = path or "/"
    if path in BY_PATH:
        return {401} if method == "POST" else {405}
    if path in INTERNAL:
        wanted = INTERNAL[path]
        if method == wanted or (wanted == "GET" and method == "HEAD"):
            return {200} if wanted == "GET" else {403, 413}
        return {405}
    return {404}


@FUZZ
@given(
    path=st.one_of(
        st.sampled_from(ODD_PATHS),
        st.text(max_size=60).map(lambda t: "/" + t),
        st.lists(st.sampled_from(["plain", "..", ".", "%2e%2e", "_ack", "", "json"])).map(
            lambda parts: "/" + "/".join(parts)
        ),
    ),
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "TRACE"])
    | st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ-", min_size=1, max_size=12),
    mounted=st.booleans(),
    headers=random_headers.map(lambda hs: [h for h in hs if h[0].lower() != SECRET]),
    chunks=small_chunks,
)
def test_random_paths_and_methods_get_404_405_or_the_endpoint_answer(
    rx: Receiver,
    path: str,
    method: str,
    mounted: bool,
    headers: list[tuple[bytes, bytes]],
    chunks: list[bytes],
) -> None:
    root_path = "/ironmq" if mounted else ""
    before, acks = len(rx.calls), len(rx.sim.acks)

    answer = rx.request(path, method=method, root_path=root_path, headers=headers, chunks=chunks)

    assert answer.status in expected_status(root_path + path, method, root_path), (path, answer)
    if answer.status == 405:
        assert b"allow" in answer.headers
    assert len(rx.calls) == before
    assert len(rx.sim.acks) == acks
    rx.assert_alive()


foreign_keys = st.text(min_size=1).filter(lambda k: k not in KEYS)
# {"token": [[[[...: the JSON form of /_ack bodies, nested past json's recursion limit
deep_token_body = st.integers(ACK_LIMIT // 2, ACK_LIMIT - 10).map(
    lambda n: b'{"token": ' + b"[" * n
)


def token_mutations(token: bytes) -> st.SearchStrategy[bytes]:
    # Only characters that are not the last of a dot-separated part: the last base64 character
    # can carry unused bits, so changing it may decode to the very same bytes.
    positions = [i for i in range(len(token) - 1) if token[i + 1 : i + 2] != b"."]

    def replace(i: int, c: int) -> bytes:
        return token[:i] + bytes([c]) + token[i + 1 :]

    return st.builds(replace, st.sampled_from(positions), st.integers(0, 255)).filter(
        lambda t: t != token
    )


@FUZZ
@given(
    endpoint=st.sampled_from(["/_ack", "/_release"]),
    data=st.data(),
    kind=st.sampled_from(
        ["random", "json", "mutated", "truncated", "foreign", "secret", "big", "deep"]
    ),
)
def test_ack_endpoints_refuse_every_bad_token_without_acking(
    rx: Receiver, endpoint: str, data: st.DataObject, kind: str
) -> None:
    # A fixed message id: the token's length must not vary between runs of one example.
    delivery = Delivery("fuzz-ack", reservation_id="r1", subscriber_name="outsider")
    token = dump_ack_token("jobs", delivery, KEYS).encode()
    body = {
        "random": lambda: data.draw(st.binary(max_size=200)),
        "json": lambda: json.dumps({"token": data.draw(json_values)}).encode(),
        "mutated": lambda: data.draw(token_mutations(token)),
        "truncated": lambda: token[: data.draw(st.integers(0, len(token) - 2))],
        "foreign": lambda: dump_ack_token("jobs", delivery, [data.draw(foreign_keys)]).encode(),
        "secret": lambda: rx.secret(BY_PATH["/external"]),
        "big": lambda: token + b" " * ACK_LIMIT,
        "deep": lambda: data.draw(deep_token_body),
    }[kind]()
    acks = len(rx.sim.acks)

    answer = rx.request(endpoint, chunks=[body])

    if kind == "big":
        assert answer.status == 413
    else:
        assert answer.status == 403, (body, answer)
        assert "ack token" in answer.error()
        assert token.decode() not in answer.error()
    assert len(rx.sim.acks) == acks
    rx.assert_alive()
