"""``~/.iron.json``, ``./iron.json`` and ``config_file``: read, skipped or refused, never echoed."""

from __future__ import annotations

from pathlib import Path

import pytest
from config_kit import CREDS, TOKEN, Loader, config_error, write

from ironpush._errors import ConfigError

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
