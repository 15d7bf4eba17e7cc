"""``ironpush statuses`` and ``ack`` (with a reservation or a token) against a 202 subscriber."""

from __future__ import annotations

import json
from typing import Any

from cli_kit import accepting, cli, dev, push_to_a_202_worker
from pytest_httpserver import HTTPServer
from support import wait_until

from ironpush._protocol import Delivery
from ironpush._signing import dump_ack_token
from ironpush.devserver import DevServer

__all__ = ["accepting", "cli", "dev"]  # fixtures


# --------------------------------------------------------------------------- statuses and acks


def test_statuses_then_ack_with_reservation(
    cli: Any, dev: DevServer, httpserver: HTTPServer, accepting: list[dict[str, str]]
) -> None:
    message_id, headers = push_to_a_202_worker(cli, "ack-q", httpserver, accepting)
    rows = wait_until(
        lambda: [
            r
            for r in json.loads(cli("statuses", "ack-q", message_id, "--json").stdout)
            if r["status"] == "reserved"
        ]
    )
    assert rows[0]["subscriber_name"] == "worker"
    assert rows[0]["status_code"] == 202
    assert "reserved" in cli("statuses", "ack-q", message_id).stdout
    cli(
        "ack",
        "ack-q",
        message_id,
        "--reservation",
        headers["Iron-Reservation-Id"],
        "--subscriber",
        "worker",
    )
    final = json.loads(cli("statuses", "ack-q", message_id, "--json").stdout)
    assert [r["status"] for r in final] == ["deleted"]


def test_ack_with_a_token(
    cli: Any, dev: DevServer, httpserver: HTTPServer, accepting: list[dict[str, str]]
) -> None:
    message_id, headers = push_to_a_202_worker(cli, "tok-q", httpserver, accepting)
    keys = ["ack-key-0123456789abcdef-0123456789"]
    token = dump_ack_token(
        "tok-q",
        Delivery(
            message_id=message_id,
            reservation_id=headers["Iron-Reservation-Id"],
            subscriber_name="worker",
        ),
        keys,
    )
    env = {"IRONPUSH_SECRET_KEYS": keys[0]}
    bad = cli("ack", "--token", token[:-3] + "abc", env=env, code=1)
    assert "invalid ack token" in bad.stderr
    assert token not in bad.stderr
    result = cli("ack", "--token", token, "--json", env=env)
    assert json.loads(result.stdout) == {"acked": True, "queue": "tok-q", "message_id": message_id}
    assert token not in result.stdout
    statuses = dev.client(project_id="p1").queue("tok-q").get_message_push_statuses(message_id)
    assert [s.status for s in statuses] == ["deleted"]


def test_ack_usage_errors(cli: Any) -> None:
    assert "give --token" in cli("ack", "q", code=2).stderr
    assert "carries everything" in cli("ack", "q", "--token", "t", code=2).stderr
