"""Credentials: a token or keystone, and errors that name every place looked at."""

from __future__ import annotations

from pathlib import Path

from config_kit import CREDS, KEYSTONE, PASSWORD, Loader, config_error, write

from ironpush._config import Keystone

# --- credentials --------------------------------------------------------------------------------


def test_keystone_is_accepted_instead_of_a_token(load: Loader, home: Path) -> None:
    assert load(project_id="p", keystone=KEYSTONE).keystone == Keystone(**KEYSTONE)

    write(home / ".iron.json", {"project_id": "p", "iron_mq": {"keystone": KEYSTONE}})
    settings = load()
    assert (settings.token, settings.keystone) == (None, Keystone(**KEYSTONE))


def test_incomplete_keystone_names_missing_keys_without_the_password(load: Loader) -> None:
    message = config_error(load, project_id="p", keystone={"server": "s", "password": PASSWORD})

    assert "keystone" in message
    assert "tenant" in message
    assert "username" in message
    assert PASSWORD not in message


def test_missing_credentials_error_lists_every_place_looked_at(
    load: Loader, home: Path, work: Path
) -> None:
    config = write(work / "extra.json", {"host": "h.example"})

    message = config_error(load, config_file=config)

    for place in (
        str(home / ".iron.json"),
        "IRON_PROJECT_ID",
        "IRON_TOKEN",
        "IRON_MQ_PROJECT_ID",
        "IRON_MQ_TOKEN",
        "IRON_KEYSTONE",
        str(work / "iron.json"),
        str(config),
        "keyword arguments",
    ):
        assert place in message
    assert "project id" in message
    assert "token" in message
    assert "IRONMQ_EMULATOR_HOST" in message


def test_missing_token_alone_is_reported(load: Loader) -> None:
    message = config_error(load, {"IRON_PROJECT_ID": "p"})

    assert "No IronMQ token" in message
    assert "project id" not in message.split("Looked in")[0]


def test_missing_credentials_error_names_each_place_on_its_own_line(
    load: Loader, home: Path, work: Path
) -> None:
    lines = config_error(load).splitlines()

    assert lines[0] == "No IronMQ project id and no token (or keystone credentials) configured."
    assert lines[1] == "Looked in (later wins):"
    assert f"  {home / '.iron.json'} (home file): not found" in lines
    assert f"  {work / 'iron.json'} (local file): not found" in lines
    assert "  environment IRON_*: nothing set" in lines
    assert "  environment IRONMQ_EMULATOR_HOST: not set" in lines
    assert lines[-2].startswith("Fix: set IRON_PROJECT_ID and IRON_TOKEN")
    assert lines[-1].startswith("  or use a local dev server: IRONMQ_EMULATOR_HOST=")
    assert all(len(line) <= 200 for line in lines)


def test_labels_name_the_settings_as_the_caller_knows_them(load: Loader) -> None:
    labels = {"cloud": "--cloud", "project_id": "--project-id", "token": "--token"}

    bad_cloud = config_error(load, cloud="notaurl", labels=labels, **CREDS)
    missing = config_error(load, labels=labels)

    assert bad_cloud.startswith("--cloud must look like https://host[:port], got 'notaurl'")
    assert "keyword argument" not in bad_cloud
    assert "pass --project-id and --token" in missing
    assert "  command-line options: nothing set" in missing.splitlines()


def test_missing_credentials_are_allowed_when_not_required(load: Loader) -> None:
    settings = load(require_credentials=False)

    assert (settings.project_id, settings.token) == ("", None)
