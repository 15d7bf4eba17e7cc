"""``IRONPUSH_SECRET_KEYS`` and ``secret_keys=``: order, precedence, short keys, bad values."""

from __future__ import annotations

import pytest
from config_kit import CREDS, SECRET_KEYS, Loader, config_error

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
