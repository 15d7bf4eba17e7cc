"""Settings resolution: the defaults, and iron_core's layers each beating the earlier ones."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from config_kit import CREDS, TOKEN, Loader, write

from ironpush._config import load_settings

# --- defaults and precedence --------------------------------------------------------------------


def test_defaults_point_at_the_hosted_v3_service(load: Loader) -> None:
    settings = load(**CREDS)

    assert settings.host == "mq-aws-us-east-1-1.iron.io"
    assert (settings.protocol, settings.port) == ("https", 443)
    assert (settings.api_version, settings.path_prefix) == (3, "")
    assert settings.base_url == "https://mq-aws-us-east-1-1.iron.io/3/projects/p"
    assert (settings.token, settings.keystone, settings.secret_keys, settings.emulator) == (
        TOKEN,
        None,
        (),
        False,
    )


LAYERS = ["home", "IRON_", "IRON_MQ_", "local", "config_file", "kwargs"]


@pytest.mark.parametrize("top", range(len(LAYERS)), ids=LAYERS)
def test_each_layer_beats_every_earlier_layer(
    load: Loader, home: Path, work: Path, top: int
) -> None:
    env: dict[str, str] = {}
    kwargs: dict[str, Any] = {}
    for name in LAYERS[: top + 1]:
        host = f"{name.lower().strip('_')}.example"
        if name == "home":
            write(home / ".iron.json", {"host": host})
        elif name in ("IRON_", "IRON_MQ_"):
            env[f"{name}HOST"] = host
        elif name == "local":
            write(work / "iron.json", {"host": host})
        elif name == "config_file":
            kwargs["config_file"] = write(work / "custom.json", {"host": host})
        else:
            kwargs["host"] = host

    settings = load(env, **CREDS, **kwargs)

    assert settings.host == f"{LAYERS[top].lower().strip('_')}.example"


def test_local_iron_json_beats_environment_and_iron_mq_env_beats_iron_env(
    load: Loader, work: Path
) -> None:
    write(work / "iron.json", {"project_id": "from-file"})
    env = {"IRON_PROJECT_ID": "from-env", "IRON_TOKEN": "generic", "IRON_MQ_TOKEN": TOKEN}

    settings = load(env)

    assert (settings.project_id, settings.token) == ("from-file", TOKEN)


def test_none_keyword_arguments_mean_not_given(load: Loader) -> None:
    env = {"IRON_HOST": "env.example", "IRON_PORT": "8443"}

    settings = load(env, host=None, port=None, **CREDS)

    assert (settings.host, settings.port) == ("env.example", 8443)


def test_nested_iron_mq_section_overrides_top_level_keys(load: Loader, work: Path) -> None:
    write(
        work / "iron.json",
        {
            "host": "top.example",
            "port": 8443,
            "token": TOKEN,
            "project_id": "p",
            "iron_mq": {"host": "mq.example"},
            "iron_worker": {"host": "worker.example", "port": 1},
        },
    )

    settings = load()

    assert (settings.host, settings.port, settings.token) == ("mq.example", 8443, TOKEN)


def test_empty_file_values_mean_not_given_except_path_prefix(load: Loader, work: Path) -> None:
    env = {"IRON_HOST": "env.example", "IRON_PORT": "8443", "IRON_PATH_PREFIX": "/env"}
    write(work / "iron.json", {"host": "", "port": "", "keystone": "", "path_prefix": ""})

    settings = load(env, **CREDS)

    assert (settings.host, settings.port, settings.path_prefix) == ("env.example", 8443, "")
    assert settings.keystone is None


def test_blank_environment_values_count_as_unset(load: Loader) -> None:
    settings = load({"IRON_HOST": "set.example", "IRON_MQ_HOST": "  ", "IRON_MQ_PORT": ""}, **CREDS)

    assert (settings.host, settings.port) == ("set.example", 443)


def test_iron_json_is_read_from_the_process_working_directory(
    tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "iron.json", {"project_id": "p", "token": TOKEN, "host": "cwd.example"})
    monkeypatch.chdir(tmp_path)

    settings = load_settings(env={}, home=home)

    assert (settings.project_id, settings.host) == ("p", "cwd.example")
    assert any(str(tmp_path / "iron.json") in source for source in settings.sources)


def test_relative_config_file_is_resolved_against_cwd_and_tilde_against_home(
    load: Loader, home: Path, work: Path
) -> None:
    write(work / "rel.json", {"host": "rel.example"})
    write(home / "mine.json", {"host": "home.example"})

    assert load(config_file="rel.json", **CREDS).host == "rel.example"
    assert load(config_file="~/mine.json", **CREDS).host == "home.example"
