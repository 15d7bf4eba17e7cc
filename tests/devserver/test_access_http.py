"""Who may talk to the dev server (issue 19, N3), over a real socket: a ``Host`` check on every
endpoint, no request made by another site's page, the token when one is configured.

The browser side of the same rule (a real page of another origin, DNS rebinding) is
``test_access_browser.py``; the rule itself is :mod:`ironpush.devserver._access`.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import pytest
from access_kit import (
    EVIL_HOST,
    KEEP,
    OTHER_ORIGIN,
    PUSH,
    SECRET,
    api_requests,
    control_requests,
    fingerprint,
    populate,
    send,
)
from click.testing import CliRunner
from dev_process import DevProcess
from starlette.datastructures import Headers

from ironpush.cli._dev import dev_command
from ironpush.devserver import DevConfig, DevServer
from ironpush.devserver._access import Access
from ironpush.devserver._routes import ROUTES

TOKEN = "access-token-0123456789"

CROSS_SITE = [
    {"Origin": OTHER_ORIGIN},
    {"Origin": "null"},  # a sandboxed frame, a file:// page
    {"Origin": "http://evil.test"},
    {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors"},
    {"Sec-Fetch-Site": "same-site", "Sec-Fetch-Mode": "cors"},  # another port of 127.0.0.1
    {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"},  # a form's POST
]

# Every kind of endpoint: v3 reads and writes, the control plane, the stream, the inspector.
ENDPOINTS = [
    ("GET", f"/3/projects/dev/queues/{PUSH}"),  # the one answer with secrets in clear
    ("GET", "/3/projects/dev/queues"),
    ("POST", f"/3/projects/dev/queues/{KEEP}/messages"),
    ("DELETE", f"/3/projects/dev/queues/{KEEP}/messages"),
    ("POST", "/_dev/reset"),
    ("GET", "/_dev/state"),
    ("GET", "/_dev/deliveries"),
    ("GET", "/_dev/health"),
    ("GET", "/_dev/events"),
    ("GET", "/_dev/ui"),
    ("GET", "/_dev/ui/static/inspector.js"),
    ("GET", "/no/such/path"),
]


@pytest.fixture
def dev() -> Iterator[DevServer]:
    with DevServer() as server:
        yield server


# --------------------------------------------------------------------------- Host


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_a_foreign_host_is_refused_on_every_endpoint(
    dev: DevServer, method: str, path: str
) -> None:
    populate(dev)
    before = fingerprint(dev)
    body = {"messages": [{"body": "rebound"}]} if method == "POST" else None
    r = httpx.request(method, dev.url + path, json=body, headers={"Host": f"{EVIL_HOST}:80"})
    assert r.status_code == 403
    assert r.json()["msg"].startswith(f"unexpected Host '{EVIL_HOST}': this dev server answers")
    assert f"--allow-host {EVIL_HOST}" in r.json()["msg"]
    assert SECRET not in r.text
    assert fingerprint(dev) == before


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "localhost:8080",
        "LOCALHOST.",
        "[::1]:8080",
        "app.localhost",
        "192.0.2.10:8080",  # any IP: how a LAN or container client reaches 0.0.0.0
        "[2001:db8::7]",
        socket.gethostname(),
    ],
)
def test_the_servers_own_names_are_answered(dev: DevServer, host: str) -> None:
    r = httpx.get(f"{dev.url}/3/projects/dev/queues", headers={"Host": host})
    assert (r.status_code, r.json()) == (200, {"queues": []})


def test_allowed_hosts_and_the_public_url_host_are_answered() -> None:
    names = ("ironpush", ".corp.example")
    with DevServer(allowed_hosts=names, public_url="http://box.test:1") as dev:

        def status(host: str) -> int:
            return httpx.get(f"{dev.url}/_dev/health", headers={"Host": host}).status_code

        allowed = ["ironpush:8080", "corp.example", "a.b.corp.example", "box.test"]
        refused = ["ironpush.evil.test", "corp.example.evil.test", "xcorp.example", "box.test2"]
        assert [status(h) for h in allowed] == [200] * len(allowed)
        assert [status(h) for h in refused] == [403] * len(refused)


def test_a_name_given_as_host_is_answered_and_a_wildcard_bind_adds_no_name() -> None:
    assert DevServer(host="dev-box.lan").config.allowed_hosts == ("dev-box.lan",)
    assert DevServer(host="0.0.0.0").config.allowed_hosts == ()
    assert DevServer(host="::", allowed_hosts=["Ironpush"]).config.allowed_hosts == ("ironpush",)
    with pytest.raises(ValueError, match="is not a host name"):
        DevServer(allowed_hosts=["http://ironpush:8080"])


def test_ironpush_dev_on_all_interfaces_answers_the_names_it_is_given() -> None:
    # What a compose file or `docker run -e IRONPUSH_DEV_ALLOW_HOSTS=...` does.
    env = {"IRONPUSH_DEV_ALLOW_HOSTS": "ironpush, mq.internal .lan"}
    dev = DevProcess("--host", "0.0.0.0", env=env)
    try:
        port = dev.url.rsplit(":", 1)[1]
        url = f"http://127.0.0.1:{port}/3/projects/dev/queues"

        def status(host: str) -> int:
            return httpx.get(url, headers={"Host": host}).status_code

        answered = ["ironpush", f"mq.internal:{port}", "box.lan", "10.1.2.3", socket.gethostname()]
        assert [status(h) for h in answered] == [200] * len(answered)
        assert status(EVIL_HOST) == 403
        assert "Host names answered: localhost, IP addresses" in dev.text()
    finally:
        assert dev.stop() == 0


def test_allow_host_is_repeatable_and_takes_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    args = ["--allow-host", "Box.lan", "--allow-host", "a,.b.example"]
    assert dev_command.make_context("dev", args).params["allowed_hosts"] == (
        "box.lan",
        "a",
        ".b.example",
    )
    monkeypatch.setenv("IRONPUSH_DEV_ALLOW_HOSTS", "one two,three")
    assert dev_command.make_context("dev", []).params["allowed_hosts"] == ("one", "two", "three")


def test_a_bad_allow_host_is_a_usage_error() -> None:
    result = CliRunner().invoke(dev_command, ["--allow-host", "http://box:80"])
    assert result.exit_code == 2
    assert "allowed host 'http://box:80' is not a host name" in result.output


def test_the_host_rule_reads_any_header_without_failing() -> None:
    access = Access.of(DevConfig())
    odd_hosts = ["[::1", "a b", "\udcff", ":80", "", "x" * 5000, "evil.test:notaport"]
    for odd in [*odd_hosts, "evil.test@127.0.0.1", "127.0.0.1/x", "127.0.0.1\\@evil.test"]:
        assert access.host_refusal(odd) is not None, odd
    assert access.host_refusal(None) is None  # HTTP/1.0 without Host: not a browser


# --------------------------------------------------------------------------- other sites' pages


@pytest.mark.parametrize(
    "headers", CROSS_SITE, ids=lambda h: "+".join(f"{k}={v}" for k, v in h.items())
)
def test_every_state_changing_request_from_another_site_is_refused(
    dev: DevServer, headers: dict[str, str]
) -> None:
    first_id = populate(dev)
    before = fingerprint(dev)
    requests = api_requests(first_id, state_changing=True) + control_requests(first_id)
    for request in requests:
        r = send(dev, request, headers)
        assert r.status_code == 403, (request, r.status_code, r.text)
        assert "request refused" in r.json()["msg"], r.text
    assert fingerprint(dev) == before
    assert len(requests) == len([r for r in ROUTES if r[0] != "GET"]) + 4  # every route tried


@pytest.mark.parametrize(
    "headers", CROSS_SITE[:5], ids=["origin", "null", "evil", "cross", "same-site"]
)
def test_the_event_stream_and_the_reads_refuse_other_sites(
    dev: DevServer, headers: dict[str, str]
) -> None:
    first_id = populate(dev)
    stream = httpx.get(f"{dev.url}/_dev/events", headers={**headers, "Accept": "text/event-stream"})
    assert stream.status_code == 403
    assert stream.headers["content-type"] == "application/json"
    for request in api_requests(first_id, state_changing=False):
        r = send(dev, request, headers)
        assert r.status_code == 403, (request, r.text)
        assert SECRET not in r.text


def test_same_origin_pages_and_clients_without_browser_headers_pass(dev: DevServer) -> None:
    populate(dev)
    post = f"{dev.url}/3/projects/dev/queues/{KEEP}/messages"
    body = {"messages": [{"body": "ok"}]}
    own = [
        {},  # curl, httpx, the official clients
        {"Origin": dev.url},
        {
            "Origin": dev.url.replace("127.0.0.1", "localhost"),
            "Host": dev.url[7:].replace("127.0.0.1", "localhost"),
        },
        {"Sec-Fetch-Site": "same-origin"},
        {"Sec-Fetch-Site": "none"},  # typed in the address bar
    ]
    assert [httpx.post(post, json=body, headers=h).status_code for h in own] == [201] * 5
    with httpx.stream("GET", f"{dev.url}/_dev/events", headers={"Origin": dev.url}) as stream:
        assert stream.status_code == 200
        assert next(stream.iter_lines()) == "retry: 1000"


def test_following_a_link_from_another_site_opens_a_page_but_posting_a_form_does_not(
    dev: DevServer,
) -> None:
    navigate = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"}
    assert httpx.get(f"{dev.url}/_dev/ui", headers=navigate).status_code == 200
    form = httpx.post(f"{dev.url}/_dev/reset", headers={**navigate, "Origin": "null"})
    assert form.status_code == 403


# --------------------------------------------------------------------------- the token


@pytest.mark.parametrize(
    "auth",
    [{}, {"Authorization": "OAuth wrong-token"}, {"Authorization": f"Bearer {TOKEN}x"}],
    ids=["missing", "wrong", "near-miss"],
)
def test_every_api_and_control_route_wants_the_configured_token(auth: dict[str, str]) -> None:
    with DevServer(token=TOKEN) as dev:
        first_id = populate(dev)
        before = fingerprint(dev)
        requests = [
            *api_requests(first_id, state_changing=False),
            *api_requests(first_id, state_changing=True),
            *control_requests(first_id)[:3],
            ("GET", "/_dev/state", None),
            ("GET", "/_dev/deliveries", None),
            ("GET", "/_dev/idle", None),
            ("GET", "/_dev/health", None),
            ("GET", "/_dev/events", None),
        ]
        for request in requests:
            r = send(dev, request, auth)
            assert (r.status_code, r.json()) == (401, {"msg": "Invalid token"}), request
        ui = httpx.get(f"{dev.url}/_dev/ui", headers=auth)
        assert ui.status_code == 401
        assert fingerprint(dev) == before
        assert len(requests) == len(ROUTES) + 8  # every v3 route


def test_the_official_clients_header_carries_the_token() -> None:
    with DevServer(token=TOKEN) as guarded:
        r = httpx.get(
            f"{guarded.url}/3/projects/dev/queues", headers={"Authorization": f"OAuth {TOKEN}"}
        )
        assert r.status_code == 200


def test_origin_rule_in_pure_logic() -> None:
    access = Access.of(DevConfig(public_url="https://dev.example"))

    def refused(method: str, **headers: str) -> bool:
        scope = {"type": "http", "method": method, "scheme": "http"}
        raw = Headers({"host": "127.0.0.1:8080", **headers})
        return access.origin_refusal(scope, raw) is not None

    assert not refused("POST", origin="http://127.0.0.1:8080")
    assert not refused("POST", origin="HTTP://127.0.0.1:8080")
    assert not refused("POST", origin="https://dev.example")  # behind a TLS proxy
    assert not refused("POST", origin="https://dev.example:443")
    assert refused("POST", origin="http://127.0.0.1:8081")
    assert refused("POST", origin="http://127.0.0.1")
    assert refused("POST", origin="http://dev.example")  # another scheme: another origin
    assert refused("GET", origin="http://evil.test")
    assert refused("GET", **{"sec-fetch-site": "same-site", "sec-fetch-mode": "cors"})
    assert not refused("GET", **{"sec-fetch-site": "cross-site", "sec-fetch-mode": "navigate"})
    assert refused("POST", **{"sec-fetch-site": "cross-site", "sec-fetch-mode": "navigate"})
    assert not refused("DELETE")
