"""What the configuration tests share: a token, keystone credentials, signing keys, and helpers
to write a file and catch a ``ConfigError``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ironpush._config import Settings
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


def write(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data))
    return path


def config_error(load: Loader, env: dict[str, str] | None = None, **kwargs: Any) -> str:
    with pytest.raises(ConfigError) as info:
        load(env, **kwargs)
    return str(info.value)
