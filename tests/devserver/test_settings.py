"""The dev server's settings: grouped value objects whose defaults and help the CLI reads."""

from __future__ import annotations

import dataclasses

import pytest
from click.testing import CliRunner

from ironpush._defaults import described, settings_of
from ironpush.cli._dev import PUSH_FLAGS, RETENTION_FLAGS, dev_command
from ironpush.devserver import DevConfig, DevServer, PushSettings, Retention


def test_the_groups_show_their_defaults_and_refuse_bad_values() -> None:
    assert repr(PushSettings()) == (
        "PushSettings(timeout=10.0, max_concurrent=256, max_backlog=2048, backlog_wait=5.0)"
    )
    assert repr(Retention()) == "Retention(finished=900.0, max_finished=20000, attempts=2000)"
    with pytest.raises(ValueError, match=r"PushSettings\.timeout must be > 0, got 0"):
        PushSettings(timeout=0)
    with pytest.raises(ValueError, match=r"Retention\.attempts must be >= 1, got 0"):
        Retention(attempts=0)
    assert "token" not in repr(DevConfig(token="s3cret-0123456789"))


def test_flat_keywords_set_their_group_and_unknown_ones_are_a_type_error() -> None:
    server = DevServer(
        push_timeout=2.0,
        max_concurrent_pushes=8,
        max_push_backlog=16,
        backlog_wait=1.0,
        finished_retention=60.0,
        max_finished=10,
        pushes=PushSettings(timeout=9.0),  # the flat keyword wins over the group's field
    )
    assert server.config.pushes == PushSettings(
        timeout=2.0, max_concurrent=8, max_backlog=16, backlog_wait=1.0
    )
    assert server.config.retention == Retention(finished=60.0, max_finished=10)
    with pytest.raises(TypeError, match="unexpected keyword argument 'push_timeouts'"):
        DevServer(push_timeouts=1.0)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("group", "flags"), [(PushSettings, PUSH_FLAGS), (Retention, RETENTION_FLAGS)]
)
def test_ironpush_dev_options_take_default_and_help_from_the_groups(
    group: type[PushSettings] | type[Retention], flags: dict[str, str]
) -> None:
    assert set(flags) == {f.name for f in dataclasses.fields(group)}  # every field has an option
    options = {p.opts[0]: p for p in dev_command.params}
    for name, default, meta in settings_of(group):
        option = options[flags[name]]
        assert option.default == default
        assert option.help == described(group, name).help == meta.help
    text = " ".join(CliRunner().invoke(dev_command, ["--help"]).output.split())
    assert "--push-timeout FLOAT RANGE Seconds a subscriber has to answer a push" in text
