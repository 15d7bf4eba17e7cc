"""The CLI's one error style (``error: ... — hint``, or a JSON object on stderr with ``--json``),
its exit codes (1 for API, network and configuration problems, 2 for usage mistakes), help,
completion and ``keygen``."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cli_kit import cli, dev, lines
from click.testing import CliRunner

from ironpush.cli import main

__all__ = ["cli", "dev"]  # fixtures


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
    assert result.stderr.startswith(f"error: port {port} on 127.0.0.1 is already in use")
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
