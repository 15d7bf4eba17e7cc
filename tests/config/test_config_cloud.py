"""``cloud``: one URL for protocol, host, port and path prefix, and how it meets other layers."""

from __future__ import annotations

from pathlib import Path

import pytest
from config_kit import CREDS, Loader, config_error, write

# --- cloud --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cloud", "protocol", "host", "port", "prefix", "origin"),
    [
        ("https://mq.example.com", "https", "mq.example.com", 443, "", "https://mq.example.com"),
        ("http://mq.example.com", "http", "mq.example.com", 80, "", "http://mq.example.com"),
        (
            "https://mq.example.com:8443",
            "https",
            "mq.example.com",
            8443,
            "",
            "https://mq.example.com:8443",
        ),
        (
            "http://127.0.0.1:8080/prefix/",
            "http",
            "127.0.0.1",
            8080,
            "/prefix",
            "http://127.0.0.1:8080",
        ),
        ("HTTP://[::1]:9000/a/b", "http", "::1", 9000, "/a/b", "http://[::1]:9000"),
    ],
)
def test_cloud_sets_protocol_host_port_and_prefix(
    load: Loader, cloud: str, protocol: str, host: str, port: int, prefix: str, origin: str
) -> None:
    settings = load(cloud=cloud, **CREDS)

    assert (settings.protocol, settings.host, settings.port, settings.path_prefix) == (
        protocol,
        host,
        port,
        prefix,
    )
    assert settings.origin == origin
    assert settings.base_url == f"{origin}{prefix}/3/projects/p"


def test_later_plain_host_replaces_only_the_host_of_an_earlier_cloud(load: Loader) -> None:
    settings = load({"IRON_CLOUD": "http://a.example:8080/p", "IRON_MQ_HOST": "b.example"}, **CREDS)

    assert settings.base_url == "http://b.example:8080/p/3/projects/p"


def test_later_cloud_replaces_every_address_part_of_earlier_layers(
    load: Loader, work: Path
) -> None:
    write(work / "iron.json", {"cloud": "https://c.example"})
    env = {
        "IRON_HOST": "x.example",
        "IRON_PORT": "8080",
        "IRON_PROTOCOL": "http",
        "IRON_PATH_PREFIX": "/old",
    }

    settings = load(env, **CREDS)

    assert settings.base_url == "https://c.example/3/projects/p"


def test_explicit_fields_beat_cloud_within_the_same_layer(load: Loader, work: Path) -> None:
    write(work / "iron.json", {"cloud": "http://a.example:8080/p", "host": "b.example"})
    assert load(**CREDS).base_url == "http://b.example:8080/p/3/projects/p"

    settings = load(cloud="http://a.example:8080/p", port=9000, path_prefix="", **CREDS)
    assert settings.base_url == "http://a.example:9000/3/projects/p"


def test_nested_iron_mq_cloud_beats_top_level_host(load: Loader, work: Path) -> None:
    write(work / "iron.json", {"host": "top.example", "iron_mq": {"cloud": "http://n.example:81"}})

    assert load(**CREDS).origin == "http://n.example:81"


@pytest.mark.parametrize(
    "cloud", ["ftp://x.example", "mq.example.com", "http://", "http://h:99999"]
)
def test_malformed_cloud_is_a_config_error_naming_the_setting(load: Loader, cloud: str) -> None:
    message = config_error(load, {"IRON_MQ_CLOUD": cloud}, **CREDS)

    assert "IRON_MQ_CLOUD" in message
