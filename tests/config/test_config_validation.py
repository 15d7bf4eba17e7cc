"""Invalid settings: shut-down API versions, unknown ones, bad keyword values and their layer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from config_kit import CREDS, Loader, config_error, write

# --- validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [1, 2])
def test_api_versions_one_and_two_are_refused_as_shut_down(load: Loader, version: int) -> None:
    from_kwarg = config_error(load, api_version=version, **CREDS)
    from_env = config_error(load, {"IRON_MQ_API_VERSION": str(version)}, **CREDS)

    for message in (from_kwarg, from_env):
        assert f"api_version {version}" in message
        assert "v3 only" in message
        assert "shut down" in message
    assert "IRON_MQ_API_VERSION" in from_env


def test_unknown_api_version_is_refused(load: Loader) -> None:
    assert "v3 only" in config_error(load, api_version=4, **CREDS)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"protocol": "ftp"}, "protocol"),
        ({"port": 0}, "port"),
        ({"port": 65536}, "port"),
        ({"port": True}, "port"),
        ({"host": "https://h.example"}, "cloud"),
        ({"host": "h.example:8080"}, "port"),
        ({"hostname": "h"}, "hostname"),
    ],
)
def test_invalid_keyword_settings_are_config_errors(
    load: Loader, kwargs: dict[str, Any], needle: str
) -> None:
    assert needle in config_error(load, **kwargs, **CREDS)


def test_invalid_value_error_names_the_layer_it_came_from(load: Loader, home: Path) -> None:
    write(home / ".iron.json", {"iron_mq": {"port": 70000}})

    message = config_error(load, **CREDS)

    assert str(home / ".iron.json") in message
    assert "70000" in message
