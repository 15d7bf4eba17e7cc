"""Fuzzed: verified pushes, malformed or well-formed, get only contract answers (see
:mod:`.fuzz_kit`)."""

from __future__ import annotations

import json
from urllib.parse import quote

from hypothesis import given
from hypothesis import strategies as st

from .fuzz_kit import (
    BY_PATH,
    FUZZ,
    IRON,
    LIMIT,
    ROUTES,
    SECRET,
    Receiver,
    RouteSpec,
    bodies,
    fresh_id,
    header_values,
    random_headers,
    rechunk,
    route_specs,
    with_content_length,
)

IronChoice = tuple[str, bytes]  # (how, value) for one Iron-* header


def iron_header(good: bytes) -> st.SearchStrategy[IronChoice]:
    return st.one_of(
        st.just(("absent", b"")),
        st.just(("good", good)),
        st.sampled_from([b"", b" ", b"\t"]).map(lambda v: ("blank", v)),
        header_values.map(lambda v: ("garbage", v)),
        header_values.map(lambda v: ("repeat-good-last", v)),
        header_values.map(lambda v: ("repeat-good-first", v)),
    )


def emit(name: bytes, choice: IronChoice, good: bytes) -> list[tuple[bytes, bytes]]:
    how, value = choice
    return {
        "absent": [],
        "good": [(name, good)],
        "blank": [(name, value)],
        "garbage": [(name, value)],
        "repeat-good-last": [(name, value), (name, good)],
        "repeat-good-first": [(name, good), (name, value)],
    }[how]


def certainly_blank(values: list[bytes]) -> bool:
    return all(not v.decode("latin-1").strip() for v in values)


def certainly_set(values: list[bytes]) -> bool:
    return bool(values) and all(v.decode("latin-1").strip() for v in values)


@FUZZ
@given(
    route=route_specs,
    data=st.data(),
    extra=random_headers.map(lambda hs: [h for h in hs if h[0].lower() not in (SECRET, *IRON)]),
    secret_in=st.sampled_from(["header", "query"]),
    chunks=bodies,
    content_length=st.sampled_from(["absent", "right", "small", "large", "garbage", "negative"]),
    disconnect=st.sampled_from([False, False, False, True]),
)
def test_verified_pushes_with_malformed_input_get_only_contract_answers(
    rx: Receiver,
    route: RouteSpec,
    data: st.DataObject,
    extra: list[tuple[bytes, bytes]],
    secret_in: str,
    chunks: list[bytes],
    content_length: str,
    disconnect: bool,
) -> None:
    message_id = fresh_id()
    good = dict(rx.valid_headers(route, message_id))
    headers: list[tuple[bytes, bytes]] = []
    for name in IRON:
        sample = good.get(name, message_id.encode())  # v3 pushes carry no legacy message id
        choice = data.draw(iron_header(sample), label=name.decode())
        headers += emit(name, choice, sample)
    query = b""
    if secret_in == "header":
        headers.append((SECRET, rx.secret(route)))
    else:
        query = b"ironpush_secret=" + quote(rx.secret(route), safe="").encode()
    body = b"".join(chunks)
    headers = with_content_length(headers + extra, content_length, len(body))
    values = {n: [v for k, v in headers if k == n] for n in IRON}
    ids = values[b"iron-message-id"] + values[b"iron-subscriber-message-id"]
    ids_text = {v.decode("latin-1").strip() for v in ids} - {""}
    is_new = not (ids_text & rx.seen)
    rx.seen |= ids_text
    before = len(rx.calls)

    answer = rx.request(
        route.path, headers=headers, chunks=chunks, query=query, disconnect=disconnect
    )

    ran = rx.calls[before:]
    assert len(ran) <= 1
    expected = expected_push_answer(
        route, values, headers, body, disconnect=disconnect, is_new=is_new
    )
    if expected == "handler":  # a well-formed new push
        assert len(ran) == 1, answer
        assert (ran[0].path, ran[0].body) == (route.path, body)  # exactly what was sent
        assert not ran[0].saw_secret  # handlers never see the push secret
        allowed = set(route.handled)
        if route.path in ("/defer", "/external") and certainly_set(values[b"iron-reservation-id"]):
            allowed = {202}
        assert answer.status in allowed, answer
    elif expected == "unknown":  # blank and set repeats of a header, or a message id seen before
        assert answer.status in {None, 200, 202, 400, 413} | route.handled, answer
    else:  # malformed: the documented refusal, and no handler call
        assert (answer.status, ran) == (expected, []), answer
        if expected == 400 and not route.json:
            assert "Iron-Message-Id" in answer.error()
    rx.assert_alive()


@FUZZ
@given(
    route=st.sampled_from([*ROUTES, BY_PATH["/json"], BY_PATH["/json"]]),
    chunks=bodies,
    cuts=st.lists(st.integers(0, 3 * LIMIT), max_size=6),
    content_length=st.sampled_from(["absent", "right", "small", "large", "garbage", "negative"]),
    disconnect=st.sampled_from([False, False, False, True]),
)
def test_well_formed_pushes_with_any_body_get_only_contract_answers(
    rx: Receiver,
    route: RouteSpec,
    chunks: list[bytes],
    cuts: list[int],
    content_length: str,
    disconnect: bool,
) -> None:
    body = b"".join(chunks)
    headers = with_content_length(rx.valid_headers(route, fresh_id()), content_length, len(body))
    values = {n: [v for k, v in headers if k == n] for n in IRON}
    before = len(rx.calls)

    answer = rx.request(
        route.path, headers=headers, chunks=rechunk(body, cuts), disconnect=disconnect
    )

    ran = rx.calls[before:]
    expected = expected_push_answer(
        route, values, headers, body, disconnect=disconnect, is_new=True
    )
    if expected == "handler":
        assert [(c.path, c.body) for c in ran] == [(route.path, body)], answer
        assert answer.status == (200 if route.handled == {200} else 202), answer
    else:
        assert (answer.status, ran) == (expected, []), answer
        if expected == 400:
            assert answer.error() == "body is not valid JSON"
    rx.assert_alive()


def expected_push_answer(
    route: RouteSpec,
    values: dict[bytes, list[bytes]],
    headers: list[tuple[bytes, bytes]],
    body: bytes,
    *,
    disconnect: bool,
    is_new: bool,
) -> int | str | None:
    """The contract's answer for a verified push, in the order the router checks (see
    ironpush/receiver/_pipeline.py): declared size, message id, streamed size or disconnect,
    JSON."""
    declared = [v for k, v in headers if k.lower() == b"content-length"]
    if declared and declared[-1].isdigit() and int(declared[-1]) > LIMIT:
        return 413
    ids, legacy_ids = values[b"iron-message-id"], values[b"iron-subscriber-message-id"]
    if certainly_blank(ids) and certainly_blank(legacy_ids):
        return 400
    known_id = certainly_set(ids) or (certainly_blank(ids) and certainly_set(legacy_ids))
    if len(body) > LIMIT:
        return 413 if known_id else "unknown"
    if disconnect:
        return None if known_id else "unknown"
    if route.json and not is_json(body):
        return 400 if known_id else "unknown"
    return "handler" if known_id and is_new else "unknown"


def is_json(body: bytes) -> bool:
    try:
        json.loads(body)
    except (ValueError, RecursionError):
        return False
    return True
