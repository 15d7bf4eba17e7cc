"""The ``ironpush`` CLI, every command through click's CliRunner against a running dev server.

Also pinned here: the ``--json`` shapes the README documents, the error style (``error: ... —
hint``, or a JSON object on stderr with ``--json``) and the exit codes (1 for API, network and
configuration problems, 2 for usage mistakes).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result
from pytest_httpserver import HTTPServer
from support import free_port, wait_until
from werkzeug import Request as WRequest
from werkzeug import Response as WResponse

from ironpush._protocol import Delivery
from ironpush._signing import dump_ack_token
from ironpush.cli import main
from ironpush.cli._rendering import PUSH_STATUS_FIELDS
from ironpush.devserver import DevServer

TOKEN = "cli-TOKEN-0123456789abcdef"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def dev() -> Iterator[DevServer]:
    with DevServer(token=TOKEN) as server:
        yield server


@pytest.fixture
def cli(dev: DevServer, tmp_path: Path) -> Any:
    """Run ``ironpush ARGS`` against the dev server; stdout/stderr never contain the token."""

    def run(
        *args: str, env: dict[str, str] | None = None, input: str | None = None, code: int = 0
    ) -> Result:
        base_env = {
            "HOME": str(tmp_path),  # no stray ~/.iron.json
            "IRONMQ_EMULATOR_HOST": dev.url,
            "IRON_PROJECT_ID": "p1",
            "IRON_TOKEN": TOKEN,
            "IRONPUSH_SECRET_KEYS": "",
        }
        result = CliRunner().invoke(
            main,
            list(args),
            env={**base_env, **(env or {})},
            input=input,
            catch_exceptions=False,
            prog_name="ironpush",
        )
        assert result.exit_code == code, (result.stdout, result.stderr)
        assert TOKEN not in result.stdout + result.stderr
        assert "Traceback" not in result.stdout + result.stderr
        return result

    return run


def lines(result: Result) -> list[str]:
    return result.stdout.strip().splitlines()


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


# --------------------------------------------------------------------------- subscribers


def test_subscribe_creates_then_adds_and_masks_secret_headers(cli: Any) -> None:
    created = json.loads(
        cli(
            "subscribe",
            "sub-q",
            "http://127.0.0.1:9/a",
            "--name",
            "a",
            "--header",
            "X-Api-Secret:supersecretvalue123",
            "--type",
            "unicast",
            "--retries-delay",
            "2",
            "--error-queue",
            "sub-errors",
            "--json",
        ).stdout
    )
    assert created["action"] == "created"
    assert created["queue_info"]["type"] == "unicast"
    assert created["queue_info"]["push"]["error_queue"] == "sub-errors"
    assert created["subscriber"]["headers"] == {"X-Api-Secret": "supe***"}
    added = cli("subscribe", "sub-q", "http://127.0.0.1:9/b").stdout
    assert added.startswith("added: ")
    listing = cli("subscribers", "sub-q").stdout
    assert "supersecretvalue123" not in listing
    assert "X-Api-Secret: supe***" in listing
    docs = json.loads(cli("subscribers", "sub-q", "--json").stdout)
    assert [d["name"] for d in docs] == ["a", docs[1]["name"]]
    assert docs[1]["url"].endswith("/b")


def test_subscribe_refuses_to_change_the_queue_type(cli: Any) -> None:
    cli("subscribe", "typed-q", "http://127.0.0.1:9/a")
    result = cli("subscribe", "typed-q", "http://127.0.0.1:9/b", "--type", "unicast", code=1)
    assert "cannot change a queue's type" in result.stderr


def test_subscribe_on_a_pull_queue_is_refused(cli: Any) -> None:
    cli("post", "pull-q", "x")
    assert "pull queue" in cli("subscribe", "pull-q", "http://127.0.0.1:9/a", code=1).stderr


def test_unsubscribe_by_name_and_by_url(cli: Any) -> None:
    cli("subscribe", "uns-q", "http://127.0.0.1:9/a", "--name", "a")
    cli("subscribe", "uns-q", "http://127.0.0.1:9/b", "--name", "b")
    cli("subscribe", "uns-q", "http://127.0.0.1:9/c", "--name", "c")
    doc = json.loads(cli("unsubscribe", "uns-q", "a", "http://127.0.0.1:9/b", "--json").stdout)
    assert doc == {"queue": "uns-q", "removed": ["a", "http://127.0.0.1:9/b"]}
    assert [d["name"] for d in json.loads(cli("subscribers", "uns-q", "--json").stdout)] == ["c"]


# --------------------------------------------------------------------------- statuses and acks


@pytest.fixture
def accepting(httpserver: HTTPServer) -> list[dict[str, str]]:
    """A subscriber that answers 202 and records the Iron-* headers of each push."""
    seen: list[dict[str, str]] = []

    def handler(request: WRequest) -> WResponse:
        seen.append(dict(request.headers))
        return WResponse("accepted", status=202)

    httpserver.expect_request("/hook", method="POST").respond_with_handler(handler)
    return seen


def push_to_a_202_worker(
    cli: Any, queue: str, httpserver: HTTPServer, accepting: list[dict[str, str]]
) -> tuple[str, dict[str, str]]:
    """Subscribe ``worker`` (answers 202) to ``queue``, post one job: its id and push headers."""
    url = httpserver.url_for("/hook")
    cli("subscribe", queue, url, "--name", "worker", "--retries-delay", "30")
    [message_id] = cli("post", queue, "job").stdout.split()
    headers = wait_until(lambda: accepting[-1] if accepting else None)
    return message_id, headers


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


# --------------------------------------------------------------------------- subscribe --app


def test_subscribe_app_is_idempotent_and_follows_key_rotation(cli: Any, dev: DevServer) -> None:
    base = "https://svc.example.com/ironmq"
    dry = cli("subscribe", "--app", "cliapp:router_v1", "--base-url", base, "--dry-run").stdout
    assert "would change 3 of 3" in dry
    with pytest.raises(Exception, match="not found"):
        dev.client(project_id="p1").queue("cli-orders").info()

    first = json.loads(
        cli("subscribe", "--app", "cliapp:router_v1", "--base-url", base, "--json").stdout
    )
    assert first["changed"] == 3
    assert [(c["queue"], c["subscriber"]["name"], c["action"]) for c in first["changes"]] == [
        ("cli-orders", "billing", "created"),
        ("cli-orders", "audit", "added"),
        ("cli-mail", "mailer", "created"),
    ]
    secret_shown = first["changes"][0]["subscriber"]["headers"]["X-Ironpush-Secret"]
    assert secret_shown.endswith("***")

    mq = dev.client(project_id="p1")
    orders = mq.queue("cli-orders").info()
    assert orders.push.retries == 2
    assert orders.push.retries_delay == 0.5
    billing = {s.name: s for s in orders.subscribers}["billing"]
    assert billing.url == base + "/orders"
    real_secret = billing.headers["X-Ironpush-Secret"]
    assert real_secret != secret_shown
    assert len(real_secret) > 20
    assert mq.queue("cli-mail").info().type == "unicast"

    again = cli("subscribe", "--app", "cliapp:router_v1", "--base-url", base)
    assert "changed 0 of 3" in again.stdout
    assert again.stdout.count("unchanged") == 3

    rotated = json.loads(
        cli("subscribe", "--app", "cliapp:router_v2", "--base-url", base, "--json").stdout
    )
    assert [c["action"] for c in rotated["changes"]] == ["updated"] * 3
    assert all(c["detail"] == "secret header rotated" for c in rotated["changes"])
    new = {s.name: s for s in mq.queue("cli-orders").info().subscribers}["billing"]
    assert new.headers["X-Ironpush-Secret"] != real_secret


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--app", "cliapp:router_v1"], 2, "--app needs --base-url"),
        (["--app", "nosuchmodule:router", "--base-url", "http://x"], 1, "cannot import"),
        (["--app", "cliapp:missing", "--base-url", "http://x"], 1, "no attribute"),
        (["--app", "cliapp:not_a_router", "--base-url", "http://x"], 1, "not a PushRouter"),
        (["--app", "cliapp:empty_router", "--base-url", "http://x"], 1, "declares no routes"),
        (["--app", "cliapp", "--base-url", "http://x"], 2, "expected MODULE:ROUTER"),
        (["--app", "shop.main", "--base-url", "http://x"], 2, "expected MODULE:ROUTER"),
        (["q", "http://x", "--prune"], 2, "go with --app"),
        (["q"], 2, "give QUEUE and URL"),
        (["q", "http://x", "--app", "cliapp:router_v1"], 2, "not both"),
    ],
)
def test_subscribe_bad_input(cli: Any, args: list[str], code: int, message: str) -> None:
    assert message in cli("subscribe", *args, code=code).stderr


# --------------------------------------------------------------------------- errors


def test_unknown_queue_is_one_line_with_a_hint(cli: Any) -> None:
    result = cli("info", "no-such-queue", code=1)
    assert result.stderr.strip() == (
        "error: 404 Queue not found (GET /queues/no-such-queue) — check the queue name and "
        "the project id"
    )


def test_bad_token_says_what_to_check(cli: Any) -> None:
    result = cli("queues", env={"IRON_TOKEN": "wrong-token-zzzzzzzzzz"}, code=1)
    assert "401" in result.stderr
    assert "check the token" in result.stderr
    assert "wrong-token-zzzzzzzzzz" not in result.stderr


def test_unreachable_host_says_is_the_server_running(cli: Any) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = cli("queues", env={"IRONMQ_EMULATOR_HOST": f"127.0.0.1:{port}"}, code=1)
    assert "ConnectError" in result.stderr
    assert "is the server running?" in result.stderr


def test_missing_configuration_names_each_place_on_its_own_line(cli: Any, tmp_path: Path) -> None:
    env = {"IRONMQ_EMULATOR_HOST": "", "IRON_PROJECT_ID": "", "IRON_TOKEN": ""}
    result = cli("queues", env=env, code=1)
    lines = result.stderr.splitlines()
    assert lines[0] == (
        "error: No IronMQ project id and no token (or keystone credentials) configured."
    )
    assert f"  {tmp_path / '.iron.json'} (home file): not found" in lines
    assert "  environment IRONMQ_EMULATOR_HOST: not set" in lines
    assert "  command-line options: nothing set" in lines
    assert any(line.startswith("Fix: set IRON_PROJECT_ID and IRON_TOKEN") for line in lines)
    assert "pass --project-id and --token" in result.stderr
    doc = json.loads(cli("queues", "--json", env=env, code=1).stderr)
    assert doc["exit_code"] == 1
    assert doc["error"].startswith("No IronMQ project id")
    assert doc["hint"].startswith("Fix: set IRON_PROJECT_ID")


def test_unreadable_home_iron_json_is_skipped(cli: Any, tmp_path: Path) -> None:
    (tmp_path / ".iron.json").mkdir()  # exists but cannot be read, even by root
    cli("post", "home-skip-q", "x")
    assert lines(cli("queues", "--prefix", "home-skip")) == ["home-skip-q"]


def test_a_bad_global_option_value_is_a_usage_error_in_cli_words(cli: Any) -> None:
    result = cli("--cloud", "notaurl", "queues", code=2)
    assert result.stderr.strip() == (
        "error: --cloud must look like https://host[:port], got 'notaurl' — see `ironpush --help`"
    )
    assert "keyword argument" not in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["info"],  # missing argument
        ["info", "q", "--bogus"],  # unknown option
        ["--bogus", "queues"],  # unknown global option
        ["nosuchcommand"],
        ["post", "q", "x", "--delay", "soon"],  # bad value
    ],
)
def test_usage_mistakes_exit_2_in_the_one_error_style(cli: Any, args: list[str]) -> None:
    result = cli(*args, code=2)
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: ")
    assert line.endswith("--help`")
    assert "Error:" not in result.stderr
    doc = json.loads(cli(*args, "--json", code=2).stderr)
    assert set(doc) == {"error", "hint", "exit_code"}
    assert doc["exit_code"] == 2
    assert doc["hint"].startswith("see `ironpush")


def test_errors_under_json_are_a_json_object_on_stderr(cli: Any) -> None:
    result = cli("info", "no-such-queue", "--json", code=1)
    assert result.stdout == ""
    assert json.loads(result.stderr) == {
        "error": "404 Queue not found (GET /queues/no-such-queue)",
        "hint": "check the queue name and the project id",
        "exit_code": 1,
    }


def test_a_missing_message_gets_a_message_hint_not_a_queue_hint(cli: Any) -> None:
    cli("post", "hint-q", "x")
    result = cli("statuses", "hint-q", "123456789", code=1)
    assert "Message not found" in result.stderr
    assert "check the message id" in result.stderr
    assert "queue name" not in result.stderr


def test_a_busy_port_is_reported_in_the_one_error_style() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(main, ["dev", "--port", str(port)], prog_name="ironpush")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: cannot serve on 127.0.0.1:{port}")
    assert "Error:" not in result.stderr


def test_keygen_prints_a_new_32_byte_key_each_time(cli: Any) -> None:
    first, second = cli("keygen").stdout.strip(), cli("keygen").stdout.strip()
    assert first != second
    assert len(first) >= 43  # 32 random bytes, URL-safe base64
    assert first.replace("-", "").replace("_", "").isalnum()
    assert set(json.loads(cli("keygen", "--json").stdout)) == {"key"}


def test_shell_completion_script_is_generated() -> None:
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("ironpush"))],
        env={**os.environ, "_IRONPUSH_COMPLETE": "bash_source"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "_ironpush_completion" in proc.stdout
    assert "complete -o nosort -F _ironpush_completion ironpush" in proc.stdout


def test_debug_shows_the_traceback() -> None:
    result = CliRunner().invoke(
        main,
        ["--debug", "--cloud", "http://127.0.0.1:1", "--project-id", "p", "--token", "t", "queues"],
    )
    assert result.exit_code == 1
    assert result.exception is not None  # raised, not turned into one line


COMMANDS = [
    "keygen",
    "queues",
    "info",
    "post",
    "subscribe",
    "unsubscribe",
    "subscribers",
    "statuses",
    "ack",
    "serve",
    "dev",
    "demo",
]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example(command: str) -> None:
    result = CliRunner().invoke(main, [command, "--help"])
    assert result.exit_code == 0
    assert "Example" in result.stdout or "ironpush " in result.stdout


# --------------------------------------------------------------------------- serve and demo


def test_serve_runs_an_app_with_uvicorn(tmp_path: Path) -> None:
    (tmp_path / "svc.py").write_text(
        "from starlette.applications import Starlette\n"
        "from starlette.routing import Mount\n"
        "from ironpush import PushRouter\n"
        "router = PushRouter(secret_keys=['k-0123456789abcdef'])\n"
        "@router.route('/jobs', queue='jobs', subscriber='svc')\n"
        "def jobs(msg):\n    return None\n"
        "app = Starlette(routes=[Mount('/ironmq', app=router)], lifespan=router.lifespan)\n"
    )
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ironpush",
            "serve",
            "svc:app",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:

        def healthy() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/ironmq/_health").status_code == 200
            except httpx.TransportError:
                return False

        wait_until(healthy, timeout=30)
        assert httpx.post(f"http://127.0.0.1:{port}/ironmq/jobs").status_code == 401
    finally:
        proc.terminate()
        # uvicorn shuts down gracefully, then re-raises SIGTERM (exit -15).
        assert proc.wait(timeout=30) in (0, -signal.SIGTERM)


def test_demo_runs_to_the_end_and_prints_the_summary() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "ironpush", "demo"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HOME": "/nonexistent"},
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    for kind, runs, result, tries in (
        ("quick", 1, "delivered (200)", 1),
        ("long", 1, "acked after 202", 1),
        ("flaky", 2, "delivered on try 2", 2),
        ("poison", 1, "dropped (200)", 1),
    ):
        row = next(line for line in out.splitlines() if line.startswith(kind + " "))
        assert re.split(r"\s{2,}", row.strip())[2:] == [str(runs), result, str(tries)], row
    assert "job finished → ack goes through the outbox" in out
    assert "received → 503" in out
    assert "dropped" in out


def test_demo_batch_reports_throughput() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "ironpush", "demo", "--messages", "200"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "200/200 done" in proc.stdout
    assert "messages/s end to end" in proc.stdout


def test_demo_json_is_machine_readable() -> None:
    result = CliRunner().invoke(main, ["demo", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["ok"] is True
    assert doc["counters"]["dropped"] == 1
    assert all(rows[0]["status"] == "deleted" for rows in doc["messages"].values())


def test_subscribe_url_is_idempotent_and_reports_changes(cli: Any) -> None:
    args = ("subscribe", "idem-q", "http://127.0.0.1:9/a", "--name", "a", "--retries", "2")
    assert json.loads(cli(*args, "--json").stdout)["action"] == "created"
    assert json.loads(cli(*args, "--json").stdout)["action"] == "unchanged"
    changed = json.loads(cli(*args, "--header", "X-Tenant:blue", "--json").stdout)
    assert changed["action"] == "updated"
    settings = json.loads(
        cli(*args, "--header", "X-Tenant:blue", "--retries", "5", "--json").stdout
    )
    assert settings["action"] == "settings"
    assert settings["queue_info"]["push"]["retries"] == 5


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
    assert set(report) == {"dry_run", "changed", "changes", "stale", "warnings"}
    assert set(report["changes"][0]) == {"queue", "subscriber", "action", "detail"}


# --------------------------------------------------------------------------- stale subscribers


def test_renamed_and_removed_routes_are_listed_as_stale_then_pruned(
    cli: Any, dev: DevServer
) -> None:
    base = "https://stale.example.com/ironmq"
    cli("subscribe", "--app", "cliapp:stale_v1", "--base-url", base)
    # Someone else's subscriber on the same queue, and ours on another service's base URL.
    cli("subscribe", "stale-mail", "https://other.example.com/hook", "--name", "partner")
    cli("subscribe", "stale-mail", "https://stale.example.com/ironmqx/mail", "--name", "near")

    listed = cli("subscribe", "--app", "cliapp:stale_v2", "--base-url", base)
    assert (
        "stale: mailer — remove with `ironpush unsubscribe stale-mail mailer` "
        "or rerun with `--prune`"
    ) in listed.stdout
    assert "stale: audit — remove with `ironpush unsubscribe stale-orders audit`" in listed.stdout
    assert "partner" not in listed.stdout
    assert "near" not in listed.stdout
    mq = dev.client(project_id="p1")

    def names(queue: str) -> set[str]:
        return {s.name for s in mq.queue(queue).subscribers()}

    assert names("stale-mail") == {"mailer", "mailer2", "partner", "near"}  # listed, not removed

    dry = json.loads(
        cli(
            "subscribe",
            "--app",
            "cliapp:stale_v2",
            "--base-url",
            base,
            "--prune",
            "--dry-run",
            "--json",
        ).stdout
    )
    assert {(s["queue"], s["subscriber"]["name"], s["action"]) for s in dry["stale"]} == {
        ("stale-mail", "mailer", "removed"),
        ("stale-orders", "audit", "removed"),
    }
    assert names("stale-mail") == {"mailer", "mailer2", "partner", "near"}  # a dry run

    pruned = cli("subscribe", "--app", "cliapp:stale_v2", "--base-url", base, "--prune")
    assert "stale-mail: mailer removed (stale, https://stale.example.com/ironmq/mail)" in (
        pruned.stdout
    )
    assert names("stale-mail") == {"mailer2", "partner", "near"}
    assert names("stale-orders") == {"billing"}
    again = cli("subscribe", "--app", "cliapp:stale_v2", "--base-url", base)
    assert "stale:" not in again.stdout


def test_subscribe_app_warns_when_the_retry_budget_is_under_the_claim_lease(cli: Any) -> None:
    base = "https://budget.example.com/ironmq"
    result = cli("subscribe", "--app", "cliapp:short_budget", "--base-url", base)
    [warning] = result.stderr.strip().splitlines()
    assert warning.startswith("warning: route /quick (queue 'budget-q', subscriber 'quick'):")
    assert "6s is not at least twice claim_lease = 10s" in warning
    doc = json.loads(
        cli("subscribe", "--app", "cliapp:short_budget", "--base-url", base, "--json").stdout
    )
    assert doc["warnings"] == [warning.removeprefix("warning: ")]
    assert "warning" not in cli("subscribe", "--app", "cliapp:stale_v2", "--base-url", base).stderr


def test_serve_reload_restarts_when_the_app_changes(tmp_path: Path) -> None:
    app_file = tmp_path / "reloaded.py"
    source = (
        "from starlette.applications import Starlette\n"
        "from starlette.responses import PlainTextResponse\n"
        "from starlette.routing import Route\n"
        "async def version(request):\n    return PlainTextResponse({version!r})\n"
        "app = Starlette(routes=[Route('/', version)])\n"
    )
    app_file.write_text(source.format(version="v1"))
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ironpush",
            "serve",
            "reloaded:app",
            "--reload",
            "--port",
            str(port),
        ],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def answer() -> str | None:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/", timeout=5).text
        except httpx.TransportError:
            return None

    try:
        assert wait_until(answer, timeout=60) == "v1"

        changed_at = [0.0]

        def reloaded() -> bool:
            if answer() == "v2":
                return True
            # uvicorn's reloader starts watching only after it has spawned the server, which
            # may answer first on a loaded machine: a change made before the watch began is not
            # seen, so the change is made again (every 5 s, leaving a restart time to finish).
            if time.monotonic() - changed_at[0] > 5:
                app_file.write_text(source.format(version="v2"))
                changed_at[0] = time.monotonic()
            return False

        wait_until(reloaded, timeout=60, what="the reloaded app", interval=0.2)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_serve_reload_runs_one_process(cli: Any) -> None:
    result = cli("serve", "svc:app", "--reload", "--workers", "2", code=2)
    assert "--reload runs one process" in result.stderr


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
