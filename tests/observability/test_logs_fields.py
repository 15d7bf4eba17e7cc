"""The JSON lines themselves: ``ironpush dev --log-format json`` (a real dev server pushing to a
real receiver), and :class:`~ironpush._logfields.JsonFormatter`'s keys and masking."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import httpx
from log_kit import ROOT, json_lines
from support import free_port, wait_until

from ironpush import IronMQ, PushMessage, PushRouter, subscribe_app
from ironpush._logfields import CONTEXT_KEYS, JsonFormatter
from ironpush._signing import push_secret
from ironpush.server_thread import ServerThread

KEYS = ["fields-test-key-0123456789abcdef-0123456789"]
TOKEN = "fields-dev-token-s3cret-0123456789abcdef"


def test_dev_server_json_lines_carry_each_push_and_no_secret(tmp_path: Path) -> None:
    port = free_port()
    err = tmp_path / "dev.err"
    proc = subprocess.Popen(
        [sys.executable, "-m", "ironpush", "dev", "--port", str(port), "--log-format", "json"],
        env={**os.environ, "PYTHONPATH": str(ROOT), "IRONPUSH_DEV_TOKEN": TOKEN},
        stdout=subprocess.DEVNULL,
        stderr=err.open("wb"),
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    router = PushRouter(secret_keys=KEYS)

    @router.route("/ok", queue="fields", subscriber="svc")
    def ok(msg: PushMessage) -> None:
        return None

    try:

        def up() -> bool:
            try:
                return httpx.get(url + "/_dev/deliveries", timeout=2).status_code < 500
            except httpx.TransportError:
                return proc.poll() is not None

        wait_until(up, 60, "ironpush dev to answer", report=err.read_text)
        with (
            ServerThread(router) as service,
            IronMQ(cloud=url, project_id="dev", token=TOKEN) as mq,
        ):
            subscribe_app(router, service.url, client=mq)
            [message_id] = mq.queue("fields").post('{"n": 1}')
            mq.queue("fields").wait_for_push(message_id, timeout=30)
            wait_until(lambda: message_id in err.read_text(), 30, "the push line")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    text = err.read_text()
    lines = json_lines(text)
    [push] = [line for line in lines if line.get("event") == "push"]
    assert {k: push[k] for k in ("logger", "queue", "message_id", "subscriber", "attempt")} == {
        "logger": "ironpush.devserver",
        "queue": "fields",
        "message_id": message_id,
        "subscriber": "svc",
        "attempt": 1,
    }
    assert (push["status"], push["outcome"]) == (200, "delivered")
    assert push["duration_ms"] >= 0
    assert push["reservation_id"]
    assert push["message"].startswith("push fields ")
    for secret in (TOKEN, *KEYS, push_secret("fields", "svc", KEYS)):
        assert secret not in text


def test_json_formatter_keys_order_masking_and_exceptions() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger("ironpush.test.fields")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning(
            "late ack of %s",
            "m1",
            extra={
                "message_id": "m1",
                "queue": "orders",
                "subscriber": "billing",
                "attempt": 2,
                "outcome": "late",
                "api_token": "tok-0123456789abcdef-secret",
                "url": "https://user:pw@mq.example/3/x?oauth=abcdef0123456789xyz",
                "order_id": 7,
            },
        )
        try:
            raise KeyError("boom")
        except KeyError:
            log.exception("failed")
    finally:
        log.removeHandler(handler)
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert list(first)[:5] == ["time", "level", "logger", "message", "pid"]
    assert [k for k in first if k in CONTEXT_KEYS] == [
        "message_id",
        "queue",
        "subscriber",
        "attempt",
        "outcome",
    ]
    assert first["message"] == "late ack of m1"
    assert first["level"] == "WARNING"
    assert first["time"].endswith("Z")
    assert first["order_id"] == 7  # any extra= field
    assert "tok-0123456789abcdef-secret" not in json.dumps(first)
    assert first["api_token"] == "tok-***"
    assert "pw@" not in first["url"]
    assert "abcdef0123456789xyz" not in first["url"]
    assert second["error_type"] == "KeyError"
    assert "Traceback (most recent call last)" in second["exception"]
