"""``ironpush post`` against a running dev server: a body that looks like JSON but is not, and
posting to a queue that does not exist yet (it becomes a pull queue for good)."""

from __future__ import annotations

import json
from typing import Any

from cli_kit import cli, dev

from ironpush.devserver import DevServer

__all__ = ["cli", "dev"]  # fixtures


def bodies(dev: DevServer, queue: str) -> list[str]:
    with dev.client(project_id="p1") as mq:
        return [m.body for m in mq.queue(queue).peek(max=10)]


def test_a_body_that_looks_like_json_but_is_not_is_posted_with_a_warning(
    cli: Any, dev: DevServer
) -> None:
    cli("subscribe", "json-q", "http://127.0.0.1:9/hook")  # exists: no missing-queue warning
    result = cli("post", "json-q", "{'id': 1}", "[1, 2", '{"id": 2}', "plain text", "[INFO] x")
    assert result.stderr.splitlines() == [
        "warning: BODY 1 looks like JSON but does not parse (Expecting property name enclosed "
        "in double quotes at line 1 column 2); posting it as text (--strict-json refuses)",
        "warning: BODY 2 looks like JSON but does not parse (Expecting ',' delimiter at line 1 "
        "column 6); posting it as text (--strict-json refuses)",
        "warning: BODY 5 looks like JSON but does not parse (Expecting value at line 1 column 2)"
        "; posting it as text (--strict-json refuses)",
    ]
    assert len(result.stdout.split()) == 5  # all posted


def test_strict_json_refuses_before_posting_anything(cli: Any, dev: DevServer) -> None:
    cli("post", "strict-q", "first")
    result = cli("post", "strict-q", '{"ok": 1}', '{"id": 1,}', "--strict-json", code=2)
    assert "BODY 2 looks like JSON but does not parse" in result.stderr
    assert result.stdout == ""
    assert bodies(dev, "strict-q") == ["first"]
    assert cli("post", "strict-q", '{"ok": 1}', "--strict-json").stderr == ""


def test_posting_to_a_missing_queue_warns_once_that_it_becomes_a_pull_queue(
    cli: Any, dev: DevServer
) -> None:
    first = cli("post", "new-orders", "a", "b", "--json")
    [warning] = first.stderr.splitlines()
    assert warning == (
        "warning: queue 'new-orders' does not exist: this post creates it as a pull queue, and "
        "v3 cannot make a pull queue a push queue later. To have its messages pushed, subscribe "
        "first (`ironpush subscribe new-orders URL` or `ironpush subscribe --app MODULE:ROUTER "
        "--base-url URL`); to undo: `ironpush delete-queue new-orders --yes`"
    )
    assert len(json.loads(first.stdout)["ids"]) == 2  # stdout stays clean JSON
    info = json.loads(cli("info", "new-orders", "--json").stdout)
    assert (info["type"], info["push"]) == ("pull", None)  # what the warning said
    assert cli("post", "new-orders", "c").stderr == ""  # it exists now: no warning
    refused = cli("subscribe", "new-orders", "http://127.0.0.1:9/hook", code=1)
    assert "pull queue" in refused.stderr


def test_subscribing_first_makes_a_push_queue_and_post_says_nothing(cli: Any) -> None:
    cli("subscribe", "sub-first", "http://127.0.0.1:9/hook")
    result = cli("post", "sub-first", '{"id": 1}')
    assert result.stderr == ""
    assert json.loads(cli("info", "sub-first", "--json").stdout)["type"] == "multicast"
