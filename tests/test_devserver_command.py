"""``ironpush dev`` / ``python -m ironpush.devserver``: options, printed config, clean stop."""

from __future__ import annotations

import json
import logging
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time

import pytest
from click.testing import CliRunner

from ironpush.cli.dev import client_config_text, dev_command
from ironpush.client import IronMQ
from ironpush.devserver import DevServer


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
    proc = subprocess.Popen(
        [sys.executable, "-m", "ironpush.devserver", "--port", "0", "--project-id", "p"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "IRONPUSH_DEV_TOKEN": token},
    )
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    output: list[str] = []
    try:
        deadline = time.monotonic() + 20
        while not any("Press Ctrl-C" in line for line in output):
            output.append(lines.get(timeout=max(0.1, deadline - time.monotonic())))
        text = "".join(output)
        url = re.search(r"listening on (http://\S+)", text)
        assert url is not None
        port = url.group(1).rsplit(":", 1)[1]
        assert f"export IRONMQ_EMULATOR_HOST=127.0.0.1:{port}" in text
        assert "export IRON_PROJECT_ID=p" in text
        assert "token: required" in text
        assert token not in text
        assert "minimum retries_delay is 3 s" in text
        with IronMQ(cloud=url.group(1), project_id="p", token=token) as mq:
            mq.queue("cli").post("hello")
            assert mq.queue("cli").size() == 1
        proc.send_signal(signal.SIGINT)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


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
