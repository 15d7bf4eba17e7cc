"""Fuzzed: unverified pushes get 401/403 and never reach a handler (see :mod:`.fuzz_kit`)."""

from __future__ import annotations

from urllib.parse import parse_qsl, quote

from hypothesis import given
from hypothesis import strategies as st

from .fuzz_kit import (
    FUZZ,
    SECRET,
    Receiver,
    RouteSpec,
    bad_secrets,
    bodies,
    fresh_id,
    random_headers,
    route_specs,
)

# --------------------------------------------------------------------------- properties


@FUZZ
@given(
    route=route_specs,
    data=st.data(),
    extra=random_headers,
    where=st.sampled_from(["header", "query", "empty-header", "none"]),
    query_junk=st.binary(max_size=40)
    | st.sampled_from([b"ironpush_secret=", b"ironpush%5Fsecret=x", b"ironpush_secret=%FF&a"]),
    chunks=bodies,
)
def test_unverified_pushes_get_401_or_403_and_never_reach_a_handler(
    rx: Receiver,
    route: RouteSpec,
    data: st.DataObject,
    extra: list[tuple[bytes, bytes]],
    where: str,
    query_junk: bytes,
    chunks: list[bytes],
) -> None:
    message_id = fresh_id()
    headers = [h for h in rx.valid_headers(route, message_id) if h[0] != SECRET]
    query = b""
    bad = data.draw(bad_secrets(rx.secret(route)), label="secret")
    if where == "header":
        headers.append((SECRET, bad))
    elif where == "query":
        query = b"ironpush_secret=" + quote(bad, safe="").encode()
    elif where == "empty-header":
        headers.append((SECRET, b""))
    # Repeated headers: random ones after the secret may repeat its name with garbage too.
    headers += [h for h in extra if h[0].lower() != SECRET or h[1] != rx.secret(route)]
    query = (query + b"&" + query_junk) if query else query_junk  # junk may repeat the param
    in_headers = [v for k, v in headers if k.lower() == SECRET]
    pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
    in_query = [v for k, v in pairs if k == "ironpush_secret"]
    before = len(rx.calls)

    answer = rx.request(route.path, headers=headers, chunks=chunks, query=query)

    assert answer.status in (401, 403), answer
    if not any(in_headers) and not any(in_query):
        assert answer.status == 401  # missing
    elif (in_headers and all(in_headers)) or (not in_headers and all(in_query)):
        assert answer.status == 403  # presented, and wrong
    assert answer.error().startswith("push secret")
    assert answer.reads == 0  # refused before the body was read
    assert len(rx.calls) == before
    rx.assert_alive()
