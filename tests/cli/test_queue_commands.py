"""``peek``, ``reserve``, ``clear``, ``delete-queue`` and the ``statuses`` message column."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from click.testing import Result
from observe_cli import Subscribers, cli, dev, subs

from ironpush._errors import NotFound
from ironpush.devserver import DevServer

__all__ = ["cli", "dev", "subs"]  # fixtures

Cli = Callable[..., Result]


def test_peek_shows_messages_without_reserving_them(
    cli: Cli, dev: DevServer, queue_name: str
) -> None:
    q = dev.client().queue(queue_name)
    q.post({"body": "first", "push_headers": {"X-Trace": "1"}}, "x" * 100)

    docs = json.loads(cli("peek", queue_name, "--max", "5", "--json").stdout)
    text = cli("peek", queue_name, "--max", "5").stdout

    assert [(d["body"], d["push_headers"], d["reservation_id"]) for d in docs] == [
        ("first", {"X-Trace": "1"}, None),
        ("x" * 100, {}, None),
    ]
    assert docs[0]["id"] in text
    assert "x" * 59 + "…" in text  # long bodies are cut in the table
    assert q.reserve(max=2)  # still there: peek reserved nothing
    assert cli("peek", queue_name).stdout.strip() == "(no messages)"


def test_reserve_prints_reservations_and_delete_removes(
    cli: Cli, dev: DevServer, queue_name: str
) -> None:
    q = dev.client().queue(queue_name)
    q.post("a", "b", "c")

    [reserved] = json.loads(cli("reserve", queue_name, "--timeout", "60", "--json").stdout)
    deleted = json.loads(cli("reserve", queue_name, "--max", "2", "--delete", "--json").stdout)

    assert reserved["body"] == "a"
    assert reserved["reservation_id"]
    q.delete(reserved["id"], reserved["reservation_id"])  # the printed reservation works
    assert [d["body"] for d in deleted] == ["b", "c"]
    assert q.size() == 0
    assert cli("reserve", queue_name, "--wait", "0").stdout.strip() == "(no messages)"


def test_clear_asks_first(cli: Cli, dev: DevServer, queue_name: str) -> None:
    q = dev.client().queue(queue_name)
    q.post("a", "b")

    declined = cli("clear", queue_name, input="n\n", code=1)
    no_answer = cli("clear", queue_name, input="", code=1)
    assert q.size() == 2
    assert "Delete all 2 message(s) of" in declined.stderr
    assert "not confirmed: nothing changed" in no_answer.stderr

    agreed = cli("clear", queue_name, "--json", input="y\n")
    assert json.loads(agreed.stdout) == {"queue": queue_name, "cleared": True, "size_before": 2}
    assert q.size() == 0
    q.post("c")
    cli("clear", queue_name, "--yes")
    assert q.size() == 0


def test_delete_queue_asks_first(cli: Cli, dev: DevServer, queue_name: str) -> None:
    dev.client().queue(queue_name).post("a")
    cli("delete-queue", queue_name, input="\n", code=1)  # the default answer is no
    assert dev.client().queue(queue_name).size() == 1

    result = cli("delete-queue", queue_name, "--yes", "--json")

    assert json.loads(result.stdout) == {"queue": queue_name, "deleted": True}
    with pytest.raises(NotFound):
        dev.client().queue(queue_name).info()
    missing = cli("delete-queue", queue_name, "--yes", code=1)
    assert missing.stderr.startswith("error: 404")


def test_statuses_show_why_a_push_failed(
    cli: Cli, dev: DevServer, subs: Subscribers, queue_name: str
) -> None:
    url = subs.url(500)
    dev.client().create_queue(
        queue_name, subscribers=[{"name": "s", "url": url}], retries=0, retries_delay=0.05
    )
    [mid] = dev.client().queue(queue_name).post("x")
    dev.client().queue(queue_name).wait_for_push(mid, timeout=10)

    table = cli("statuses", queue_name, mid).stdout.splitlines()

    assert table[0].split()[-1] == "MSG"
    assert table[1].split()[:2] == ["s", "error"]
    assert table[1].endswith("answer 500")
