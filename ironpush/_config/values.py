"""Conversion of raw setting values (from a file, the environment or keywords) into typed ones.

Each error names where the value came from and never echoes a secret."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from .._errors import ConfigError
from .._redact import redact_url
from .settings import DEFAULT_PORTS, EMULATOR_ENV, Keystone

_KEYSTONE_KEYS = ("server", "tenant", "username", "password")


def convert_layer(raw: Mapping[str, Any], name: Callable[[str], str]) -> dict[str, tuple[Any, str]]:
    """Convert each raw value; ``name(key)`` says where it came from. Drops "not given" values."""
    layer: dict[str, tuple[Any, str]] = {}
    for key, value in raw.items():
        where = name(key)
        converted = _convert(key, value, where)
        if converted is not None:
            layer[key] = (converted, where)
    return layer


def _convert(key: str, value: Any, where: str) -> Any:
    if value is None or (key != "path_prefix" and isinstance(value, str) and not value.strip()):
        return None  # null / "" mean "not given"; path_prefix "" means "no prefix"
    if key in ("port", "api_version"):
        return _to_int(value, where)
    if key == "keystone":
        return _to_keystone(value, where)
    text = _to_str(value, where)
    if key == "path_prefix":
        return _normalise_prefix(text)
    if key == "cloud":
        return parse_url(text, where)
    if key == "host":
        return _check_host(text, where)
    if key == "protocol":
        return text.lower()
    return text


def _to_str(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{where} must be a string, not {type(value).__name__}")
    return value.strip()


def _to_int(value: Any, where: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        return int(value.strip())
    shown = repr(value)[:30] if isinstance(value, str | int | float) else type(value).__name__
    raise ConfigError(f"{where} must be an integer, got {shown}")


def _to_keystone(value: Any, where: str) -> Keystone:
    if isinstance(value, Keystone):
        return value
    if isinstance(value, str):
        value, problem = parse_json(value)
        if problem is not None:  # never echo the text: it holds a password
            raise ConfigError(
                f"{where} is not valid JSON{problem}; it must be a JSON object with keys "
                f"{', '.join(_KEYSTONE_KEYS)}"
            )
    if not isinstance(value, Mapping):
        raise ConfigError(
            f"{where} must be an object with keys {', '.join(_KEYSTONE_KEYS)}, "
            f"not {type(value).__name__}"
        )
    absent = [k for k in _KEYSTONE_KEYS if not isinstance(value.get(k), str) or not value[k]]
    if absent:
        raise ConfigError(
            f"{where} is incomplete: {', '.join(absent)} missing or not a non-empty string "
            f"(keystone needs {', '.join(_KEYSTONE_KEYS)})"
        )
    return Keystone(**{k: value[k] for k in _KEYSTONE_KEYS})


def header_safe(value: str) -> bool:
    return value.isascii() and all(31 < ord(c) < 127 for c in value)


def _normalise_prefix(text: str) -> str:
    stripped = text.strip().strip("/")
    return f"/{stripped}" if stripped else ""


def _check_host(text: str, where: str) -> str:
    if "/" in text:
        raise ConfigError(
            f"{where} must be a host name, not a URL; use cloud (IRON_CLOUD / cloud=) for "
            "scheme://host:port/prefix"
        )
    if text.startswith("[") and text.endswith("]"):
        return text[1:-1]
    if text.count(":") == 1:  # two or more colons: an IPv6 literal
        raise ConfigError(f"{where} must not include a port; set port separately or use cloud")
    return text


def parse_url(url: str, where: str, *, bare: str | None = None) -> dict[str, Any]:
    """``scheme://host[:port][/prefix]`` → protocol, host, port, path_prefix.

    ``bare`` is the user's text when ``url`` was built from the emulator's ``host:port`` form;
    that form insists on an explicit port.
    """
    emulator = where == EMULATOR_ENV
    example = "127.0.0.1:8080 or http://127.0.0.1:8080" if emulator else "https://host[:port]"
    problem = f"{where} must look like {example}, got {redact_url(bare or url)!r}"
    try:
        parts = urlsplit(url)
        explicit_port = parts.port
    except ValueError:
        raise ConfigError(problem) from None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname or parts.query or parts.fragment:
        raise ConfigError(problem)
    if bare is not None and explicit_port is None:
        raise ConfigError(f"{problem} (the port is missing)")
    if parts.username is not None or parts.password is not None:
        raise ConfigError(f"{where} must not contain user:password@ credentials")
    return {
        "protocol": scheme,
        "host": parts.hostname,
        "port": explicit_port if explicit_port is not None else DEFAULT_PORTS[scheme],
        "path_prefix": _normalise_prefix(parts.path),
    }


def render_address(address: Mapping[str, Any]) -> str:
    host = address["host"]
    host = f"[{host}]" if ":" in host else host
    return f"{address['protocol']}://{host}:{address['port']}{address['path_prefix']}"


def parse_json(text: str) -> tuple[Any, str | None]:
    """``(value, None)``, or ``(None, " (line L, column C: reason)")`` without the text itself."""
    try:
        return json.loads(text), None
    except json.JSONDecodeError as exc:
        return None, f" (line {exc.lineno}, column {exc.colno}: {exc.msg})"
