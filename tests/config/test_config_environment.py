"""Environment variables: converted to their types, or an error naming the variable."""

from __future__ import annotations

import json

import pytest
from config_kit import KEYSTONE, PASSWORD, TOKEN, Loader, config_error

from ironpush._config import Keystone

# --- environment conversion ---------------------------------------------------------------------


def test_environment_values_are_converted_to_proper_types(load: Loader) -> None:
    env = {
        "IRON_PORT": "8443",
        "IRON_API_VERSION": "3",
        "IRON_PROJECT_ID": "p",
        "IRON_MQ_KEYSTONE": json.dumps(KEYSTONE),
        "IRON_PROTOCOL": "HTTP",
        "IRON_PATH_PREFIX": "mq/",
    }

    settings = load(env)

    assert settings.port == 8443
    assert settings.api_version == 3
    assert settings.keystone == Keystone(**KEYSTONE)
    assert (settings.protocol, settings.path_prefix) == ("http", "/mq")
    assert settings.base_url == "http://mq-aws-us-east-1-1.iron.io:8443/mq/3/projects/p"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("IRON_PORT", "abc"),
        ("IRON_MQ_PORT", "80.5"),
        ("IRON_API_VERSION", "three"),
        ("IRON_KEYSTONE", "not json"),
        ("IRON_MQ_KEYSTONE", '["a", "list"]'),
        ("IRON_KEYSTONE", json.dumps({"server": "s", "password": PASSWORD})),
    ],
)
def test_unconvertible_environment_value_names_the_variable(
    load: Loader, name: str, value: str
) -> None:
    message = config_error(load, {name: value, "IRON_TOKEN": TOKEN}, project_id="p")

    assert name in message
    assert PASSWORD not in message
    assert TOKEN not in message
