"""CLI output never shows a secret (``--json``, ``--debug`` tracebacks, a token httpx refuses to
send), and the servers bind loopback by default (``ironpush dev --host 0.0.0.0`` warns).
"""

from __future__ import annotations

import inspect
import json
import logging
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from dev_process import DevProcess
from security_kit import KEY_A, KEY_B, TOKEN, assert_hidden, bad_tokens, noop

from ironpush._redact import redact_text
from ironpush._signing import push_secret
from ironpush.cli import main
from ironpush.cli._dev import dev_command
from ironpush.cli._serve import serve
from ironpush.devserver import DevServer
from ironpush.receiver._router import PushRouter

# --------------------------------------------------------------------------- CLI output


@pytest.fixture(scope="module")
def dev() -> Iterator[DevServer]:
    with DevServer(token=TOKEN) as server:
        yield server


@pytest.fixture
def run(dev: DevServer, tmp_path: Path) -> Callable[..., Result]:
    def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
        base = {
            "HOME": str(tmp_path),
            "IRONMQ_EMULATOR_HOST": dev.url,
            "IRON_PROJECT_ID": "cli",
            "IRON_TOKEN": TOKEN,
            "IRONPUSH_SECRET_KEYS": f"{KEY_A},{KEY_B}",
        }
        return CliRunner().invoke(main, list(args), env={**base, **(env or {})})

    return invoke


def everything(result: Result) -> str:
    """Everything a user could see: stdout, stderr and, with --debug, the traceback."""
    shown = result.output + (result.stderr or "")
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        shown += "".join(traceback.format_exception(result.exception))
    return shown


def test_cli_json_output_masks_secret_headers_and_query_secrets(
    run: Callable[..., Result], dev: DevServer
) -> None:
    router = PushRouter(secret_keys=[KEY_A, KEY_B])
    router.add_route("/orders", noop, queue="cli-secrets", subscriber="header")
    router.add_route("/legacy", noop, queue="cli-secrets", subscriber="query")
    [by_header, _] = router.subscriptions("http://127.0.0.1:9/ironmq")
    [_, by_query] = router.subscriptions("http://127.0.0.1:9/ironmq", secret_in="query")
    secrets = [push_secret("cli-secrets", n, [KEY_B]) for n in ("header", "query")]
    with dev.client(project_id="cli") as mq:
        mq.create_queue(
            "cli-secrets",
            type="multicast",
            retries=0,
            retries_delay=0.05,
            subscribers=[by_header.subscriber, by_query.subscriber],
        )
        [message_id] = mq.queue("cli-secrets").post("x")
        mq.queue("cli-secrets").wait_for_push(message_id, timeout=15)
    outputs = [
        run("subscribers", "cli-secrets", "--json"),
        run("subscribers", "cli-secrets"),
        run("info", "cli-secrets", "--json"),
        run("statuses", "cli-secrets", message_id, "--json"),
        run("--debug", "statuses", "cli-secrets", message_id),
    ]
    assert all(r.exit_code == 0 for r in outputs), [everything(r) for r in outputs]
    docs = json.loads(outputs[0].output)
    assert docs[0]["headers"]["X-Ironpush-Secret"].endswith("***")
    assert "ironpush_secret=" in docs[1]["url"]
    assert_hidden("".join(everything(r) for r in outputs), [*secrets, TOKEN, KEY_A, KEY_B])


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["--debug", "queues"], {"IRON_TOKEN": f"wrong-{TOKEN}"}),
        (["--debug", "--token", f"wrong-{TOKEN}", "queues"], {}),
        (["--debug", "ack", "--token", "TAMPERED"], {}),
        (["ack", "--token", "TAMPERED"], {}),
        (["--debug", "ack", "--token", "EXPIRED"], {}),
        (["--debug", "ack", "--token", "FOREIGN"], {}),
        (["--debug", "--cloud", "http://127.0.0.1:1", "queues"], {}),
    ],
)
def test_cli_error_paths_never_show_a_secret(
    run: Callable[..., Result],
    args: list[str],
    env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    tokens = bad_tokens(monkeypatch)
    stand_ins = {
        "TAMPERED": tokens["tampered payload"],
        "EXPIRED": tokens["expired"],
        "FOREIGN": tokens["unknown key"],
    }
    args = [stand_ins.get(a, a) for a in args]
    result = run(*args, env=env)
    assert result.exit_code == 1
    assert_hidden(
        everything(result) + caplog.text,
        [TOKEN, KEY_A, KEY_B, *stand_ins.values()],
    )


@pytest.mark.parametrize(
    "token",
    [
        f"{TOKEN[:8]}\n{TOKEN[8:]}",
        f"{TOKEN[:8]}\x00{TOKEN[8:]}",
        f"{TOKEN[:8]}\\x{TOKEN[8:]}",
        f"é{TOKEN}",  # its escaped form starts "\\xc3": redact_text crashed on the backslash
    ],
)
def test_regression_a_token_httpx_refuses_is_masked_in_the_error_line(
    run: Callable[..., Result], token: str
) -> None:
    # Found while testing: httpx's "Illegal header value b'OAuth <token>'" reached the one-line
    # error (as text or as an escaped bytes repr), and redact_text crashed on a backslash.
    result = run("--token", token, "queues")
    assert result.exit_code == 1
    shown = everything(result)
    assert shown.startswith("error: ")
    escaped = repr(token.encode("utf-8", "replace"))[2:-1]
    assert_hidden(shown, [token, repr(token)[1:-1], escaped, TOKEN[8:]])


def test_regression_redact_text_handles_backslashes_and_regex_characters() -> None:
    secret = "\\x1.*+?$^(secret-value)"
    assert redact_text(f"a {secret} b {secret}", [secret]) == "a \\x1.*** b \\x1.***"


# --------------------------------------------------------------------------- loopback


def test_servers_bind_loopback_by_default() -> None:
    with DevServer() as dev:
        assert dev.url.startswith("http://127.0.0.1:")
        assert dev.bound_address[0] == "127.0.0.1"
    defaults = {c.name: {p.name: p.default for p in c.params} for c in (dev_command, serve)}
    assert defaults["dev"]["host"] == defaults["serve"]["host"] == "127.0.0.1"
    assert inspect.signature(DevServer).parameters["host"].default == "127.0.0.1"

    public = DevProcess("--host", "0.0.0.0")
    assert public.stop() == 0
    assert "reachable from other machines" in public.text()
    local = DevProcess()
    assert local.stop() == 0
