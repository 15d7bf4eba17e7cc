"""``ironpush queues``, ``info`` and ``post`` against a running dev server."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cli_kit import cli, dev, lines

from ironpush.devserver import DevServer

__all__ = ["cli", "dev"]  # fixtures


# --------------------------------------------------------------------------- reading


def test_queues_lists_every_page_and_filters_by_prefix(cli: Any, dev: DevServer) -> None:
    mq = dev.client(project_id="p1")
    for i in range(3):
        mq.queue(f"lq-{i}").post("x")
    mq.queue("other").post("x")
    assert lines(cli("queues", "--prefix", "lq-")) == ["lq-0", "lq-1", "lq-2"]
    assert json.loads(cli("queues", "--prefix", "lq-", "--json").stdout) == ["lq-0", "lq-1", "lq-2"]
    assert "(no queues)" in cli("queues", "--prefix", "zzz").stdout


def test_info_shows_settings_in_text_and_json(cli: Any) -> None:
    cli("subscribe", "info-q", "http://127.0.0.1:9/hook", "--name", "hook", "--retries", "4")
    text = cli("info", "info-q").stdout
    assert "type: multicast" in text
    assert "retries: 4" in text
    assert "hook  http://127.0.0.1:9/hook" in text
    doc = json.loads(cli("info", "info-q", "--json").stdout)
    assert doc["name"] == "info-q"
    assert doc["type"] == "multicast"
    assert set(doc) >= {"size", "total_messages", "message_timeout", "message_expiration", "push"}
    assert doc["push"]["retries"] == 4
    assert doc["push"]["subscribers"] == [
        {"name": "hook", "url": "http://127.0.0.1:9/hook", "headers": {}}
    ]


# --------------------------------------------------------------------------- post


def test_post_prints_ids_and_honours_delay_and_push_headers(cli: Any, dev: DevServer) -> None:
    out = cli("post", "post-q", "one", "two").stdout.split()
    assert len(out) == 2
    doc = json.loads(
        cli(
            "post", "post-q", "three", "--delay", "60", "--push-header", "X-Trace: abc", "--json"
        ).stdout
    )
    assert doc["queue"] == "post-q"
    assert len(doc["ids"]) == 1
    q = dev.client(project_id="p1").queue("post-q")
    assert [m.body for m in q.peek(max=10)] == ["one", "two"]  # "three" is delayed
    assert q.size() == 3


def test_post_reads_a_body_from_stdin(cli: Any, dev: DevServer) -> None:
    cli("post", "stdin-q", "-", input='{"from": "stdin"}')
    assert dev.client(project_id="p1").queue("stdin-q").peek()[0].body == '{"from": "stdin"}'


@pytest.mark.parametrize("pair", ["nocolon", ":value", "name:", " : "])
def test_malformed_key_value_is_a_usage_error(cli: Any, pair: str) -> None:
    result = cli("post", "q", "x", "--push-header", pair, code=2)
    assert "expected NAME:VALUE" in result.stderr


def test_forbidden_push_header_is_one_clear_line(cli: Any) -> None:
    result = cli("post", "q", "x", "--push-header", "Content-Type:text/html", code=1)
    assert result.stderr.startswith("error: ")
    assert "set by the pusher" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
