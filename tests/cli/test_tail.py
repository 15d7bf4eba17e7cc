"""``ironpush tail``: a real subprocess following a real dev server's event stream."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from observe_cli import TOKEN, Proc, Subscribers, cli, dev, env_for, subs
from support import free_port, wait_until

from ironpush._event_outcomes import OUTCOMES
from ironpush.cli._tail import OUTCOME_HELP, parse_since
from ironpush.devserver import DevServer

__all__ = ["cli", "dev", "subs"]  # fixtures


def streams(dev: DevServer) -> int:
    return dev.engine.events.streams


def push_queue(dev: DevServer, name: str, *subscribers: dict[str, Any], **options: Any) -> None:
    options.setdefault("retries_delay", 0.05)
    dev.client().create_queue(name, subscribers=list(subscribers), **options)


def test_one_line_per_push_answer_retry_and_ack(
    dev: DevServer, subs: Subscribers, queue_name: str, tmp_path: Path
) -> None:
    flaky, slow = subs.url(503, 200), subs.url(202)
    push_queue(dev, queue_name, {"name": "flaky", "url": flaky}, {"name": "slow", "url": slow})
    before = streams(dev)
    with Proc("tail", queue_name, env=env_for(dev, tmp_path)) as tail:
        wait_until(lambda: streams(dev) == before + 1, what="tail to connect")
        q = dev.client().queue(queue_name)
        [mid] = q.post("order")
        [hit] = subs.wait_hits(slow, 1)
        q.delete(mid, reservation_id=hit.reservation_id, subscriber_name="slow")

        lines = tail.wait_for(lambda out: len(out) >= 4 and out)
    text = "\n".join(lines)
    assert f"push {queue_name} {mid} → flaky try 1/4: 503 (answer 503)" in text
    assert "→ retrying in 0.05s" in text
    assert f"push {queue_name} {mid} → flaky try 2/4: 200" in text
    assert f"push {queue_name} {mid} → slow try 1/4: 202" in text
    assert f"ack {queue_name} {mid} ← slow via API delete" in text
    assert [line.split()[1] for line in lines[:4]].count("retrying") == 1
    assert "\x1b[" not in text  # no colours into a pipe
    assert TOKEN not in text + "\n".join(tail.err)


def test_json_lines_filtered_by_outcome_and_subscriber(
    dev: DevServer, subs: Subscribers, queue_name: str, tmp_path: Path
) -> None:
    ok, broken = subs.url(200), subs.url(500)
    push_queue(
        dev, queue_name, {"name": "ok", "url": ok}, {"name": "broken", "url": broken}, retries=1
    )
    args = ("tail", "--json", "--outcome", "failed", "--outcome", "retrying")
    before = streams(dev)
    with Proc(*args, "--subscriber", "broken", env=env_for(dev, tmp_path)) as tail:
        wait_until(lambda: streams(dev) == before + 1, what="tail to connect")
        [mid] = dev.client().queue(queue_name).post("x")
        lines = tail.wait_for(lambda out: len(out) >= 2 and out)
        events = [json.loads(line) for line in lines]
    assert [(e["outcome"], e["subscriber"], e["try"]) for e in events[:2]] == [
        ("retrying", "broken", 1),
        ("failed", "broken", 2),
    ]
    assert all(e["message_id"] == mid for e in events)
    assert {"id", "at", "type", "queue", "status_code", "duration_ms", "text"} <= set(events[0])


def test_since_shows_the_recent_events_first(
    dev: DevServer, subs: Subscribers, queue_name: str, tmp_path: Path
) -> None:
    push_queue(dev, queue_name, {"name": "s", "url": subs.url(200)})
    [mid] = dev.client().queue(queue_name).post("earlier")
    assert dev.wait_idle(queue=queue_name)
    with Proc("tail", queue_name, "--since", "5m", "--json", env=env_for(dev, tmp_path)) as tail:
        [line] = tail.wait_for(lambda out: out)
    assert json.loads(line)["message_id"] == mid


def test_colour_when_asked(
    dev: DevServer, subs: Subscribers, queue_name: str, tmp_path: Path
) -> None:
    push_queue(dev, queue_name, {"name": "s", "url": subs.url(200)})
    dev.client().queue(queue_name).post("x")
    assert dev.wait_idle(queue=queue_name)
    with Proc("tail", queue_name, "--since", "1m", "--color", env=env_for(dev, tmp_path)) as tail:
        [line] = tail.wait_for(lambda out: out)
    assert "\x1b[32m" in line  # delivered is green


def test_a_tail_that_falls_behind_is_dropped_then_catches_up(
    dev: DevServer, queue_name: str, tmp_path: Path
) -> None:
    hub = dev.engine.events
    hub.client_buffer = 50
    filler = {"type": "push", "outcome": "delivered", "queue": queue_name, "msg": "x" * 1000}
    before = streams(dev)
    # Nobody reads its stdout: the pipe fills, tail blocks, its socket stops being read.
    tail = Proc("tail", queue_name, "--json", env=env_for(dev, tmp_path), read_stdout=False)
    try:
        wait_until(lambda: streams(dev) == before + 1, what="tail to connect")
        dropped = hub.dropped_clients

        def burst() -> bool:
            # Smaller than the client's buffer: only a client that stopped reading falls behind.
            for _ in range(20):
                dev.engine.loop.call_soon_threadsafe(hub.publish, filler)
            return hub.dropped_clients > dropped

        wait_until(burst, timeout=60, what="tail to be dropped")
        last = hub.last_id
        tail.read_stdout()  # reading again: tail gets unblocked, reconnects, catches up
        tail.wait_for(lambda err: any("fell more than 50" in e for e in err), err=True)
        tail.wait_for(lambda out: any(f'"id": {last}' in line for line in out), timeout=60)
    finally:
        hub.client_buffer = 1_000
        tail.stop()
    ids = [json.loads(line)["id"] for line in tail.out if line.startswith("{")]
    assert ids == sorted(set(ids))  # caught up from the ring: nothing twice, in order


def test_no_dev_server_is_one_clear_error(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    env = {"HOME": str(tmp_path), "IRONMQ_EMULATOR_HOST": url}
    with Proc("tail", env=env) as tail:
        assert tail.proc.wait(30) == 1
        tail.wait_for(lambda err: err, err=True)
    assert tail.err[-1].startswith(f"error: cannot reach the dev server at {url}")
    assert not any("Traceback" in line for line in tail.err)


def test_a_bad_outcome_is_a_usage_error_before_any_request(cli: Any) -> None:
    result: Result = cli("tail", "--outcome", "great", code=2)
    assert "Invalid value for '--outcome': 'great' is not one of 'delivered'" in result.stderr


def test_help_lists_every_outcome() -> None:
    assert OUTCOME_HELP.split(", ") == list(OUTCOMES)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", 970.0),
        ("5m", 700.0),
        ("1h", -2600.0),
        ("90", 910.0),
        ("1970-01-01T00:10:00Z", 600.0),
    ],
)
def test_since_parses_durations_and_times(text: str, expected: float) -> None:
    assert parse_since(text, now=1000.0) == expected
