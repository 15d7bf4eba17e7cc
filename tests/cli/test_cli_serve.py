"""``ironpush serve``: an app served by uvicorn, ``--reload``, and options whose defaults, help
and ranges come from the value objects."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from cli_kit import ROOT, cli, dev
from click.testing import CliRunner
from support import free_port, wait_until

from ironpush._defaults import settings_of
from ironpush.cli import main
from ironpush.cli._serve import serve
from ironpush.cli._serve_settings import HttpLimits, ServeSettings

__all__ = ["cli", "dev"]  # fixtures


# --------------------------------------------------------------------------- serving


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


# --------------------------------------------------------------------------- options


def test_serve_options_take_their_default_and_help_from_the_value_objects() -> None:
    params = {p.name: p for p in serve.params}
    fields = [*settings_of(ServeSettings), *settings_of(HttpLimits)]
    assert len(fields) == 15
    for name, default, setting in fields:
        option = params[name]
        assert (option.default, option.help) == (default, setting.help), name
    assert params["proxy_headers"].secondary_opts == ["--no-proxy-headers"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--max-headers", "3"], "Invalid value for '--max-headers': 3 is not in the range x>=8"),
        (["--timeout-request", "0"], "'--timeout-request': 0.0 is not in the range x>=0.1"),
        (["--log-level", "loud"], "'--log-level': 'loud' is not one of 'critical', 'error'"),
        (["--port", "70000"], "'--port': 70000 is not in the range 0<=x<=65535"),
    ],
)
def test_serve_option_values_out_of_range_are_usage_errors(args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, ["serve", "serve_app:app", *args])
    assert result.exit_code == 2
    assert result.output.startswith("error: ")
    assert message in result.output
