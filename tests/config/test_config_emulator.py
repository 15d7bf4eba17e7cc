"""``IRONMQ_EMULATOR_HOST``: the switch to the dev server, and what still beats it."""

from __future__ import annotations

from pathlib import Path

import pytest
from config_kit import CREDS, TOKEN, Loader, config_error, write

# --- emulator switch ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "origin", "prefix"),
    [
        ("127.0.0.1:8080", "http://127.0.0.1:8080", ""),
        ("localhost:9000", "http://localhost:9000", ""),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080", ""),
        ("http://127.0.0.1:8080/dev/", "http://127.0.0.1:8080", "/dev"),
        ("http://localhost", "http://localhost", ""),
    ],
)
def test_emulator_switch_points_at_the_dev_server_with_dev_credentials(
    load: Loader, value: str, origin: str, prefix: str
) -> None:
    settings = load({"IRONMQ_EMULATOR_HOST": value})

    assert settings.emulator is True
    assert (settings.origin, settings.path_prefix) == (origin, prefix)
    assert (settings.project_id, settings.token) == ("dev", "dev")
    assert settings.base_url == f"{origin}{prefix}/3/projects/dev"


def test_emulator_overrides_files_and_environment_address(
    load: Loader, home: Path, work: Path
) -> None:
    write(home / ".iron.json", {"host": "home.example", "port": 8443})
    write(work / "iron.json", {"iron_mq": {"cloud": "https://file.example/prefix"}})
    config = write(work / "c.json", {"protocol": "https", "host": "cfg.example"})
    env = {
        "IRONMQ_EMULATOR_HOST": "127.0.0.1:8080",
        "IRON_MQ_HOST": "env.example",
        "IRON_PORT": "443",
        "IRON_PROJECT_ID": "real-project",
        "IRON_TOKEN": TOKEN,
    }

    settings = load(env, config_file=config)

    assert settings.base_url == "http://127.0.0.1:8080/3/projects/real-project"
    assert settings.token == TOKEN  # configured credentials are kept; only missing ones become dev
    assert settings.emulator is True


def test_keyword_address_beats_the_emulator_switch(load: Loader) -> None:
    env = {"IRONMQ_EMULATOR_HOST": "127.0.0.1:8080"}

    by_cloud = load(env, cloud="https://code.example", **CREDS)
    by_host = load(env, host="code.example", **CREDS)
    adjusted = load(env, port=9999, path_prefix="/x", **CREDS)

    assert (by_cloud.base_url, by_cloud.emulator) == ("https://code.example/3/projects/p", False)
    assert (by_host.origin, by_host.emulator) == ("https://code.example", False)
    assert (adjusted.base_url, adjusted.emulator) == ("http://127.0.0.1:9999/x/3/projects/p", True)


def test_emulator_ignored_by_code_address_does_not_invent_dev_credentials(load: Loader) -> None:
    message = config_error(
        load, {"IRONMQ_EMULATOR_HOST": "127.0.0.1:8080"}, cloud="https://x.example"
    )

    assert "No IronMQ project id" in message


@pytest.mark.parametrize("value", ["localhost", "ftp://h:1", "127.0.0.1:notaport"])
def test_malformed_emulator_host_names_the_variable(load: Loader, value: str) -> None:
    assert "IRONMQ_EMULATOR_HOST" in config_error(load, {"IRONMQ_EMULATOR_HOST": value})
