"""The receiver fuzzer's kit (``test_fuzz_*.py``): bad input against ``PushRouter`` (issue 6,
point 2), hypothesis driving raw ASGI requests.

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

Every defect the fuzzer found is pinned as a plain regression test in ``test_fuzz_regressions.py``.
Elsewhere: the contract row by row in ``tests/receiver/test_outcomes.py`` and its neighbours;
secrets, key rotation, ack tokens and leaks in ``tests/receiver/test_secret_*.py``; the dev
server's bad input in its own fuzz tests. ``IRONPUSH_FUZZ_EXAMPLES`` scales the example counts.
"""

from __future__ import annotations

import functools
import itertools
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from anyio.from_thread import BlockingPortal
from fuzz_common import FUZZ as FUZZ  # the tests' settings, shared with the dev server's
from fuzz_common import Exchange, asgi_exchange
from hypothesis import strategies as st

from ironpush._protocol import Delivery
from ironpush._signing import dump_ack_token, push_secret
from ironpush.receiver._outcomes import Defer, PushMessage
from ironpush.receiver._router import PushRouter
from ironpush.testing import PushSimulator, build_push

KEYS = ["fuzz-key-old", "fuzz-key-new"]
LIMIT = 32 * 1024  # body limit of the fuzzed router: small, so oversized bodies are cheap
ACK_LIMIT = 16 * 1024  # what /_ack and /_release read at most
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
        "method": method,
        "path": path,
        "raw_path": quote(path, safe="/%").encode("ascii"),
        "root_path": root_path,
        "query_string": query,
        "headers": headers,
    }
    return await asgi_exchange(app, scope, chunks, disconnect)


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
