"""The ``--json`` shapes the README documents: the same keys for pull and push queues, one type
per field."""

from __future__ import annotations

import json
from typing import Any

from cli_kit import accepting, cli, dev
from pytest_httpserver import HTTPServer
from support import wait_until

from ironpush.cli._rendering import PUSH_STATUS_FIELDS

__all__ = ["accepting", "cli", "dev"]  # fixtures


# --------------------------------------------------------------------------- --json shapes

QUEUE_KEYS = {
    "name",
    "type",
    "size",
    "total_messages",
    "message_timeout",
    "message_expiration",
    "push",
    "alerts",
}


def test_info_json_has_the_same_keys_for_pull_and_push_queues(cli: Any) -> None:
    cli("post", "shape-pull", "x")
    cli("subscribe", "shape-push", "http://127.0.0.1:9/a", "--name", "a", "--retries-delay", "3")
    pull = json.loads(cli("info", "shape-pull", "--json").stdout)
    push = json.loads(cli("info", "shape-push", "--json").stdout)
    assert set(pull) == set(push) == QUEUE_KEYS
    assert pull["push"] is None
    assert pull["alerts"] == push["alerts"] == []
    assert set(push["push"]) == {"retries", "retries_delay", "error_queue", "subscribers"}
    assert push["push"]["error_queue"] is None  # the API says "", the document says null
    assert push["push"]["retries_delay"] == 3.0
    assert isinstance(push["push"]["retries_delay"], float)
    assert isinstance(push["push"]["retries"], int)
    created = json.loads(
        cli("subscribe", "shape-push", "http://127.0.0.1:9/b", "--name", "b", "--json").stdout
    )
    assert set(created) == {"action", "detail", "queue", "subscriber", "queue_info"}
    assert isinstance(created["queue_info"]["push"]["retries_delay"], float)


def test_statuses_json_rows_have_every_field_with_one_type(
    cli: Any, httpserver: HTTPServer, accepting: list[dict[str, str]]
) -> None:
    cli(
        "subscribe", "shape-st", httpserver.url_for("/hook"), "--name", "w", "--retries-delay", "30"
    )
    [message_id] = cli("post", "shape-st", "job").stdout.split()
    wait_until(lambda: accepting)
    [row] = wait_until(
        lambda: [
            r
            for r in json.loads(cli("statuses", "shape-st", message_id, "--json").stdout)
            if r["status"] == "reserved"
        ]
    )
    assert set(row) >= set(PUSH_STATUS_FIELDS)
    assert isinstance(row["status_code"], int)
    assert row["retries_delay"] is None or isinstance(row["retries_delay"], float)


def test_write_commands_json_shapes(cli: Any) -> None:
    posted = json.loads(cli("post", "shape-w", "a", "b", "--json").stdout)
    assert set(posted) == {"queue", "ids"}
    assert len(posted["ids"]) == 2
    cli("subscribe", "shape-w2", "http://127.0.0.1:9/a", "--name", "a")
    cli("subscribe", "shape-w2", "http://127.0.0.1:9/b", "--name", "b")
    removed = json.loads(cli("unsubscribe", "shape-w2", "a", "--json").stdout)
    assert removed == {"queue": "shape-w2", "removed": ["a"]}
    report = json.loads(
        cli(
            "subscribe",
            "--app",
            "cliapp:router_v1",
            "--base-url",
            "http://x",
            "--dry-run",
            "--json",
        ).stdout
    )
    assert set(report) == {
        "dry_run",
        "changed",
        "changes",
        "stale",
        "warnings",
        "checked",
        "listeners",
    }
    assert set(report["changes"][0]) == {"queue", "subscriber", "action", "detail"}


def test_pull_and_queue_commands_json_shapes(cli: Any) -> None:
    message_keys = {"id", "body", "reserved_count", "reservation_id", "push_headers"}
    cli("post", "shape-pq", "a", "b")
    peeked = json.loads(cli("peek", "shape-pq", "--max", "2", "--json").stdout)
    assert [set(m) for m in peeked] == [message_keys, message_keys]
    assert peeked[0]["reservation_id"] is None
    [reserved] = json.loads(cli("reserve", "shape-pq", "--json").stdout)
    assert set(reserved) == message_keys
    assert isinstance(reserved["reservation_id"], str)
    cleared = json.loads(cli("clear", "shape-pq", "--yes", "--json").stdout)
    assert cleared == {"queue": "shape-pq", "cleared": True, "size_before": 2}
    deleted = json.loads(cli("delete-queue", "shape-pq", "--yes", "--json").stdout)
    assert deleted == {"queue": "shape-pq", "deleted": True}
