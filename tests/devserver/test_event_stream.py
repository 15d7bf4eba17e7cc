"""``GET /_dev/events``: the dev server's event stream (SSE), its ring and its slow clients."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from subscriber_servers import Subscribers
from support import wait_until

from ironpush.devserver import DevServer
from ironpush.devserver._events import EventFilter, EventHub, describe


@pytest.fixture
def dev() -> Iterator[DevServer]:
    with DevServer() as server:
        yield server


class Stream:
    """A real SSE client on a raw socket and a thread: collects (event name, data) frames."""

    def __init__(self, url: str, *, headers: dict[str, str] | None = None, **params: Any):
        self.frames: list[tuple[str, dict[str, Any]]] = []
        self.status: int | None = None
        self.ended = threading.Event()
        self.complete = False
        host, port = url.removeprefix("http://").rsplit(":", 1)
        self._sock = socket.create_connection((host, int(port)), timeout=30)
        target = "/_dev/events?" + urlencode(params, doseq=True)
        lines = [f"GET {target} HTTP/1.1", f"Host: {host}"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self._sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        wait_until(lambda: self.status is not None or self.ended.is_set(), what="the answer")
        if self.status == 200:
            wait_until(lambda: self.names(), what="the hello frame")

    def _run(self) -> None:
        reader = self._sock.makefile("rb")
        try:
            self.status = int(reader.readline().split()[1])
            while reader.readline() not in (b"\r\n", b""):
                pass  # headers
            name, data, pending = "message", "", b""
            while size_line := reader.readline():  # chunked: size, data, CRLF
                size = int(size_line.strip() or b"0", 16)
                if size == 0:
                    self.complete = True  # the server ended the response (last chunk)
                    break
                pending += reader.read(size)
                reader.readline()
                *lines, pending = pending.split(b"\n")
                for raw in lines:
                    line = raw.decode()
                    if line.startswith("event:"):
                        name = line[6:].strip()
                    elif line.startswith("data:"):
                        data = line[5:].strip()
                    elif not line and data:
                        self.frames.append((name, json.loads(data)))
                        name, data = "message", ""
        except (OSError, ValueError, IndexError):
            pass  # closed by close()
        finally:
            self.ended.set()

    def names(self) -> list[str]:
        return [n for n, _ in self.frames]

    def events(self) -> list[dict[str, Any]]:
        return [d for n, d in self.frames if "id" in d]

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)  # the reading thread sees the end at once
        self._thread.join(10)
        self._sock.close()
        assert not self._thread.is_alive()


def push_queue(dev: DevServer, name: str, url: str, **options: Any) -> None:
    options.setdefault("retries_delay", 0.05)
    dev.client().create_queue(name, subscribers=[{"name": "s", "url": url}], **options)


def test_a_push_and_its_retry_are_streamed_with_their_answers(
    dev: DevServer, subs: Subscribers, queue_name: str
) -> None:
    stream = Stream(dev.url)
    try:
        url = subs.url(503, 200)
        push_queue(dev, queue_name, url, retries=2)
        [mid] = dev.client().queue(queue_name).post("x")

        first, second = wait_until(lambda: len(stream.events()) >= 2 and stream.events()[:2])
    finally:
        stream.close()
    assert stream.names()[0] == "hello"
    assert (first["type"], first["outcome"], first["message_id"]) == ("push", "retrying", mid)
    assert (first["try"], first["tries"], first["status_code"]) == (1, 3, 503)
    assert first["msg"] == first["answer"] == "answer 503"
    assert first["retry_in"] == 0.05
    assert (second["outcome"], second["try"], second["status_code"]) == ("delivered", 2, 200)
    assert second["id"] == first["id"] + 1
    assert f"push {queue_name} {mid} → s try 1/3: 503 (answer 503)" in first["text"]


def test_acks_via_api_and_url_and_refusals_are_streamed(
    dev: DevServer, subs: Subscribers, queue_name: str
) -> None:
    stream = Stream(dev.url, outcome=["acked", "refused"])
    try:
        url = subs.url(202)
        push_queue(dev, queue_name, url, retries_delay=60)
        q = dev.client().queue(queue_name)
        a, b = q.post("a", "b")
        hits = subs.wait_hits(url, 2)
        by_id = {h.headers["iron-message-id"]: h for h in hits}
        q.delete(a, reservation_id=by_id[a].reservation_id, subscriber_name="s")
        assert httpx.delete(by_id[b].headers["iron-subscriber-message-url"]).status_code == 200
        refused = httpx.delete(by_id[b].headers["iron-subscriber-message-url"].replace("=", "=x"))
        assert refused.status_code == 403

        acks = wait_until(lambda: len(stream.events()) >= 3 and stream.events())
    finally:
        stream.close()
    assert [(e["message_id"], e["via"], e["outcome"]) for e in acks] == [
        (a, "api", "acked"),
        (b, "url", "acked"),
        (b, "url", "refused"),
    ]
    assert acks[2]["status_code"] == 403
    assert "via message URL" in acks[1]["text"]
    # the attempt records know how they were acknowledged
    [record] = dev.deliveries(message_id=a)
    assert record["ack"]["result"] == "acked"
    assert record["ack"]["via"] == "api"


def test_an_expired_202_and_the_error_queue_report_are_streamed(
    dev: DevServer, subs: Subscribers, queue_name: str
) -> None:
    stream = Stream(dev.url, queue=queue_name)
    try:
        url = subs.url(202, 500)
        push_queue(dev, queue_name, url, retries=1, retries_delay=60, error_queue="errs")
        [mid] = dev.client().queue(queue_name).post("x")
        subs.wait_hits(url, 1)
        dev.expire(queue_name, mid)  # the 202's window ends now: pushed again, fails, reported
        wait_until(lambda: "error_queue" in [e["type"] for e in stream.events()])
    finally:
        stream.close()
    kinds = [(e["type"], e["outcome"]) for e in stream.events()]
    assert kinds == [
        ("push", "deferred"),
        ("expired", "expired"),
        ("push", "failed"),
        ("error_queue", "error-queue"),
    ]
    report = stream.events()[-1]
    assert report["error_queue"] == "errs"
    assert report["failures"] == [{"name": "s", "code": 500, "msg": "answer 500"}]
    [report_message] = dev.client().queue("errs").peek()
    assert report["report_id"] == report_message.id


def test_filters_since_and_last_event_id(
    dev: DevServer, subs: Subscribers, queue_name: str
) -> None:
    url = subs.url(200)
    push_queue(dev, queue_name, url)
    push_queue(dev, queue_name + "-other", url)
    q = dev.client().queue(queue_name)
    [old] = q.post("old")
    assert dev.wait_idle()
    middle = time.time()
    [new] = q.post("new")
    dev.client().queue(queue_name + "-other").post("elsewhere")
    assert dev.wait_idle()
    since = Stream(dev.url, queue=queue_name, since=str(middle))
    everything = Stream(dev.url, queue=queue_name, since="0")
    # The catch-up frames come after the hello frame, possibly in later reads: wait for both
    # (reading the first id before they arrived resumed from 0, and got `old` too).
    caught_up = wait_until(lambda: len(everything.events()) >= 2 and everything.events())
    resumed = Stream(dev.url, headers={"Last-Event-ID": str(caught_up[0]["id"])}, queue=queue_name)
    live_only = Stream(dev.url)
    try:
        wait_until(lambda: since.events() and resumed.events())
    finally:
        for s in (since, everything, resumed, live_only):
            s.close()
    assert [e["message_id"] for e in everything.events()] == [old, new]
    assert [e["message_id"] for e in since.events()] == [new]
    assert [e["message_id"] for e in resumed.events()] == [new]
    assert live_only.events() == []  # no since, no Last-Event-ID: only what happens next


def test_bad_filters_are_a_400_and_the_token_is_required(subs: Subscribers) -> None:
    with DevServer(token="t0k3n") as dev:
        assert httpx.get(dev.url + "/_dev/events").status_code == 401
        headers = {"Authorization": "OAuth t0k3n"}
        bad = httpx.get(dev.url + "/_dev/events?outcome=great", headers=headers)
        assert bad.status_code == 400
        assert "unknown outcome 'great'" in bad.json()["msg"]
        assert httpx.get(dev.url + "/_dev/events?since=soon", headers=headers).status_code == 400


def test_a_client_that_stops_reading_is_dropped_with_a_notice(dev: DevServer) -> None:
    hub = dev.engine.events
    hub.client_buffer = 20
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a client that reads nothing
    sock.connect(("127.0.0.1", dev.port))
    sock.sendall(b"GET /_dev/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    wait_until(lambda: hub.streams == 1, what="the stream to be registered")
    filler = {"type": "push", "outcome": "delivered", "queue": "q", "msg": "x" * 2000}

    def publish_burst() -> bool:
        for _ in range(200):
            dev.engine.loop.call_soon_threadsafe(hub.publish, filler)
        return hub.dropped_clients == 1

    # The socket buffers fill, the server stops being able to send, the client's queue fills.
    wait_until(publish_burst, timeout=30, what="the slow client to be dropped")
    assert hub.streams == 0
    sock.settimeout(10)
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
        if received.endswith(b"0\r\n\r\n"):  # the end of the chunked response
            break
    sock.close()
    assert b"event: dropped" in received
    assert b"fell more than 20 events behind" in received
    assert len(hub.ring) <= 5_000  # the ring is bounded too


def test_closing_the_hub_ends_open_streams(dev: DevServer) -> None:
    stream = Stream(dev.url)
    dev.engine.loop.call_soon_threadsafe(dev.engine.events.close)
    assert stream.ended.wait(10)
    stream.close()
    assert stream.complete


# --------------------------------------------------------------------------- the hub alone


def test_hub_ring_is_bounded_and_recent_is_filtered() -> None:
    hub = EventHub(ring_size=3)
    for i in range(5):
        hub.publish({"type": "push", "outcome": "delivered", "queue": f"q{i % 2}"})
    assert [e["id"] for e in hub.ring] == [3, 4, 5]
    assert [e["id"] for e in hub.recent(EventFilter(queues=frozenset({"q0"})))] == [3, 5]
    assert hub.last_id == 5


def test_hub_drops_a_full_subscriber_and_frees_its_queue() -> None:
    hub = EventHub(client_buffer=3)
    sub, backlog = hub.subscribe(EventFilter())
    assert backlog == []
    for _ in range(4):
        hub.publish({"type": "push", "outcome": "delivered"})
    assert sub.dropped
    assert sub.queue.qsize() == 1  # only the notice: nothing buffered for a gone client
    assert (hub.streams, hub.dropped_clients) == (0, 1)


def test_a_failing_listener_does_not_stop_the_others() -> None:
    hub = EventHub()
    seen: list[int] = []

    def broken(event: dict[str, Any]) -> None:
        raise RuntimeError("bug")

    hub.add_listener(broken)
    hub.add_listener(lambda e: seen.append(e["id"]))
    hub.publish({"type": "push"})
    assert seen == [1]


def test_describe_names_what_happened() -> None:
    base = {"queue": "q", "message_id": "7", "subscriber": "s"}
    push = {**base, "type": "push", "try": 4, "tries": 4, "status_code": None}
    failed = describe({**push, "outcome": "failed", "msg": "timed out", "duration_ms": 10.0})
    assert failed == "push q 7 → s try 4/4: no answer (timed out) in 10.0 ms → failed: no try left"
    ack = describe(
        {**base, "type": "ack", "outcome": "acked", "via": "url", "reservation_id": "abcdef0123"}
    )
    assert ack == "ack q 7 ← s via message URL, reservation abcdef01…: acked"
    replay = describe({**base, "type": "replay", "subscribers": ["s"], "how": "same message"})
    assert replay == "replay q 7 → s (same message)"


def test_stopping_the_server_ends_open_streams_at_once() -> None:
    dev = DevServer().start()
    stream = Stream(dev.url)
    dev.stop()
    assert stream.ended.wait(10)
    stream.close()
    # Ended by the server (its last chunk), not cut when uvicorn's graceful timeout ran out.
    assert stream.complete
