"""``ironpush dev`` / ``python -m ironpush.devserver``: options, printed config, the line per push
and per ack, ``--env``, clean stop."""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from dev_process import DevProcess
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ironpush.cli._dev import client_config_text, dev_command
from ironpush.client import IronMQ
from ironpush.devserver import DevServer
from ironpush.server_thread import ServerThread

LOG_LINE = re.compile(r"^\d\d:\d\d:\d\d\.\d{3} INFO    ironpush\.devserver: ")


def test_help_lists_options_and_the_hosted_minimum_retries_delay() -> None:
    result = CliRunner().invoke(dev_command, ["--help"])
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    for option in ("--host", "--port", "--db", "--token", "--project-id", "--push-timeout"):
        assert option in text
    assert "minimum retries_delay is 3 s" in text


def test_invalid_options_are_refused() -> None:
    result = CliRunner().invoke(dev_command, ["--push-timeout", "0"])
    assert result.exit_code == 2
    assert "push-timeout" in result.output


@pytest.mark.parametrize(
    ("args", "code", "start"),
    [
        (["--port", "{busy}"], 1, "error: port {busy} on 127.0.0.1 is already in use "),
        (["--port", "abc"], 2, "error: Invalid value for '--port'"),
    ],
)
def test_python_m_devserver_errors_are_one_lowercase_error_line(
    args: list[str], code: int, start: str
) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        result = subprocess.run(
            [sys.executable, "-m", "ironpush.devserver", *(a.format(busy=port) for a in args)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == code
    [line] = result.stderr.splitlines()
    assert line.startswith(start.format(busy=port))
    assert "Error:" not in result.stderr
    assert "Traceback" not in result.stderr


def test_client_config_masks_the_token_unless_asked() -> None:
    text = client_config_text("127.0.0.1", 9000, project_id=None, token="s3cret", show_token=False)
    assert "export IRONMQ_EMULATOR_HOST=127.0.0.1:9000" in text
    assert "export IRON_PROJECT_ID=dev" in text
    assert "s3cret" not in text
    assert "<the value given with --token>" in text
    shown = client_config_text("127.0.0.1", 9000, project_id="p", token="s3cret", show_token=True)
    assert "export IRON_TOKEN='s3cret'" in shown
    assert "export IRON_PROJECT_ID=p" in shown
    iron = json.loads(shown[shown.index("{") :])
    assert iron == {
        "protocol": "http",
        "host": "127.0.0.1",
        "port": 9000,
        "api_version": 3,
        "project_id": "p",
        "token": "s3cret",
    }
    plain = client_config_text("127.0.0.1", 8080, project_id=None, token=None, show_token=False)
    assert "IRON_TOKEN" not in plain
    assert "IRON_PROJECT_ID" not in plain


def test_module_prints_client_config_serves_and_stops_on_ctrl_c() -> None:
    token = "cli-token-0123456789"
    dev = DevProcess(
        "--project-id", "p", env={"IRONPUSH_DEV_TOKEN": token}, module="ironpush.devserver"
    )
    try:
        text = dev.text()
        port = dev.url.rsplit(":", 1)[1]
        assert f"export IRONMQ_EMULATOR_HOST=127.0.0.1:{port}" in text
        assert "export IRON_PROJECT_ID=p" in text
        assert "token: required" in text
        assert token not in text
        assert "minimum retries_delay is 3 s" in text
        with dev.client(project_id="p", token=token) as mq:
            mq.queue("cli").post("hello")
            assert mq.queue("cli").size() == 1
    finally:
        assert dev.stop() == 0


def test_binding_beyond_localhost_logs_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="ironpush.devserver")
    with DevServer(host="0.0.0.0") as dev:
        assert dev.url.startswith("http://0.0.0.0:")
        assert dev.engine.pusher.public_url == f"http://127.0.0.1:{dev.port}"  # ack URLs
    assert "reachable from other machines" in caplog.text
    caplog.clear()
    with DevServer():
        pass
    assert "reachable" not in caplog.text


# --------------------------------------------------------------------------- a real `ironpush dev`


class Answers:
    """A subscriber on a real socket: ``/ok`` 200, ``/later`` 202, ``/down`` 503."""

    def __init__(self) -> None:
        self.reservations: list[str] = []

        async def answer(request: Request) -> Response:
            self.reservations.append(request.headers["iron-reservation-id"])
            code = {"ok": 200, "later": 202, "down": 503}[request.path_params["what"]]
            return Response(f"answer {code}", status_code=code)

        app = Starlette(routes=[Route("/{what}", answer, methods=["POST"])])
        self.server = ServerThread(app)


@pytest.fixture(scope="module")
def answers() -> Iterator[Answers]:
    subscriber = Answers()
    with subscriber.server:
        yield subscriber


def push_queue(url: str, name: str, answers: Answers, what: str, **options: Any) -> IronMQ:
    mq = IronMQ(cloud=url, project_id="dev", token="dev")
    sub = {"name": what, "url": f"{answers.server.url}/{what}"}
    mq.create_queue(name, subscribers=[sub], retries_delay=60, **options)
    return mq


def test_dev_logs_one_line_per_push_and_per_ack(answers: Answers) -> None:
    dev = DevProcess()
    try:
        mq = push_queue(dev.url, "logged", answers, "later")
        [mid] = mq.queue("logged").post("job")
        pushed = dev.wait_for(f"push logged {mid} → later try 1/4: 202")
        mq.queue("logged").delete(
            mid, reservation_id=answers.reservations[-1], subscriber_name="later"
        )
        acked = dev.wait_for(f"ack logged {mid} ← later via API delete")
        retried = push_queue(dev.url, "failing", answers, "down", retries=0)
        [failing] = retried.queue("failing").post("job")
        failed = dev.wait_for(f"push failing {failing} → down try 1/1: 503 (answer 503)")
    finally:
        assert dev.stop() == 0
    assert LOG_LINE.match(pushed)
    assert pushed.endswith("awaits an ack")
    assert " ms → deferred, reservation " in pushed
    assert acked.endswith(": acked")
    assert f"reservation {answers.reservations[-2][:8]}…" in acked  # never the whole id
    assert answers.reservations[-2] not in dev.text()
    assert failed.endswith("→ failed: no try left")


@pytest.mark.parametrize("args", [("--quiet",), ("--log-level", "warning")])
def test_quiet_and_higher_levels_drop_the_push_lines(answers: Answers, args: tuple[str]) -> None:
    dev = DevProcess(*args)
    try:
        mq = push_queue(dev.url, "quiet", answers, "ok")
        [mid] = mq.queue("quiet").post("job")
        assert mq.queue("quiet").wait_for_push(mid, timeout=10)[0].status == "deleted"
    finally:
        assert dev.stop() == 0
    assert "push quiet" not in dev.text()
    assert "listening on" in dev.text()


def test_the_banner_names_the_inspector_the_env_line_and_iron_json() -> None:
    dev = DevProcess()
    try:
        inspector = re.search(r"inspector: (http://\S+/_dev/ui)", dev.text())
        assert inspector is not None
        page = httpx.get(inspector.group(1))
    finally:
        dev.stop()
    port = dev.url.rsplit(":", 1)[1]
    assert page.status_code == 200
    assert "ironpush inspector" in page.text
    assert f'eval "$(ironpush dev --env --port {port})"' in dev.text()
    assert f'"port": {port},' in dev.text()


def bash(script: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={**os.environ, **(env or {})},
    )


def test_env_prints_exports_a_shell_can_eval() -> None:
    dev = f"{sys.executable} -m ironpush dev"
    plain = bash(f'eval "$({dev} --env --port 9123)"; echo "$IRONMQ_EMULATOR_HOST"')
    assert plain.stdout.strip() == "127.0.0.1:9123"
    token = "env-t0ken-0123456789"
    shown = bash(f"{dev} --env --port 9123 --project-id p", {"IRONPUSH_DEV_TOKEN": token})
    assert token not in shown.stdout  # the token is exported by reference
    assert 'export IRON_TOKEN="${IRONPUSH_DEV_TOKEN}"' in shown.stdout
    used = bash(
        f'eval "$({dev} --env --port 9123 --project-id p)"; echo "$IRON_PROJECT_ID $IRON_TOKEN"',
        {"IRONPUSH_DEV_TOKEN": token},
    )
    assert used.stdout.split() == ["p", token]
    typed = bash(f"{dev} --env --port 9123 --token {token}")
    assert token not in typed.stdout
    assert typed.stdout.splitlines()[-1].startswith("# export IRON_TOKEN=")
    revealed = bash(f"{dev} --env --port 9123 --token {token} --show-token")
    assert f"export IRON_TOKEN={token}" in revealed.stdout


def test_env_needs_a_fixed_port() -> None:
    result = CliRunner().invoke(dev_command, ["--env", "--port", "0"])
    assert result.exit_code == 2
    assert "--env needs" in result.output
