"""Shared by the access tests (``test_access_*.py``): a populated dev server, a fingerprint of
its whole state, and every route of the app as a request to send.

The fingerprint is read through the API and ``/_dev/state`` (nothing white-box), so "the state
is unchanged" means what a user would see.
"""

from __future__ import annotations

from typing import Any

import httpx

from ironpush.devserver import DevServer
from ironpush.devserver._routes import ROUTES

SECRET = "hdr-secret-0123456789-abcdef"
KEEP, PUSH = "keep", "pushed"
# Another port of the same address: another origin (and the same site).
OTHER_ORIGIN = "http://127.0.0.1:9"
EVIL_HOST = "evil.test"

Request = tuple[str, str, Any]


def populate(dev: DevServer) -> str:
    """A pull queue with two messages and a push queue whose subscriber has a secret header;
    the id of the pull queue's first message."""
    with dev.client() as mq:
        ids = mq.queue(KEEP).post("first", "second")
        subscriber = {
            "name": "s",
            "url": "http://127.0.0.1:9/hook",
            "headers": {"X-Push-Secret": SECRET},
        }
        mq.create_queue(PUSH, subscribers=[subscriber], retries_delay=60)
    return str(ids[0])


def fingerprint(dev: DevServer) -> dict[str, Any]:
    """Everything the dev server holds, as the API shows it to the owner."""
    auth = {"Authorization": f"OAuth {dev.token}"}
    base = f"{dev.url}/3/projects/dev/queues"
    with httpx.Client(headers=auth, timeout=30) as http:
        names = [q["name"] for q in http.get(base).json()["queues"]]
        queues = {name: http.get(f"{base}/{name}").json() for name in names}
        peeked = {
            name: http.get(f"{base}/{name}/messages", params={"n": 100}).json() for name in names
        }
        state = http.get(f"{dev.url}/_dev/state").json()
    state.pop("pusher", None)  # attempts counters: no push happens in these tests anyway
    return {"queues": queues, "messages": peeked, "state": state}


def _body(method: str, pattern: tuple[str, ...]) -> Any:
    if pattern[-1] == "messages" and method == "POST":
        return {"messages": [{"body": "posted by another site"}]}
    if pattern == ("queues", "{q}") and method in ("PUT", "PATCH"):
        return {"queue": {"message_timeout": 31}}
    if pattern[-1] == "subscribers" and method != "GET":
        return {"subscribers": [{"name": "evil", "url": "http://evil.test/steal"}]}
    return {}


def api_requests(message_id: str, *, state_changing: bool) -> list[Request]:
    """One request per v3 route (the reads, or the state-changing ones) on the populated queues."""
    values = {"{q}": KEEP, "{id}": message_id, "{name}": "s", "{aid}": "a1"}
    found = []
    for method, pattern, _handler in ROUTES:
        if (method != "GET") != state_changing:
            continue
        queue = PUSH if "subscribers" in pattern or "alerts" in pattern else KEEP
        parts = [queue if p == "{q}" else values.get(p, p) for p in pattern]
        found.append((method, "/3/projects/dev/" + "/".join(parts), _body(method, pattern)))
    return found


def control_requests(message_id: str) -> list[Request]:
    """The state-changing ``/_dev`` requests (control plane, replay, an inspector action)."""
    where = {"project": "dev", "queue": KEEP, "message_id": message_id}
    return [
        ("POST", "/_dev/reset", None),
        ("POST", "/_dev/expire", where),
        ("POST", "/_dev/replay", {"project": "dev", "queue": PUSH, "body": "replayed"}),
        ("POST", "/_dev/ui/actions/clear", {"project": "dev", "queue": KEEP, "csrf": "x"}),
    ]


def send(dev: DevServer, request: Request, headers: dict[str, str]) -> httpx.Response:
    method, path, body = request
    if path.startswith("/_dev/ui/actions/"):  # an HTML form's POST
        return httpx.request(method, dev.url + path, data=body, headers=headers, timeout=30)
    return httpx.request(method, dev.url + path, json=body, headers=headers, timeout=30)
