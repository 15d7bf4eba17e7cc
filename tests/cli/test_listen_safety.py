"""``ironpush listen``'s safety: what it refuses, what it leaves behind, and what it never
touches. Real processes against one dev server per module; the project is compared as a
snapshot (every queue, its type, push settings and subscribers) before and after.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from click.testing import CliRunner
from devserver.subscriber_servers import Subscribers
from listen_kit import (
    TOKEN,
    Listener,
    dev,
    finished,
    listen_env,
    make_push_queue,
    mq,
    snapshot,
    subs,
)
from observe_cli import Proc
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from support import free_port

from ironpush.cli import main
from ironpush.client import IronMQ
from ironpush.devserver import DevServer
from ironpush.server_thread import ServerThread

__all__ = ["dev", "mq", "subs"]  # fixtures


@pytest.fixture
def env(dev: DevServer, tmp_path: Path) -> dict[str, str]:
    return listen_env(dev, tmp_path)


@pytest.fixture
def push_queue(mq: IronMQ, subs: Subscribers, queue_name: str) -> str:
    make_push_queue(mq, queue_name, subs.url(200), retries=3, retries_delay=0.2)
    return queue_name


def test_a_unicast_queue_is_refused_in_one_line_naming_the_override(
    mq: IronMQ, subs: Subscribers, env: dict[str, str], queue_name: str
) -> None:
    make_push_queue(mq, queue_name, subs.url(200), push_type="unicast")
    before = snapshot(mq)
    proc = finished(env, "listen", queue_name, "--forward-to", "http://127.0.0.1:9/hook")
    assert proc.proc.returncode == 1
    [line] = proc.err
    assert line.startswith(f"error: queue {queue_name!r} is unicast")
    assert "take real messages away from production" in line
    assert "--allow-unicast" in line
    assert proc.out == []
    assert snapshot(mq) == before


def test_a_pull_queue_and_a_missing_queue_are_refused(
    mq: IronMQ, env: dict[str, str], queue_name: str
) -> None:
    mq.create_queue(queue_name)
    before = snapshot(mq)
    pull = finished(env, "listen", queue_name, "--forward-to", "http://127.0.0.1:9/hook")
    missing = finished(
        env, "listen", queue_name + "-nope", "--forward-to", "http://127.0.0.1:9/hook"
    )
    assert pull.proc.returncode == missing.proc.returncode == 1
    assert "is a pull queue" in pull.err[0]
    assert "does not exist" in missing.err[0]
    assert snapshot(mq) == before


def test_usage_mistakes_exit_2(env: dict[str, str], push_queue: str) -> None:
    def usage(*args: str) -> str:
        result = CliRunner().invoke(main, ["listen", push_queue, *args], env=env)
        assert result.exit_code == 2, result.output
        return result.stderr

    assert "one --forward-to for all queues or one per queue" in usage(
        "--forward-to", "http://a/x", "--forward-to", "http://b/y"
    )
    assert "needs http:// or https://" in usage("--forward-to", "127.0.0.1:8000/hook")
    assert "--app relays the router's queues" in usage("--app", "m:r", "--forward-to", "http://a/")
    assert "--any-host goes with --cleanup" in usage("--forward-to", "http://a/", "--any-host")


def test_dry_run_prints_what_it_would_create_and_creates_nothing(
    mq: IronMQ, env: dict[str, str], push_queue: str
) -> None:
    before = snapshot(mq)
    proc = finished(
        env, "listen", push_queue, "--forward-to", "http://127.0.0.1:9/hook", "--dry-run"
    )
    assert proc.proc.returncode == 0, proc.err
    assert proc.out[0].startswith(f"would relay {push_queue} → http://127.0.0.1:9/hook as listen-")
    assert f"relay queue {push_queue}--listen-" in proc.out[0]
    assert proc.out[-1] == "nothing was created (--dry-run)"
    as_json = finished(
        env, "listen", push_queue, "--forward-to", "http://x/h", "--dry-run", "--json"
    )
    [relay] = json.loads("\n".join(as_json.out))["relays"]
    assert relay["listener"]["url"] == "ironmq:///" + relay["relay_queue"]
    assert (relay["retries"], relay["retries_delay"]) == (3, 0.2)
    assert snapshot(mq) == before


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_signal_removes_the_subscriber_and_the_relay_queue_and_nothing_else(
    mq: IronMQ, subs: Subscribers, env: dict[str, str], push_queue: str, sig: signal.Signals
) -> None:
    before = snapshot(mq)
    local = subs.url(200)
    args = ["listen", push_queue, "--forward-to", local, "--as", "production", "--wait", "1"]
    proc = Proc(*args, env=env)
    proc.wait_for(lambda lines: any("Ctrl-C stops" in line for line in lines))
    during = snapshot(mq)
    [relay] = set(during) - set(before)
    assert relay.startswith(f"{push_queue}--listen-")
    subscribers = during[push_queue]["push"]["subscribers"]
    assert subscribers[0] == before[push_queue]["push"]["subscribers"][0]  # production kept
    assert subscribers[1][1] == f"ironmq:///{relay}"
    # Someone changes the queue's subscribers meanwhile: listen must not undo it.
    mq.queue(push_queue).add_subscribers({"name": "other", "url": subs.url(200)})
    [message_id] = mq.queue(push_queue).post({"body": "hello", "push_headers": {"X-T": "1"}})
    [hit] = subs.wait_hits(local, 1)
    assert hit.body == b"hello"
    assert hit.headers["iron-subscriber-name"] == "production"  # --as: its name and headers
    assert hit.headers["x-prod-secret"] == "s3cr3t"
    assert hit.headers["x-t"] == "1"
    assert hit.headers["iron-message-id"] != message_id  # the relay queue's id
    line = proc.wait_for(lambda lines: next((x for x in lines if " push " in x), None))
    assert (
        f"push {push_queue} {hit.headers['iron-message-id']} → production try 1/4: 200 in" in line
    )
    assert line.endswith("→ deleted")
    proc.proc.send_signal(sig)
    assert proc.proc.wait(30) == 0, proc.err
    after = snapshot(mq)
    assert set(after) == set(before)  # the relay queue is gone, no queue was added
    subscribers = after[push_queue]["push"]["subscribers"]
    assert [s[0] for s in subscribers] == ["production", "other"]
    assert subscribers[0] == before[push_queue]["push"]["subscribers"][0]
    stopped = proc.wait_for(lambda lines: next((x for x in lines if "stopped:" in x), None))
    assert f"removed the listener's subscriber and relay queue of {push_queue}" in stopped


def test_kill_9_then_cleanup_leaves_the_project_exactly_as_before(
    mq: IronMQ, subs: Subscribers, env: dict[str, str], push_queue: str, queue_name: str
) -> None:
    second = queue_name + "-2"
    make_push_queue(mq, second, subs.url(200), retries=1, retries_delay=0.2)
    before = snapshot(mq)
    crashed = Listener(push_queue, second, "--forward-to", subs.url(200), env=env)
    mq.queue(push_queue).post("kept in the relay queue until cleanup")
    crashed.kill_9()
    left = snapshot(mq)
    assert len(set(left) - set(before)) == 2  # two relay queues, and two subscribers:
    assert len(left[push_queue]["push"]["subscribers"]) == 2
    # A listener that is running is not a leftover: --cleanup keeps it.
    running = Listener(second, "--forward-to", subs.url(200), env=env)
    cleanup = finished(env, "listen", "--cleanup", "--json")
    assert cleanup.proc.returncode == 0, cleanup.err
    report = json.loads("\n".join(cleanup.out))
    removed = {x["relay_queue"] for x in report["removed"]}
    assert removed == set(left) - set(before)
    [kept] = report["kept"]
    assert kept["relay_queue"] == running.relay_queue(second)
    assert kept["kept"].startswith("its listener is running (pid ")
    assert running.interrupt() == 0
    assert snapshot(mq) == before
    again = finished(env, "listen", "--cleanup")
    assert again.out == [
        "removed 0 stale listener relay(s); kept 0 (running, or another machine's)"
    ]
    locks = Path(env["XDG_STATE_HOME"]) / "ironpush" / "listen"
    assert list(locks.glob("*.lock")) == []  # the crashed listener's lock file went too


def test_cleanup_finds_a_subscriber_whose_relay_queue_is_gone(
    mq: IronMQ, subs: Subscribers, env: dict[str, str], push_queue: str
) -> None:
    before = snapshot(mq)
    crashed = Listener(push_queue, "--forward-to", subs.url(200), env=env)
    relay = crashed.relay_queue(push_queue)
    crashed.kill_9()
    mq.delete_queue(relay)  # someone deleted the relay queue by hand
    proc = finished(env, "listen", "--cleanup", push_queue)
    assert proc.proc.returncode == 0, proc.err
    assert proc.out[0].startswith("removed subscriber listen-")
    assert snapshot(mq) == before


def test_a_service_that_starts_after_listen_gets_the_retried_push(
    mq: IronMQ, env: dict[str, str], push_queue: str
) -> None:
    port = free_port()
    proc = Listener(push_queue, "--forward-to", f"http://127.0.0.1:{port}/hook", env=env)
    mq.queue(push_queue).post("early")
    first = proc.wait_event("push", lambda e: e["try"] == 1)
    assert (first["status"], first["result"]) == (None, "retrying")
    assert "ConnectError" in first["error"]
    received: list[bytes] = []

    async def hook(request: Request) -> Response:
        received.append(await request.body())
        return Response("ok")

    with ServerThread(Starlette(routes=[Route("/hook", hook, methods=["POST"])]), port=port):
        done = proc.wait_event("push", lambda e: e["status"] == 200)
        assert done["result"] == "deleted"
        assert received == [b"early"]
    assert proc.interrupt() == 0


def test_the_token_is_never_printed(
    mq: IronMQ, subs: Subscribers, env: dict[str, str], push_queue: str
) -> None:
    proc = Listener(push_queue, "--forward-to", subs.url(500), "--as", "production", env=env)
    mq.queue(push_queue).post("x")
    proc.wait_event("failed")
    assert proc.interrupt() == 0
    text = "\n".join(proc.out + proc.err)
    assert TOKEN not in text
    assert "s3cr3t" not in text  # the copied subscriber's secret header


def test_a_relay_queue_deleted_under_a_running_listener_stops_it_cleanly(
    mq: IronMQ, subs: Subscribers, env: dict[str, str], push_queue: str
) -> None:
    before = snapshot(mq)
    proc = Listener(push_queue, "--forward-to", subs.url(200), env=env)
    mq.delete_queue(proc.relay_queue(push_queue))  # e.g. `--cleanup --any-host` elsewhere
    assert proc.proc.wait(30) == 1
    proc.wait_for(lambda lines: lines, err=True)
    [error] = [json.loads(line) for line in proc.err if line.startswith("{")]
    assert error["error"].startswith(f"cannot reserve from {proc.relay_queue(push_queue)}: 404")
    assert proc.wait_event("stopped")["problems"] == []
    assert snapshot(mq) == before
