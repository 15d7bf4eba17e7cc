"""``ironpush serve --workers 2 --log-format json``: every line of every process is one JSON
object with the documented keys, each start-up warning appears once, and no secret appears.

A real dev server pushes to the service (its subscribers registered with the router's own
secrets); direct pushes on new connections reach both workers; one push carries its secret
in the query string, which the access log must not show.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from log_kit import Service, direct_push, json_lines, start
from log_service import KEYS, TOKEN, router
from support import wait_until

from ironpush import subscribe_app
from ironpush._signing import push_secret
from ironpush.devserver import DevServer

BASE_KEYS = {"time", "level", "logger", "message", "pid"}
PUSH_KEYS = {"message_id", "queue", "subscriber", "attempt", "reservation_id", "outcome"}
PUSH_KEYS |= {"status", "duration_ms"}


@pytest.fixture
def dev() -> Iterator[DevServer]:
    with DevServer(token=TOKEN) as server:
        yield server


def delivery_pids(service: Service) -> set[int]:
    lines = [line for line in _lines(service) if line.get("logger") == "ironpush.receiver"]
    return {line["pid"] for line in lines if "status" in line}


def _lines(service: Service) -> list[dict[str, Any]]:
    # While the service runs, its last line may still be half written: whole lines only.
    text = service.text()
    return json_lines(text[: text.rfind("\n") + 1])


def test_json_logs_from_master_and_workers_with_each_warning_once(
    dev: DevServer, tmp_path: Path
) -> None:
    store = f"sqlite:///{tmp_path / 'store.db'}"
    command = ["-m", "ironpush", "serve", "log_service:app", "--workers", "2"]
    service = start(tmp_path, [*command, "--log-format", "json"], dev_port=dev.port, store=store)
    try:
        with dev.client() as mq:
            subscribe_app(router, service.base, client=mq)
            ids = {q: mq.queue(q).post('{"n": 1}')[0] for q in ("logs-ok", "logs-job", "logs-boom")}
            external = mq.queue("logs-external").post('{"n": 2}')[0]
            for queue in ("logs-ok", "logs-job", "logs-boom"):
                mq.queue(queue).wait_for_push(ids[queue], timeout=60)
            wait_until(
                lambda: (
                    mq.queue("logs-external").get_message_push_statuses(external)[0].status
                    == "reserved"
                ),
                30,
                "the external push's 202",
            )
        direct_push(service, "/ok", secret_in="query")
        for _ in range(200):  # new connections until both workers have logged a delivery
            if len(delivery_pids(service)) >= 2:
                break
            direct_push(service, "/ok")
        wait_until(
            lambda: any(line.get("result") == "acked" for line in _lines(service)),
            30,
            "the job's ack line",
            report=service.text,
        )
    finally:
        service.stop()
    text = service.text()
    lines = json_lines(text)
    assert lines
    for line in lines:
        assert set(line) >= BASE_KEYS, line
    assert len({line["pid"] for line in lines}) >= 3, "the master's and both workers' lines"
    assert len(delivery_pids(service)) == 2

    # Each start-up warning once, though three processes imported the app and two started it.
    warnings = Counter(line["message"] for line in lines if line["level"] == "WARNING")
    tight = [m for m in warnings if m.startswith("route /tight ")]
    lazy = [m for m in warnings if m.startswith("PushRouter started on its first push")]
    assert len(tight) == len(lazy) == 1, warnings
    assert warnings[tight[0]] == warnings[lazy[0]] == 1, warnings

    # The push's fields, as keys.
    deliveries = [
        line for line in lines if line["logger"] == "ironpush.receiver" and "status" in line
    ]
    for line in deliveries:
        assert set(line) >= PUSH_KEYS, line
    [ok] = [line for line in deliveries if line["message_id"] == ids["logs-ok"]]
    assert (ok["queue"], ok["subscriber"], ok["outcome"], ok["status"], ok["attempt"]) == (
        "logs-ok",
        "svc",
        "acked",
        200,
        1,
    )
    [failure] = [line for line in lines if line["logger"] == "ironpush.receiver.failures"]
    assert failure["message_id"] == ids["logs-boom"]
    assert failure["outcome"] == "error"
    assert failure["error_type"] == "RuntimeError"
    assert "planned failure" in failure["exception"]
    [ack] = [line for line in lines if line["logger"] == "ironpush.receiver.outbox"]
    assert {k: ack[k] for k in ("message_id", "queue", "subscriber", "kind", "result")} == {
        "message_id": ids["logs-job"],
        "queue": "logs-job",
        "subscriber": "svc",
        "kind": "ack",
        "result": "acked",
    }
    assert ack["reservation_id"]
    access = [line for line in lines if line["logger"] == "uvicorn.access"]
    assert access
    assert {"method", "path", "status", "client"} <= set(access[0])
    masked = f"ironpush_secret={push_secret('logs-ok', 'svc', KEYS)[:4]}***"  # recognisable
    assert any(line["path"] == f"/ironmq/ok?{masked}" for line in access), access

    # No secret anywhere: token, keys, push secrets (header and query), ack tokens.
    assert service.tokens.read_text().split()  # the run handed out an ack token
    for secret in service.secrets():
        assert secret not in text


def test_text_logs_have_one_format_in_every_process(dev: DevServer, tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'store.db'}"
    command = ["-m", "ironpush", "serve", "log_service:app", "--workers", "2"]
    service = start(tmp_path, command, dev_port=dev.port, store=store)
    try:
        direct_push(service, "/ok")
        wait_until(lambda: "push " in service.text(), 30, "a delivery line", report=service.text)
    finally:
        service.stop()
    text = service.err.read_text()
    levels = ("DEBUG:", "INFO:", "WARNING:", "ERROR:", "CRITICAL:")
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines
    assert all(line.startswith(levels) for line in lines), text  # uvicorn's, in every process
    assert sum("route /tight " in line for line in lines) == 1, text
