"""Fixtures of the configuration tests: ``load_settings`` isolated from the real environment,
home and working directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from config_kit import Loader

from ironpush._config import Settings, load_settings


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
