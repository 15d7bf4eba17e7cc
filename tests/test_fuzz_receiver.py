"""Bad input against ``PushRouter`` (issue 6, point 2): hypothesis drives raw ASGI requests.

Raw ASGI scopes let the fuzzer send what no HTTP client would: CR/LF, NUL and non-latin-1 bytes
in header names and values, repeated headers, missing or lying ``Content-Length``, bodies in
many chunks, a pusher that disconnects mid-body, paths with ``..``/``%2e%2e``/NUL. Guarantees:

- **unverified pushes** (no, empty, wrong, truncated, extended, mutated, other-route,
  unknown-key or ack-token secrets, in the header or the query) get 401/403, the body is never
  read and no handler runs;
- **verified pushes with malformed input** (each ``Iron-*`` header absent, blank, garbage,
  oversized or repeated; random extra headers; random, huge, chunked or truncated bodies;
  invalid JSON on a JSON route) get only 200/202/400/413 (plus the 500 a deferring handler gets
  for a push that has no reservation to acknowledge later); the handler runs exactly once for
  every well-formed new push, with the exact body, and never for a malformed one;
- **random paths and methods** get the 404/405/401 (or the internal endpoint's) answer;
- ``/_ack`` and ``/_release`` with random bodies and mutated tokens get 403/413, never an ack;
- after every bad request the router still answers a valid push with 200;
- over **real sockets** (uvicorn): malformed HTTP is answered with a 4xx or a closed connection,
  never a 5xx, and the server keeps serving.

Every defect the fuzzer found is pinned below as a plain regression test (``test_regression_*``).
Elsewhere: the contract row by row in ``tests/test_receiver.py``; secrets, key rotation, ack
tokens and leaks in ``tests/test_security.py``; the dev server's bad input in
``tests/test_fuzz_devserver.py``. ``IRONPUSH_FUZZ_EXAMPLES`` scales the example counts.
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote

import httpx
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import exchange_raw

from ironpush._protocol import Delivery
from ironpush._signing import dump_ack_token, push_secret
from ironpush.receiver._outcomes import Defer, PushMessage
from ironpush.receiver._router import PushRouter
from ironpush.server_thread import ServerThread
from ironpush.testing import PushSimulator, build_push

KEYS = ["fuzz-key-old", "fuzz-key-new"]
LIMIT = 32 * 1024  # body limit of the fuzzed router: small, so oversized bodies are cheap
ACK_LIMIT = 16 * 1024  # what /_ack and /_release read at most
EXAMPLES = int(os.environ.get("IRONPUSH_FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SECRET = b"x-ironpush-secret"
IRON = (
    b"iron-message-id",
    b"iron-reservation-id",
    b"iron-subscriber-name",
    b"iron-subscriber-message-url",
    b"iron-subscriber-message-id",
)
_ids = itertools.count(1)


def fresh_id() -> str:
    return f"fz{next(_ids)}-{uuid.uuid4().hex[:8]}"


# --------------------------------------------------------------------------- the harness


@dataclass(frozen=True)
class RouteSpec:
    path: str
    queue: str
    subscriber: str
    json: bool
    handled: frozenset[int | None]  # what a well-formed new push may get from this handler


ROUTES = (
    RouteSpec("/plain", "orders", "billing", False, frozenset({200})),
    RouteSpec("/json", "orders", "reader", True, frozenset({200})),
    # 500: Defer on a push without a reservation (or legacy URL) that could be acked later.
    RouteSpec("/defer", "jobs", "worker", False, frozenset({202, 500})),
    RouteSpec("/external", "jobs", "outsider", False, frozenset({202, 500})),
)
BY_PATH = {r.path: r for r in ROUTES}
INTERNAL = {"/_health": "GET", "/_metrics": "GET", "/_ack": "POST", "/_release": "POST"}


@dataclass
class Call:
    path: str
    message_id: str
    body: bytes
    saw_secret: bool


@dataclass
class Exchange:
    status: int | None  # None: nothing was sent back (the pusher went away)
    headers: dict[bytes, bytes]
    body: bytes
    reads: int  # receive() calls the app made: 0 means the body was never read

    def error(self) -> str:
        data = json.loads(self.body)
        assert isinstance(data, dict)
        return str(data["error"])


@dataclass
class Receiver:
    portal: BlockingPortal
    router: PushRouter
    sim: PushSimulator
    calls: list[Call] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)  # message ids ever sent (dedupe may answer)

    def request(
        self,
        path: str,
        *,
        method: str = "POST",
        headers: Sequence[tuple[bytes, bytes]] = (),
        chunks: Sequence[bytes] = (),
        query: bytes = b"",
        root_path: str = "",
        disconnect: bool = False,
    ) -> Exchange:
        call = functools.partial(
            asgi_request,
            self.router,
            method=method,
            path=root_path + path,
            root_path=root_path,
            query=query,
            headers=list(headers),
            chunks=list(chunks),
            disconnect=disconnect,
        )
        return self.portal.call(call)

    def valid_headers(self, route: RouteSpec, message_id: str) -> list[tuple[bytes, bytes]]:
        headers, _, _ = build_push(self.router, route.path, message_id=message_id)
        return [(k.lower().encode(), v.encode()) for k, v in headers.items()]

    def secret(self, route: RouteSpec) -> bytes:
        return push_secret(route.queue, route.subscriber, KEYS).encode()

    def assert_alive(self) -> None:
        """The router still answers a valid push with 200 and runs its handler."""
        message_id = fresh_id()
        before = len(self.calls)
        answer = self.request(
            "/plain", headers=self.valid_headers(BY_PATH["/plain"], message_id), chunks=[b"ok"]
        )
        assert answer.status == 200, answer
        assert [c.message_id for c in self.calls[before:]] == [message_id]


async def asgi_request(
    app: Any,
    *,
    method: str,
    path: str,
    root_path: str,
    query: bytes,
    headers: list[tuple[bytes, bytes]],
    chunks: list[bytes],
    disconnect: bool,
) -> Exchange:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": quote(path, safe="/%").encode("ascii"),
        "root_path": root_path,
        "query_string": query,
        "headers": headers,
        "client": ("127.0.0.1", 40000),
        "server": ("testserver", 80),
    }
    incoming: list[dict[str, Any]] = [
        {"type": "http.request", "body": c, "more_body": True} for c in chunks
    ]
    if disconnect:
        incoming.append({"type": "http.disconnect"})
    else:
        incoming.append({"type": "http.request", "body": b"", "more_body": False})
    sent: list[dict[str, Any]] = []
    reads = 0

    async def receive() -> dict[str, Any]:
        nonlocal reads
        reads += 1
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        sent.append(dict(message))

    await app(scope, receive, send)
    starts = [m for m in sent if m["type"] == "http.response.start"]
    assert len(starts) <= 1, sent
    if not starts:
        return Exchange(None, {}, b"", reads)
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return Exchange(starts[0]["status"], dict(starts[0]["headers"]), body, reads)


def make_router(calls: list[Call]) -> PushRouter:
    router = PushRouter(secret_keys=KEYS, body_limit=LIMIT, max_deferred=100_000)

    def record(msg: PushMessage, path: str) -> None:
        calls.append(Call(path, msg.id, msg.body, "x-ironpush-secret" in msg.headers))

    async def job() -> None:
        return None

    @router.route("/plain", queue="orders", subscriber="billing")
    async def plain(msg: PushMessage) -> None:
        record(msg, "/plain")

    @router.route("/json", queue="orders", subscriber="reader", json=True)
    def json_route(msg: PushMessage) -> None:  # sync: runs in the threadpool
        record(msg, "/json")

    @router.route("/defer", queue="jobs", subscriber="worker")
    async def defer(msg: PushMessage) -> Defer:
        record(msg, "/defer")
        return Defer(job)

    @router.route("/external", queue="jobs", subscriber="outsider")
    async def external(msg: PushMessage) -> Defer:
        record(msg, "/external")
        return Defer()

    return router


@pytest.fixture(scope="module")
def rx() -> Iterator[Receiver]:
    calls: list[Call] = []
    router = make_router(calls)
    with start_blocking_portal() as portal:
        sim = PushSimulator(router)
        with portal.wrap_async_context_manager(sim):
            yield Receiver(portal, router, sim, calls)


# --------------------------------------------------------------------------- strategies

NASTY_VALUES = (
    b"",
    b" ",
    b"\t \t",
    b"\r\n",
    b"\x00",
    b"x\r\nX-Ironpush-Secret: forged",
    b"1\r\n\r\nPOST /plain HTTP/1.1",
    b"\xff\xfe\xfd",
    "€".encode(),
    b"\xb2",  # "²": str.isdigit() says yes, int() says no
    b"-1",
    b"0x10",
    b"99999999999999999999999999",
    b"%00",
    b"../../etc/passwd",
    b'{"not": "a header"}',
)
header_values = st.one_of(
    st.sampled_from(NASTY_VALUES),
    st.binary(max_size=48),
    # oversized: up to 20 KB of a repeated unit
    st.builds(lambda unit, n: unit * n, st.binary(min_size=1, max_size=3), st.integers(1, 7000)),
)
header_names = st.one_of(
    st.sampled_from(
        [
            *IRON,
            b"content-length",
            b"content-type",
            b"transfer-encoding",
            b"user-agent",
            b"host",
            b"Iron-Message-Id",
            b"IRON-RESERVATION-ID",
            b"x-forwarded-for",
        ]
    ),
    st.binary(max_size=24),
)
random_headers = st.lists(st.tuples(header_names, header_values), max_size=10)
small_chunks = st.lists(st.binary(max_size=300), max_size=4)
big_body = st.builds(
    lambda n, b: [b * n], st.integers(LIMIT + 1, 3 * LIMIT), st.binary(min_size=1, max_size=1)
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
json_chunks = json_values.map(lambda v: [json.dumps(v).encode()])
# Deeper than json's recursion limit, even raised (hypothesis raises it while a test runs).
deep_json = st.integers(LIMIT // 2, LIMIT).map(lambda n: [b"[" * n])
NASTY_JSON = (
    b"NaN",
    b"-Infinity",
    b"1" * 2000,  # a 2000-digit integer
    b"\xef\xbb\xbf{}",  # a UTF-8 BOM
    '{"a": 1}'.encode("utf-16"),
    b'"\\ud800"',  # a lone surrogate escape
    b'"\xed\xa0\x80"',  # surrogate bytes
    b'{"a": 1e999}',
    b"[1, 2",
    b"\x00",
    b"{}" * 600,
    b'{"a":' * 300 + b"1" + b"}" * 300,
)
nasty_json = st.sampled_from(NASTY_JSON).map(lambda b: [b])
bodies = st.one_of(small_chunks, json_chunks, big_body, deep_json, nasty_json)


def rechunk(body: bytes, cuts: list[int]) -> list[bytes]:
    """``body`` split at ``cuts`` (positions, any order): how a streamed body arrives."""
    points = sorted({0, len(body), *(c % (len(body) + 1) for c in cuts)})
    return [body[a:b] for a, b in itertools.pairwise(points)]


route_specs = st.sampled_from(ROUTES)


def bad_secrets(good: bytes) -> st.SearchStrategy[bytes]:
    """Secrets that must be refused for a route whose valid secret is ``good``."""
    other_routes = [push_secret(r.queue, r.subscriber, KEYS).encode() for r in ROUTES]
    ack_token = dump_ack_token("orders", Delivery("m", reservation_id="r"), KEYS).encode()

    def flip(i: int) -> bytes:
        i %= len(good)
        return good[:i] + (b"A" if good[i : i + 1] != b"A" else b"B") + good[i + 1 :]

    candidates = st.one_of(
        st.binary(min_size=1, max_size=120),
        st.sampled_from([s for s in other_routes if s != good]),
        st.just(ack_token),  # a credential for another purpose
        st.builds(lambda k: push_secret("orders", "billing", [k]).encode(), st.text(min_size=1)),
        st.integers(0, 200).map(flip),
        st.integers(1, len(good) - 1).map(lambda n: good[:n]),
        st.binary(min_size=1, max_size=8).map(lambda tail: good + tail),
        st.sampled_from([b" " + good, good + b"\r\n", good.upper(), good.lower(), b"\x00" + good]),
    )
    return candidates.filter(lambda s: s != good and s.strip() != b"")


def with_content_length(
    headers: list[tuple[bytes, bytes]], kind: str, size: int
) -> list[tuple[bytes, bytes]]:
    value = {
        "absent": None,
        "right": str(size).encode(),
        "small": str(max(0, size // 2)).encode(),
        "large": str(size + LIMIT * 4).encode(),
        "garbage": b"\xb2",
        "negative": b"-1",
    }[kind]
    return headers if value is None else [*headers, (b"content-length", value)]


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
