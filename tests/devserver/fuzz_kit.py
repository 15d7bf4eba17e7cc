"""The dev-server fuzzing harness: the app in-process on a blocking portal, raw ASGI for what
httpx refuses to send, the consistency check run after every request, and the strategies
(nasty strings, numbers and bodies, valid body templates to break one field at a time); the
fixtures ``dev`` (one server per module) and ``fresh`` (one per test)."""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from fuzz_common import FUZZ as FUZZ  # the tests' settings, shared with the receiver's
from fuzz_common import Exchange, asgi_exchange
from hypothesis import strategies as st
from starlette.applications import Starlette

from ironpush.devserver import DevConfig, create_app

TOKEN = "fuzz-dev-token-0123456789"
PROJECT = "fz"
SENTINEL = "sentinel"  # a project no generated request targets on purpose
API_STATUSES = {200, 201, 400, 403, 404, 405, 413}
HOOK = "http://127.0.0.1:9/never-pushed"


def segment(text: str) -> str:
    """One path segment, percent-encoded like the client does (dots too: no normalising)."""
    return quote(text, safe="").replace(".", "%2E")


# --------------------------------------------------------------------------- the harness


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
    ) -> Exchange:
        auth = [(b"authorization", f"OAuth {TOKEN}".encode())] if authorized else []
        scope = {
            "method": method,
            "path": path,
            "query_string": query,
            "headers": [*auth, *headers],
        }
        if raw_path is not None:
            scope["raw_path"] = raw_path
        call = functools.partial(asgi_exchange, self.app, scope, list(chunks), disconnect)
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


@contextlib.contextmanager
def running_dev() -> Iterator[Dev]:
    """The dev server app on its own event loop, with the sentinel project in place."""
    # "dev" is not one of the server's names by default: allowed like a container's name.
    app = create_app(DevConfig(token=TOKEN, allowed_hosts=("dev",)))
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
    """A server of the test's own: the module's may hold any queue the fuzzer created."""
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
