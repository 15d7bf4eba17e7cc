"""Bad input against the dev server's API (issue 6, point 2): hypothesis drives every endpoint.

The app runs in-process (``create_app`` with its lifespan, on one event loop held by a blocking
portal) and is called through ``httpx.ASGITransport`` or with raw ASGI scopes for what httpx
refuses to send. The pusher is never activated, so nothing leaves the process. Guarantees:

- **every v3 endpoint** with random methods, known/unknown/reserved-character queue names and
  message ids, random query parameters and random bodies (bytes, JSON of any shape, objects
  with the right field names and wrong types, nested too deep, huge integers, NaN, lone
  surrogates, BOMs, UTF-16) answers 2xx or a clean 4xx JSON ``{"msg": ...}``, never a 5xx;
- **random paths** (``..``, ``%2e%2e``, ``%2F``, NUL, long, with or without ``raw_path``) and
  traversal attempts at ``/_dev/reset`` and another project's queue get a 4xx and change
  nothing;
- after every request the server still answers, ``GET /_dev/state`` is consistent (each
  queue's size is the sum of its states, ``live`` is the sum of sizes), the queue just touched
  still renders, and a sentinel project nobody targets is intact;
- **queue names with reserved characters** round-trip (create, read, list, delete);
- **authorization**: any header or ``oauth`` value other than the token gets 401;
- **malformed HTTP framing** (raw ASGI: non-latin-1 and CR/LF header bytes, lying or garbage
  ``Content-Length``, chunked bodies, disconnects) never gives a 5xx; over a **real socket**
  garbage gets a 4xx or a closed connection and the server keeps serving.

Every defect found is pinned as a plain ``test_regression_*`` test. Elsewhere: the API's
documented 400s in ``tests/test_devserver_api.py`` (``test_bad_input_gets_a_precise_400``),
the receiver's bad input in ``tests/test_fuzz_receiver.py``, secrets and the loopback bind in
``tests/test_security.py``. ``IRONPUSH_FUZZ_EXAMPLES`` scales the example counts.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

import httpx
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from support import exchange_raw

from ironpush.devserver import DevConfig, DevServer, create_app
from ironpush.devserver._api import ROUTES

TOKEN = "fuzz-dev-token-0123456789"
EXAMPLES = int(os.environ.get("IRONPUSH_FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
PROJECT = "fz"
SENTINEL = "sentinel"  # a project no generated request targets on purpose
API_STATUSES = {200, 201, 400, 403, 404, 405, 413}
HOOK = "http://127.0.0.1:9/never-pushed"


def segment(text: str) -> str:
    """One path segment, percent-encoded like the client does (dots too: no normalising)."""
    return quote(text, safe="").replace(".", "%2E")


# --------------------------------------------------------------------------- the harness


@dataclass
class Raw:
    status: int | None
    body: bytes


@dataclass
class Dev:
    portal: BlockingPortal
    app: Starlette
    http: httpx.AsyncClient

    def request(
        self,
        method: str,
        path: str,
        *,
        content: bytes | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        call = functools.partial(
            self.http.request, method, path, content=content, params=params, headers=headers
        )
        return self.portal.call(call)

    def api(self, method: str, project: str, *parts: str, body: Any = None) -> httpx.Response:
        path = "/3/projects/" + "/".join(segment(p) for p in (project, *parts))
        content = None if body is None else json.dumps(body).encode()
        return self.request(method, path, content=content)

    def raw(
        self,
        method: str,
        path: str,
        *,
        raw_path: bytes | None = None,
        query: bytes = b"",
        headers: Sequence[tuple[bytes, bytes]] = (),
        chunks: Sequence[bytes] = (),
        disconnect: bool = False,
        authorized: bool = True,
    ) -> Raw:
        auth = [(b"authorization", f"OAuth {TOKEN}".encode())] if authorized else []
        call = functools.partial(
            raw_asgi,
            self.app,
            method,
            path,
            raw_path,
            query,
            [*auth, *headers],
            list(chunks),
            disconnect,
        )
        return self.portal.call(call)

    def state(self) -> dict[str, Any]:
        answer = self.request("GET", "/_dev/state")
        assert answer.status_code == 200, answer.text
        data: dict[str, Any] = answer.json()
        return data

    def check(self, project: str = PROJECT, queue: str | None = None) -> None:
        """Still serving, state consistent, the touched queue renders, the sentinel intact."""
        assert self.request("GET", "/_dev/health").json() == {"ok": True}
        state = self.state()
        sizes = 0
        for queues in state["projects"].values():
            for name, q in queues.items():
                parts = q["ready"] + q["delayed"] + q["reserved"] + q["pushing"]
                assert q["size"] == parts, (name, q)
                sizes += q["size"]
        assert state["live"] == sizes, state
        sentinel = state["projects"].get(SENTINEL, {})
        assert set(sentinel) == {"keep", "keep-push"}, "the sentinel project was changed"
        assert sentinel["keep"]["size"] == 2, "the sentinel queue lost messages"
        assert sentinel["keep-push"]["subscribers"] == 1
        if queue is not None and queue in state["projects"].get(project, {}):
            shown = self.api("GET", project, "queues", queue)
            assert shown.status_code == 200, shown.text
            assert shown.json()["queue"]["name"] == queue
        listing = self.request("GET", f"/3/projects/{segment(project)}/queues?per_page=100")
        assert listing.status_code == 200, listing.text


async def raw_asgi(
    app: Any,
    method: str,
    path: str,
    raw_path: bytes | None,
    query: bytes,
    headers: list[tuple[bytes, bytes]],
    chunks: list[bytes],
    disconnect: bool,
) -> Raw:
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "query_string": query,
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 40000),
        "server": ("testserver", 80),
    }
    if raw_path is not None:
        scope["raw_path"] = raw_path
    incoming: list[dict[str, Any]] = [
        {"type": "http.request", "body": c, "more_body": True} for c in chunks
    ]
    incoming.append(
        {"type": "http.disconnect"}
        if disconnect
        else {"type": "http.request", "body": b"", "more_body": False}
    )
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        sent.append(dict(message))

    await app(scope, receive, send)
    starts = [m for m in sent if m["type"] == "http.response.start"]
    if not starts:
        return Raw(None, b"")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return Raw(starts[0]["status"], body)


@contextlib.contextmanager
def running_dev() -> Iterator[Dev]:
    """The dev server app on its own event loop, with the sentinel project in place."""
    app = create_app(DevConfig(token=TOKEN))
    http = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://dev",
        headers={"Authorization": f"OAuth {TOKEN}"},
    )
    with (
        start_blocking_portal() as portal,
        portal.wrap_async_context_manager(app.router.lifespan_context(app)),
    ):
        d = Dev(portal, app, http)
        secret_sub = {"name": "s", "url": HOOK, "headers": {"X-Ironpush-Secret": "sss"}}
        assert d.api("PUT", SENTINEL, "queues", "keep", body={}).status_code == 200
        posted = d.api("POST", SENTINEL, "queues", "keep", "messages", body=messages(2))
        assert posted.status_code == 201
        push = {"queue": {"type": "multicast", "push": {"subscribers": [secret_sub]}}}
        assert d.api("PUT", SENTINEL, "queues", "keep-push", body=push).status_code == 200
        try:
            yield d
        finally:
            portal.call(http.aclose)


@pytest.fixture(scope="module")
def dev() -> Iterator[Dev]:
    """One server for all the properties of this module (what they create accumulates)."""
    with running_dev() as d:
        yield d


@pytest.fixture
def fresh() -> Iterator[Dev]:
    """A server of its own, for tests whose exact answers depend on what exists."""
    with running_dev() as d:
        yield d


def messages(n: int) -> dict[str, Any]:
    return {"messages": [{"body": f"m{i}"} for i in range(n)]}


def prepare(dev: Dev) -> list[str]:
    """(Re)create the fuzz project's known queues and a few messages; their ids."""
    dev.api("PUT", PROJECT, "queues", "fz-pull", body={})
    push = {"queue": {"type": "multicast", "push": {"subscribers": [{"url": HOOK}]}}}
    dev.api("PUT", PROJECT, "queues", "fz-push", body=push)
    posted = dev.api("POST", PROJECT, "queues", "fz-pull", "messages", body=messages(2))
    reserved = dev.api("POST", PROJECT, "queues", "fz-pull", "reservations", body={"n": 1})
    return [*posted.json()["ids"], *(m["id"] for m in reserved.json()["messages"])]


# --------------------------------------------------------------------------- strategies

FIELDS = (
    "messages",
    "body",
    "delay",
    "push_headers",
    "n",
    "timeout",
    "delete",
    "reservation_id",
    "subscriber_name",
    "ids",
    "id",
    "queue",
    "type",
    "push",
    "subscribers",
    "retries",
    "retries_delay",
    "error_queue",
    "dead_letter",
    "queue_name",
    "max_reservations",
    "alerts",
    "trigger",
    "direction",
    "snooze",
    "message_timeout",
    "message_expiration",
    "name",
    "url",
    "headers",
)
NASTY_STRINGS = (
    "",
    " ",
    "\x00",
    "\r\nX-Injected: 1",
    "\ud800",  # a lone surrogate: JSON can carry it, UTF-8 cannot
    "a" * 70,
    "../../_dev/reset",
    "ironmq:///",
    "ironmq://host/q",
    "http://",
    "http://[::1",
    "ftp://x/",
    HOOK,
    "Content-Type",
    "Iron-Message-Id",
    "multicast",
    "pull",
    "unicast",
    "fixed",
    "desc",
)
NASTY_NUMBERS = (
    0,
    -1,
    0.0001,
    1e308,
    -1e308,
    10**40,
    10**400,
    2**63,
    float("nan"),
    float("inf"),
    True,
)
# Text with a lone surrogate somewhere: JSON can carry it ("\ud800"), UTF-8 cannot.
surrogate_text = st.builds(
    lambda text, code, at: text[:at] + chr(code) + text[at:],
    st.text(max_size=8),
    st.integers(0xD800, 0xDFFF),
    st.integers(0, 8),
)
leaves = st.one_of(
    st.none(),
    surrogate_text,
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(NASTY_NUMBERS),
    st.text(max_size=20),
    st.sampled_from(NASTY_STRINGS),
)
shaped = st.recursive(
    leaves,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=6), children, max_size=6)
    ),
    max_leaves=25,
)


def no_long_poll(value: Any) -> Any:
    # A numeric "wait" makes a reservation long-poll for up to 30 s: keep it tiny.
    if isinstance(value, dict) and isinstance(value.get("wait"), int | float):
        value = {**value, "wait": min(value["wait"], 0.01)}
    return value


NASTY_BODIES = (
    b"[" * 50_000,
    b'{"messages": [' * 5_000,
    b'{"n": 1' + b"0" * 400 + b"}",
    b'{"timeout": ' + b"9" * 4000 + b"}",
    b'{"timeout": ' + b"9" * 5000 + b"}",
    b'{"messages": [{"body": "\\ud800"}]}',
    b'{"messages": [{"body": "\xed\xa0\x80"}]}',
    b'{"messages": [{"body": "x", "push_headers": {"\\udfff": "v"}}]}',
    b'{"subscribers": [{"name": "\\ud800", "url": "http://127.0.0.1:9/"}]}',
    b"\xef\xbb\xbf{}",
    '{"n": 1}'.encode("utf-16"),
    b'{"n": NaN}',
    b"\x00",
    b"null",
    b"[]",
    b'"string"',
    b"{" * 3,
)
bodies = st.one_of(
    st.none(),
    st.binary(max_size=200),
    shaped.map(lambda v: json.dumps(no_long_poll(v)).encode()),
    st.dictionaries(st.sampled_from(FIELDS), shaped, max_size=6).map(
        lambda v: json.dumps(no_long_poll(v)).encode()
    ),
    st.sampled_from(NASTY_BODIES),
)
queue_names = st.one_of(
    st.sampled_from(["fz-pull", "fz-push", "fz-missing"]),
    st.sampled_from(["..", ".", "../../sentinel/queues/keep", "a/b", "%2F", "?x=1", "#f", " "]),
    st.text(min_size=1, max_size=30),
)

# Valid bodies of the body-reading endpoints (a pull queue "fz-pull" and a push queue "fz-push");
# the field-mutation property below breaks one field of one of them at a time.
SUB = {"name": "a", "url": HOOK, "headers": {"X-A": "1"}}
ALERT = {"type": "fixed", "trigger": 1, "queue": "x", "direction": "asc", "snooze": 0}
TEMPLATES: tuple[tuple[str, str, tuple[str, ...], Any], ...] = (
    (
        "POST",
        "fz-pull",
        ("messages",),
        {"messages": [{"body": "x", "delay": 0, "push_headers": {"X-A": "1"}}]},
    ),
    ("POST", "fz-pull", ("reservations",), {"n": 1, "timeout": 30, "wait": 0, "delete": False}),
    ("DELETE", "fz-pull", ("messages", "1"), {"reservation_id": "r", "subscriber_name": "s"}),
    ("DELETE", "fz-pull", ("messages",), {"ids": ["1", {"id": "2", "reservation_id": "r"}]}),
    ("POST", "fz-pull", ("messages", "1", "touch"), {"reservation_id": "r", "timeout": 30}),
    ("POST", "fz-pull", ("messages", "1", "release"), {"reservation_id": "r", "delay": 0}),
    ("DELETE", "fz-push", ("messages", "1", "subscribers", "a"), {"reservation_id": "r"}),
    (
        "PATCH",
        "fz-pull",
        (),
        {
            "queue": {
                "message_timeout": 60,
                "message_expiration": 3600,
                "dead_letter": {"queue_name": "d", "max_reservations": 3},
                "alerts": [ALERT],
            }
        },
    ),
    (
        "PUT",
        "fz-new-push",
        (),
        {
            "queue": {
                "type": "multicast",
                "push": {
                    "subscribers": [SUB],
                    "retries": 3,
                    "retries_delay": 6,
                    "error_queue": "e",
                },
            }
        },
    ),
    ("POST", "fz-push", ("subscribers",), {"subscribers": [SUB]}),
    ("PUT", "fz-push", ("subscribers",), {"subscribers": [SUB, {"url": HOOK + "2"}]}),
    ("DELETE", "fz-push", ("subscribers",), {"subscribers": [{"name": "zz"}]}),
    ("POST", "fz-pull", ("alerts",), {"alerts": [ALERT]}),
    ("PUT", "fz-pull", ("alerts",), {"alerts": [ALERT]}),
    ("DELETE", "fz-pull", ("alerts",), {"alerts": [{"id": "1"}]}),
)
DEEP = "__deep__"  # replaced by 50,000 nested arrays once dumped (too deep to build as objects)
REMOVE = "__remove__"
bad_values = st.one_of(
    st.sampled_from([*NASTY_NUMBERS, *NASTY_STRINGS, DEEP, REMOVE, [], {}, [[]], {"a": None}]),
    surrogate_text,
    leaves,
    shaped,
)


def leaf_paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into ``value`` (dict keys, list indices), subtrees included."""
    out = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, child in value.items():
            out += leaf_paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            out += leaf_paths(child, (*prefix, index))
    return out


def replaced(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    copy = dict(value) if isinstance(value, dict) else list(value)
    if not rest and new == REMOVE:
        del copy[head]
    else:
        copy[head] = replaced(copy[head], rest, new)
    return copy


def dumped(body: Any) -> bytes:
    return json.dumps(body).replace(f'"{DEEP}"', "[" * 50_000).encode()


QUERY_KEYS = ("per_page", "previous", "prefix", "n", "reservation_id", "oauth", "limit", "delete")
QUERY_VALUES = ("²", "\u0661", "-1", "1e3", " 1", "NaN", "inf", "", "9" * 30, "\x00", "%", "0")
query_values = st.sampled_from(QUERY_VALUES) | st.text(max_size=12)
queries = st.dictionaries(st.sampled_from(QUERY_KEYS), query_values, max_size=3)
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE", "FOO")


# --------------------------------------------------------------------------- properties


@FUZZ
@given(
    route=st.sampled_from(ROUTES),
    method=st.none() | st.sampled_from(METHODS),
    queue=queue_names,
    data=st.data(),
    body=bodies,
    query=queries,
)
def test_every_endpoint_answers_random_input_with_2xx_or_a_clean_4xx(
    dev: Dev,
    route: tuple[str, tuple[str, ...], Any],
    method: str | None,
    queue: str,
    data: st.DataObject,
    body: bytes | None,
    query: dict[str, str],
) -> None:
    known_ids = prepare(dev)
    route_method, pattern, _ = route
    values = {
        "{q}": queue,
        "{id}": data.draw(st.sampled_from(known_ids) | st.text(min_size=1, max_size=20)),
        "{name}": data.draw(st.sampled_from(["", "fz-push", "nope"]) | st.text(max_size=10)),
        "{aid}": data.draw(st.text(min_size=1, max_size=10)),
    }
    parts = [values.get(p, p) for p in pattern]
    path = f"/3/projects/{PROJECT}/" + "/".join(segment(p) for p in parts)

    answer = dev.request(method or route_method, path, content=body, params=query)

    assert answer.status_code in API_STATUSES, (answer.status_code, answer.text)
    if answer.status_code >= 400 and (method or route_method) != "HEAD":
        assert isinstance(answer.json()["msg"], str), answer.text
    elif answer.content:
        answer.json()  # 2xx answers are JSON
    dev.check(queue=queue)


@FUZZ
@given(template=st.sampled_from(TEMPLATES), data=st.data())
def test_one_bad_field_in_an_otherwise_valid_body_is_a_clean_4xx(
    dev: Dev, template: tuple[str, str, tuple[str, ...], Any], data: st.DataObject
) -> None:
    prepare(dev)
    method, queue, rest, body = template
    paths = leaf_paths(body)
    path = data.draw(st.sampled_from(paths), label="field")
    value = data.draw(bad_values, label="value")
    mutated = no_long_poll(replaced(body, path, value))
    url = f"/3/projects/{PROJECT}/queues/" + "/".join(segment(p) for p in (queue, *rest))

    answer = dev.request(method, url, content=dumped(mutated))

    assert answer.status_code in API_STATUSES, (mutated, answer.status_code, answer.text)
    if answer.status_code >= 400:
        assert isinstance(answer.json()["msg"], str), answer.text
    dev.check(queue=queue)


@FUZZ
@given(
    path=st.sampled_from(["/_dev/deliveries", "/_dev/state", "/_dev/health"]),
    method=st.sampled_from(METHODS),
    limit=query_values,
    query=st.fixed_dictionaries(
        {}, optional=dict.fromkeys(("queue", "project", "message_id"), query_values)
    ),
)
def test_control_plane_answers_random_queries_with_json(
    dev: Dev, path: str, method: str, limit: str, query: dict[str, str]
) -> None:
    answer = dev.request(method, path, params={**query, "limit": limit})
    assert answer.status_code in (200, 400, 404, 405), (answer.status_code, answer.text)
    if method != "HEAD":
        answer.json()
    dev.check()


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


@FUZZ
@given(name=st.text(min_size=1, max_size=40))
@example(name="\n")  # found by the fuzzer: created by PUT, then 404 for everything else
@example(name="a\nb/c?d#e%f ..")
def test_queue_names_with_reserved_characters_round_trip(dev: Dev, name: str) -> None:
    project = "names"
    assert dev.api("PUT", project, "queues", name, body={}).status_code == 200
    posted = dev.api("POST", project, "queues", name, "messages", body=messages(1))
    assert posted.status_code == 201, posted.text
    info = dev.api("GET", project, "queues", name)
    assert (info.status_code, info.json()["queue"]["name"]) == (200, name)
    assert info.json()["queue"]["size"] == 1
    listed = dev.request("GET", f"/3/projects/{project}/queues", params={"prefix": name})
    assert name in [q["name"] for q in listed.json()["queues"]]
    assert dev.api("DELETE", project, "queues", name).status_code == 200
    assert dev.api("GET", project, "queues", name).status_code == 404
    dev.check(project)


def near_misses(token: str) -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.binary(max_size=60),
        st.sampled_from(
            [
                b"",
                b"OAuth",
                b"OAuth ",
                f"OAuth {token[:-1]}".encode(),
                f"OAuth {token}x".encode(),
                f"OAuth {token.upper()}".encode(),
                f"Basic {token}".encode(),
                f"OAuth{token}".encode(),
                f"OAuth {token}\x00".encode(),
                token.encode(),
                f"OAuth {token}".encode("utf-16"),
                f"OAuth {token}".encode().replace(b"0", "\u0660".encode()),
            ]
        ),
        st.text(max_size=40).map(lambda t: f"OAuth {t}".encode()),
    ).filter(lambda v: v.decode("latin-1").partition(" ")[2].strip() != token)


@FUZZ
@given(data=st.data(), query=st.text(max_size=30), path=st.sampled_from(["/_dev/state", "/3/x"]))
def test_any_credential_but_the_token_gets_401(
    dev: Dev, data: st.DataObject, query: str, path: str
) -> None:
    assume(query != TOKEN)
    header = data.draw(near_misses(TOKEN))
    if path == "/3/x":
        path = f"/3/projects/{PROJECT}/queues"
    answer = dev.raw(
        "GET",
        path,
        headers=[(b"authorization", header)],
        query=b"oauth=" + quote(query).encode(),
        authorized=False,
    )
    assert answer.status == 401, (header, answer)
    assert json.loads(answer.body) == {"msg": "Invalid token"}
    ok = dev.raw("GET", path, query=b"oauth=" + TOKEN.encode(), authorized=False)
    assert ok.status == 200


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
