"""Settings resolution: iron_core's layers, cloud URLs, the emulator switch, secrets never shown."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ironpush._config import ENV_VARS, Keystone, Settings, load_settings
from ironpush._errors import ConfigError

TOKEN = "tok-SECRET-0123456789abcdef"
PASSWORD = "ks-PASSWORD-hunter2"
KEYSTONE = {
    "server": "https://ks.example/v2.0/",
    "tenant": "t",
    "username": "u",
    "password": PASSWORD,
}
SECRET_KEYS = ("old-SIGNING-key-111", "new-SIGNING-key-222")
CREDS: dict[str, Any] = {"project_id": "p", "token": TOKEN}

Loader = Callable[..., Settings]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def work(tmp_path: Path) -> Path:
    path = tmp_path / "work"
    path.mkdir()
    return path


@pytest.fixture
def load(home: Path, work: Path) -> Loader:
    """load_settings isolated from the real environment, home and working directory."""

    def _load(env: dict[str, str] | None = None, **kwargs: Any) -> Settings:
        return load_settings(env=env or {}, home=home, cwd=work, **kwargs)

    return _load


def write(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data))
    return path


def config_error(load: Loader, env: dict[str, str] | None = None, **kwargs: Any) -> str:
    with pytest.raises(ConfigError) as info:
        load(env, **kwargs)
    return str(info.value)


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


# --- files --------------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["home", "local", "config_file"])
def test_malformed_json_names_the_file_and_never_echoes_it(
    load: Loader, home: Path, work: Path, which: str
) -> None:
    path = {"home": home / ".iron.json", "local": work / "iron.json"}.get(which, work / "c.json")
    path.write_text('{"token": "' + TOKEN + '", "project_id": ')
    kwargs = {"config_file": path} if which == "config_file" else {}

    with pytest.raises(ConfigError) as info:
        load(**kwargs)

    assert str(path) in str(info.value)
    assert "not valid JSON" in str(info.value)
    assert TOKEN not in str(info.value)
    assert info.value.__context__ is None  # the decode error holding the text is not attached


def test_unreadable_home_file_is_warned_about_and_skipped(
    load: Loader, home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (home / ".iron.json").mkdir()  # a directory: exists, cannot be read (even by root)

    settings = load({"IRON_PROJECT_ID": "p", "IRON_TOKEN": TOKEN})

    assert settings.project_id == "p"
    assert f"{home / '.iron.json'} (home file): cannot be read" in "\n".join(settings.sources)
    [record] = [r for r in caplog.records if r.name == "ironpush._config"]
    assert record.levelname == "WARNING"
    assert "skipped" in record.getMessage()


def test_home_file_that_is_not_utf8_is_skipped_without_echo(
    load: Loader, home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (home / ".iron.json").write_bytes(b'{"token": "\xff' + TOKEN.encode() + b'"}')

    settings = load(**CREDS)

    assert "is not UTF-8 text, skipped" in "\n".join(settings.sources)
    assert TOKEN not in caplog.text


@pytest.mark.parametrize("which", ["local", "config_file"])
def test_unreadable_local_or_explicit_file_is_an_error(
    load: Loader, work: Path, which: str
) -> None:
    path = work / ("iron.json" if which == "local" else "c.json")
    path.mkdir()
    kwargs = {"config_file": path} if which == "config_file" else {}

    message = config_error(load, **kwargs, **CREDS)

    assert str(path) in message
    assert "cannot be read" in message


def test_missing_explicit_config_file_is_an_error(load: Loader, work: Path) -> None:
    message = config_error(load, config_file=work / "nope.json", **CREDS)

    assert str(work / "nope.json") in message
    assert "does not exist" in message


@pytest.mark.parametrize("content", [[1, 2], {"iron_mq": "x"}, {"port": "eighty"}, {"host": 5}])
def test_wrongly_shaped_file_is_a_config_error_naming_the_file(
    load: Loader, work: Path, content: object
) -> None:
    write(work / "iron.json", content)

    assert str(work / "iron.json") in config_error(load, **CREDS)


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


# --- secret keys --------------------------------------------------------------------------------


def test_secret_keys_from_environment_keep_order_and_drop_blanks(load: Loader) -> None:
    settings = load({"IRONPUSH_SECRET_KEYS": f" {SECRET_KEYS[0]}, ,{SECRET_KEYS[1]},"}, **CREDS)

    assert settings.secret_keys == SECRET_KEYS


def test_secret_keys_keyword_beats_environment(load: Loader) -> None:
    env = {"IRONPUSH_SECRET_KEYS": "env-key"}

    assert load(env, secret_keys=list(SECRET_KEYS), **CREDS).secret_keys == SECRET_KEYS
    assert load(env, secret_keys=[], **CREDS).secret_keys == ()
    assert load(env, secret_keys=None, **CREDS).secret_keys == ("env-key",)


def test_short_signing_keys_are_accepted_with_a_warning(
    load: Loader, caplog: pytest.LogCaptureFixture
) -> None:
    long_key = "k" * 32
    settings = load({"IRONPUSH_SECRET_KEYS": f"short-key,{long_key}"}, **CREDS)

    assert settings.secret_keys == ("short-key", long_key)
    messages = [r.getMessage() for r in caplog.records if r.name == "ironpush._config"]
    assert messages == [
        "IRONPUSH_SECRET_KEYS: key #1 is 9 bytes; use at least 32 (make one with `ironpush keygen`)"
    ]
    assert "short-key" not in caplog.text


def test_keys_of_32_bytes_or_more_give_no_warning(
    load: Loader, caplog: pytest.LogCaptureFixture
) -> None:
    load({"IRONPUSH_SECRET_KEYS": "x" * 32}, secret_keys=["y" * 40], **CREDS)
    load({"IRONPUSH_SECRET_KEYS": "x" * 32}, **CREDS)

    assert not [r for r in caplog.records if r.name == "ironpush._config"]


@pytest.mark.parametrize("value", ["one-string-key", [SECRET_KEYS[0], 42], 7])
def test_malformed_secret_keys_keyword_is_refused_without_echo(load: Loader, value: object) -> None:
    message = config_error(load, secret_keys=value, **CREDS)

    assert "secret_keys" in message
    assert SECRET_KEYS[0] not in message
    assert "one-string-key" not in message


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


# --- rendering ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("protocol", "port", "origin"),
    [
        ("https", 443, "https://h.example"),
        ("https", 8443, "https://h.example:8443"),
        ("http", 80, "http://h.example"),
        ("http", 8080, "http://h.example:8080"),
        ("http", 443, "http://h.example:443"),
    ],
)
def test_origin_omits_only_the_schemes_default_port(
    load: Loader, protocol: str, port: int, origin: str
) -> None:
    settings = load(host="h.example", protocol=protocol, port=port, path_prefix="/pre/", **CREDS)

    assert settings.origin == origin
    assert settings.base_url == f"{origin}/pre/3/projects/p"


def test_repr_and_str_never_show_secrets(load: Loader) -> None:
    settings = load(project_id="p", token=TOKEN, keystone=KEYSTONE, secret_keys=SECRET_KEYS)

    for text in (repr(settings), str(settings), repr(settings.keystone)):
        assert TOKEN not in text
        assert PASSWORD not in text
        for key in SECRET_KEYS:
            assert key not in text
    assert "project_id='p'" in repr(settings)
    assert "password='***'" in repr(settings.keystone)
    assert repr(settings).count("***") >= 4  # token, password and both keys are masked
    assert all(TOKEN not in source for source in settings.sources)


def test_sources_name_where_values_came_from_without_values(load: Loader, home: Path) -> None:
    write(home / ".iron.json", {"token": TOKEN})

    settings = load({"IRON_PROJECT_ID": "p"}, port=8443)

    joined = "\n".join(settings.sources)
    assert f"{home / '.iron.json'} (home file): token" in joined
    assert "IRON_PROJECT_ID" in joined
    assert "keyword arguments: port=" in joined
    assert TOKEN not in joined


def test_env_vars_constant_lists_every_variable_read() -> None:
    for key in (
        "HOST",
        "PROTOCOL",
        "PORT",
        "API_VERSION",
        "PROJECT_ID",
        "TOKEN",
        "KEYSTONE",
        "PATH_PREFIX",
        "CLOUD",
    ):
        assert f"IRON_{key}" in ENV_VARS
        assert f"IRON_MQ_{key}" in ENV_VARS
    assert "IRONMQ_EMULATOR_HOST" in ENV_VARS
    assert "IRONPUSH_SECRET_KEYS" in ENV_VARS
    assert len(ENV_VARS) == len(set(ENV_VARS)) == 20
