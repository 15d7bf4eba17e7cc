"""Signing keys: one way to make one is named everywhere (``ironpush keygen``), and a short
key is warned about once per run, not once per place that reads the settings."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from cli_kit import TOKEN, dev

from ironpush import PushRouter
from ironpush._config.keys import KEYGEN_HINT
from ironpush._errors import ConfigError
from ironpush.devserver import DevServer

__all__ = ["dev"]  # fixtures

SHORT_KEY = "short-signing-key"  # 17 bytes: under the 32 asked for


@pytest.fixture
def service(tmp_path: Path) -> Path:
    (tmp_path / "keysvc.py").write_text(
        textwrap.dedent(
            """
            from ironpush import PushRouter

            router = PushRouter()

            @router.route("/orders", queue="key-hints-orders", subscriber="billing")
            def orders(msg):
                return None
            """
        )
    )
    return tmp_path


def ironpush(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ironpush", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "HOME": str(cwd), **env},
        check=False,
    )


def test_no_key_says_ironpush_keygen_like_everything_else() -> None:
    with pytest.raises(ConfigError) as caught:
        PushRouter(secret_keys=[])

    assert str(caught.value).endswith("(make one with `ironpush keygen`)")
    assert "python -c" not in str(caught.value)


def test_the_cli_gives_the_same_hint_when_no_key_is_set(service: Path) -> None:
    proc = ironpush("serve", "keysvc:router", cwd=service, env={"IRONPUSH_SECRET_KEYS": ""})

    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        "error: no secret keys configured: pass secret_keys=[...] or set IRONPUSH_SECRET_KEYS "
        f"({KEYGEN_HINT})"
    ]


def test_a_short_key_is_warned_about_once_per_run(service: Path, dev: DevServer) -> None:
    env = {
        "IRONPUSH_SECRET_KEYS": SHORT_KEY,
        "IRONMQ_EMULATOR_HOST": dev.url,
        "IRON_PROJECT_ID": "p1",
        "IRON_TOKEN": TOKEN,
    }
    # The router reads the settings, then the command's client reads them again.
    proc = ironpush(
        "subscribe",
        "--app",
        "keysvc:router",
        "--base-url",
        "http://127.0.0.1:9/ironmq",
        cwd=service,
        env=env,
    )

    assert proc.returncode == 0, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if "key #1 is 17 bytes" in line]
    assert len(warnings) == 1, proc.stderr
    assert warnings[0].endswith(f"use at least 32 ({KEYGEN_HINT})")
    assert SHORT_KEY not in proc.stdout + proc.stderr
