"""``ironpush subscribe`` (a URL, or every route of ``--app``), ``unsubscribe`` and stale
subscribers, against a running dev server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cli_kit import ROOT, TOKEN, cli, dev

from ironpush.devserver import DevServer

__all__ = ["cli", "dev"]  # fixtures


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
        # A reference that does not load is a usage mistake, as with `serve` (one loader).
        (["--app", "nosuchmodule:router", "--base-url", "http://x"], 2, "no module named"),
        (["--app", "cliapp:missing", "--base-url", "http://x"], 2, "no attribute"),
        (["--app", "cliapp:not_a_router", "--base-url", "http://x"], 2, "not a PushRouter"),
        (["--app", "cliapp:empty_router", "--base-url", "http://x"], 1, "declares no routes"),
        (["--app", "cliapp", "--base-url", "http://x"], 2, "expected MODULE:ROUTER"),
        (["--app", "shop.main", "--base-url", "http://x"], 2, "expected MODULE:ROUTER"),
        (["q", "http://x", "--prune"], 2, "go with --app"),
        (["q", "http://x", "--scan-all"], 2, "go with --app"),
        (
            ["q", "example.com/hook"],
            2,
            "needs a scheme IronMQ pushes to (http://, https://, ironmq://, ironworker://), "
            "e.g. https://example.com/hook",
        ),
        (
            ["--app", "cliapp:router_v1", "--base-url", "api.example.com/ironmq"],
            2,
            "base URL 'api.example.com/ironmq' needs http:// or https:// and a host, e.g. "
            "https://api.example.com/ironmq",
        ),
        (
            ["--app", "cliapp:router_v1", "--base-url", "127.0.0.1:8000/ironmq"],
            2,
            "e.g. http://127.0.0.1:8000/ironmq",
        ),
        (["q"], 2, "give QUEUE and URL"),
        (["q", "http://x", "--app", "cliapp:router_v1"], 2, "not both"),
    ],
)
def test_subscribe_bad_input(cli: Any, args: list[str], code: int, message: str) -> None:
    assert message in cli("subscribe", *args, code=code).stderr


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


def test_scan_all_finds_a_stale_subscriber_on_a_queue_no_route_declares(cli: Any) -> None:
    base = "https://scan.example.com/ironmq"
    cli("subscribe", "--app", "cliapp:scan_v1", "--base-url", base)
    plain = cli("subscribe", "--app", "cliapp:scan_v2", "--base-url", base).stdout
    assert "stale:" not in plain  # scan-mail is no longer the router's: not looked at
    assert plain.rstrip().endswith(
        "changed 0 of 1 subscription(s); looked for stale subscribers on 1 queue(s) "
        "(the router's; --scan-all looks on every queue)"
    )
    scanned = cli("subscribe", "--app", "cliapp:scan_v2", "--base-url", base, "--scan-all")
    assert "stale: mailer — remove with `ironpush unsubscribe scan-mail mailer`" in scanned.stdout
    doc = json.loads(
        cli(
            "subscribe", "--app", "cliapp:scan_v2", "--base-url", base, "--scan-all", "--json"
        ).stdout
    )
    assert "scan-mail" in doc["checked"]
    assert [(s["queue"], s["subscriber"]["name"]) for s in doc["stale"]] == [
        ("scan-mail", "mailer")
    ]


# An app that configures logging when imported, as Litestar's constructor and Django's setup()
# do: the root logger at INFO with a handler on stderr, httpx at DEBUG.
CHATTY_APP = """
import logging.config

from ironpush import PushRouter

logging.config.dictConfig({
    "version": 1,
    "handlers": {"err": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr"}},
    "root": {"level": "INFO", "handlers": ["err"]},
    "loggers": {"httpx": {"level": "DEBUG"}, "httpcore": {"level": "DEBUG"}},
})

router = PushRouter(secret_keys=["key-one-0123456789"], claim_lease=10.0)
router.add_route("/q", print, queue="chatty-q", subscriber="chatty", retries=1, retries_delay=3)
"""


def test_subscribe_output_does_not_depend_on_the_apps_logging_setup(
    dev: DevServer, tmp_path: Path
) -> None:
    (tmp_path / "chatty.py").write_text(CHATTY_APP)
    env = {
        **os.environ,
        "HOME": str(tmp_path),
        "PYTHONPATH": str(ROOT / "tests"),
        "IRONMQ_EMULATOR_HOST": dev.url,
        "IRON_PROJECT_ID": "p1",
        "IRON_TOKEN": TOKEN,
        "IRONPUSH_SECRET_KEYS": "",
    }

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=60,
        )

    # The app's setup does print a line per API call where it is in force...
    direct = run("-c", "import chatty\nfrom ironpush import IronMQ\nIronMQ().queues()")
    assert "HTTP Request: GET" in direct.stderr, direct.stderr
    # ...but not in the command's output: only the command's own lines.
    args = ("-m", "ironpush", "subscribe", "--app", "chatty:router", "--base-url", "http://h/x")
    done = run(*args)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "chatty-q: chatty created — multicast queue, http://h/x/q",
        "changed 1 of 1 subscription(s); looked for stale subscribers on 1 queue(s) (the "
        "router's; --scan-all looks on every queue)",
    ]
    [warning] = done.stderr.splitlines()  # the lease warning, once, from the command
    assert warning.startswith("warning: route /q (queue 'chatty-q', subscriber 'chatty'):")
