"""Reading ``iron.json`` files: where they are, and their JSON object (contents never echoed)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .._errors import ConfigError
from .values import parse_json

PRODUCT_SECTION = "iron_mq"
HOME_FILE = ".iron.json"
LOCAL_FILE = "iron.json"


def home_dir(home: str | os.PathLike[str] | None) -> Path | None:
    if home is not None:
        return Path(home)
    try:
        return Path.home()
    except (RuntimeError, KeyError):  # no HOME and no passwd entry (some containers)
        return None


def resolve_path(path: str | os.PathLike[str], *, cwd: Path, home: Path | None) -> Path:
    text = os.fspath(path)
    if home is not None and (text == "~" or text.startswith("~/")):
        return home / text[2:]
    return cwd / text  # an absolute path stays absolute


class Unreadable(Exception):
    """A config file exists (or was required) but its text could not be read."""

    def __init__(self, label: str, path: Path, problem: str) -> None:
        super().__init__(f"{label} {path} {problem}")
        self.problem = problem


def read_json_object(path: Path, label: str, *, required: bool) -> dict[str, Any] | None:
    """The file's JSON object, or None when an optional file is absent.

    Raises :class:`Unreadable` when the text cannot be read, ``ConfigError`` when it is not a
    JSON object. Errors are raised outside the ``except`` blocks on purpose: a
    UnicodeDecodeError or JSONDecodeError carries the file's text, which must not travel along
    as ``__context__``.
    """
    problem = None
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        if not required:
            return None
        problem = "does not exist"
    except UnicodeDecodeError:
        problem = "is not UTF-8 text"
    except OSError as exc:
        problem = f"cannot be read ({exc.strerror or type(exc).__name__})"
    if problem is not None:
        raise Unreadable(label, path, problem)
    data, problem = parse_json(text)
    if problem is not None:
        raise ConfigError(f"{label} {path} is not valid JSON{problem}; fix or remove it")
    if not isinstance(data, dict):
        raise ConfigError(f"{label} {path} must contain a JSON object")
    return data
