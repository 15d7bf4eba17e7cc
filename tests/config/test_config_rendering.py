"""Settings as users see them: origins, reprs without secrets, where each value came from."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest
from config_kit import CREDS, KEYSTONE, PASSWORD, SECRET_KEYS, TOKEN, Loader, write

from ironpush._config import ENV_VARS
from ironpush._redact import hidden, mask, masked_repr

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


@dataclass(frozen=True, repr=False)
class _Login:
    user: str
    password: str | None
    token: str = field(default="", repr=False)


def test_masked_repr_masks_the_named_fields_and_leaves_out_hidden_ones() -> None:
    login = _Login("u", "Et1En7abcdefghijklmnop", token=TOKEN)

    assert masked_repr(login, password=mask) == "_Login(user='u', password='Et1E***')"
    assert masked_repr(login, password=hidden) == "_Login(user='u', password='***')"
    assert masked_repr(_Login("u", None), password=hidden) == "_Login(user='u', password=None)"


def test_masked_repr_refuses_to_mask_a_field_that_does_not_exist() -> None:
    # A renamed secret field would otherwise show up unmasked under its new name.
    with pytest.raises(TypeError, match="'passwd'"):
        masked_repr(_Login("u", "pw"), passwd=hidden)


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
