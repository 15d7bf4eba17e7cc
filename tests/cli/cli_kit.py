"""The fixtures of the ``ironpush`` command tests (``test_cli_*.py``): a dev server, ``cli(ARGS)``
through click's CliRunner (stdout/stderr never contain the token), and a 202 subscriber."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from pytest_httpserver import HTTPServer
from support import wait_until
from werkzeug import Request as WRequest
from werkzeug import Response as WResponse

from ironpush.cli import main
from ironpush.devserver import DevServer

TOKEN = "cli-TOKEN-0123456789abcdef"
ROOT = Path(__file__).resolve().parent.parent.parent


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
