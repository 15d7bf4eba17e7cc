"""Layering the settings sources in precedence order (see :mod:`ironpush._config`)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .._errors import ConfigError
from .._protocol import DEFAULT_API_VERSION
from .files import (
    HOME_FILE,
    LOCAL_FILE,
    PRODUCT_SECTION,
    Unreadable,
    home_dir,
    read_json_object,
    resolve_path,
)
from .keys import resolve_secret_keys
from .settings import DEFAULT_PORTS, DEFAULTS, EMULATOR_ENV, ENV_PREFIXES, KEYS, Keystone, Settings
from .values import convert_layer, header_safe, parse_url, render_address

logger = logging.getLogger("ironpush._config")

_CREDENTIAL_KEYS = ("project_id", "token", "keystone")
_DEV_CREDENTIAL = "dev"
_FIX_HINT = (
    "Fix: set IRON_PROJECT_ID and IRON_TOKEN (or project_id and token in ~/.iron.json or "
    "./iron.json, or pass {given}),\n"
    f"  or use a local dev server: {EMULATOR_ENV}=127.0.0.1:8080 (see `ironpush dev`)."
)


def load_settings(
    *,
    config_file: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    home: str | os.PathLike[str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    require_credentials: bool = True,
    labels: Mapping[str, str] | None = None,
    **overrides: Any,
) -> Settings:
    """Resolve settings from defaults, files, environment and ``overrides`` (see module docs).

    ``overrides`` are the keyword-argument layer: any of :data:`KEYS` plus ``secret_keys``
    (a sequence of str); ``None`` means "not given". ``env``, ``home`` and ``cwd`` replace
    ``os.environ``, the home directory and the current directory (for tests and tools).
    With ``require_credentials=False`` a missing project id or token gives ``project_id=""``
    and ``token=None`` instead of raising. ``labels`` names the overrides in messages (e.g.
    ``{"cloud": "--cloud"}``; default ``keyword argument cloud=``). Raises
    :class:`~ironpush._errors.ConfigError`.

    Example::

        settings = load_settings(cloud="http://127.0.0.1:8080", project_id="p", token="t")
        settings.origin     # 'http://127.0.0.1:8080'
    """
    unknown = sorted(set(overrides) - {*KEYS, "secret_keys"})
    if unknown:
        known = ", ".join((*KEYS, "secret_keys"))
        raise ConfigError(f"Unknown setting(s) {', '.join(unknown)}; known settings: {known}.")
    environ: Mapping[str, str] = os.environ if env is None else env
    cwd_path = Path(cwd) if cwd is not None else Path.cwd()
    home_path = home_dir(home)
    resolver = _Resolver(labels)

    if home_path is None:
        resolver.sources.append(f"~/{HOME_FILE}: home directory unknown, skipped")
    else:
        resolver.apply_file(home_path / HOME_FILE, "home file", required=False, tolerant=True)
    for prefix in ENV_PREFIXES:
        resolver.apply_env(environ, prefix)
    resolver.apply_file(cwd_path / LOCAL_FILE, "local file", required=False)
    if config_file is not None:
        path = resolve_path(config_file, cwd=cwd_path, home=home_path)
        resolver.apply_file(path, "config_file", required=True)
    # Keyword arguments are converted before the emulator decision: an empty host="" is "not
    # given" and must not disable the switch.
    in_code = convert_layer(
        {key: overrides[key] for key in KEYS if key in overrides}, resolver.label
    )
    address_in_code = "host" in in_code or "cloud" in in_code
    emulator = resolver.apply_emulator(environ, address_in_code=address_in_code)
    given_keys = overrides.get("secret_keys")
    secret_keys = resolve_secret_keys(environ, given_keys, resolver.sources)
    resolver.apply_overrides(in_code, secret_keys=given_keys is not None)
    return resolver.build(
        emulator=emulator, secret_keys=secret_keys, require_credentials=require_credentials
    )


class _Resolver:
    """Accumulates layers; remembers where each value came from for error messages."""

    def __init__(self, labels: Mapping[str, str] | None = None) -> None:
        # How the keyword-argument layer names its settings (the CLI: its option names).
        self.labels = dict(labels or {})
        self.layer_name = "command-line options" if labels else "keyword arguments"
        self.values: dict[str, Any] = dict(DEFAULTS)
        self.origin: dict[str, str] = dict.fromkeys(DEFAULTS, "defaults")
        self.sources: list[str] = ["defaults"]

    def _apply(self, layer: Mapping[str, tuple[Any, str]]) -> None:
        # A layer's cloud expands first so its explicit host/port/... beat it (module docs).
        if "cloud" in layer:
            address, where = layer["cloud"]
            for key, value in address.items():
                self._set(key, value, where)
        for key, (value, where) in layer.items():
            if key != "cloud":
                self._set(key, value, where)

    def label(self, key: str) -> str:
        """A keyword-argument setting as error messages name it: ``keyword argument cloud=``."""
        return self.labels.get(key, f"keyword argument {key}=")

    def _set(self, key: str, value: Any, where: str) -> None:
        self.values[key] = value
        self.origin[key] = where

    def apply_file(self, path: Path, label: str, *, required: bool, tolerant: bool = False) -> None:
        """Apply one JSON file; ``tolerant``: a file that cannot be read is warned about."""
        try:
            data = read_json_object(path, label, required=required)
        except Unreadable as exc:
            if not tolerant:
                raise ConfigError(str(exc)) from None
            logger.warning("%s; skipped", exc)
            self.sources.append(f"{path} ({label}): {exc.problem}, skipped")
            return
        if data is None:
            self.sources.append(f"{path} ({label}): not found")
            return
        given: list[str] = []
        for section, raw in ((None, data), (PRODUCT_SECTION, data.get(PRODUCT_SECTION))):
            if section is not None and raw is None:
                continue
            if not isinstance(raw, Mapping):
                raise ConfigError(f'{path}: "{section}" must be a JSON object')
            dotted = f"{section}." if section else ""
            layer = convert_layer({k: raw[k] for k in KEYS if k in raw}, _file_key(path, dotted))
            self._apply(layer)
            given.extend(dotted + key for key in layer)
        self.sources.append(f"{path} ({label}): {_listing(given)}")

    def apply_env(self, environ: Mapping[str, str], prefix: str) -> None:
        raw = {}
        for key in KEYS:
            value = environ.get(prefix + key.upper())
            if value is not None and value.strip():
                raw[key] = value
        layer = convert_layer(raw, lambda key: prefix + key.upper())
        self._apply(layer)
        self.sources.append(
            f"environment {prefix}*: {_listing([prefix + key.upper() for key in layer])}"
        )

    def apply_emulator(self, environ: Mapping[str, str], *, address_in_code: bool) -> bool:
        """Apply IRONMQ_EMULATOR_HOST unless code chose the address; whether it is in effect."""
        raw = environ.get(EMULATOR_ENV, "").strip()
        if not raw:
            self.sources.append(f"environment {EMULATOR_ENV}: not set")
            return False
        if "://" in raw:
            address = parse_url(raw, EMULATOR_ENV)
        else:  # host:port form: plain http, and the port is required
            address = parse_url(f"http://{raw}", EMULATOR_ENV, bare=raw)
        if address_in_code:
            self.sources.append(
                f"environment {EMULATOR_ENV}: ignored ({self.layer_name} set the address)"
            )
            return False
        for key, value in address.items():
            self._set(key, value, EMULATOR_ENV)
        self.sources.append(f"environment {EMULATOR_ENV}: {render_address(address)}")
        return True

    def apply_overrides(self, layer: Mapping[str, tuple[Any, str]], *, secret_keys: bool) -> None:
        self._apply(layer)
        names = [*layer, *(["secret_keys"] if secret_keys else [])]
        given = [self.labels.get(key, f"{key}=") for key in names]
        self.sources.append(f"{self.layer_name}: {_listing(given)}")

    def build(
        self, *, emulator: bool, secret_keys: tuple[str, ...], require_credentials: bool
    ) -> Settings:
        self._validate_address()
        project_id: str | None = self.values.get("project_id")
        token: str | None = self.values.get("token")
        keystone: Keystone | None = self.values.get("keystone")
        if emulator:
            project_id = project_id or _DEV_CREDENTIAL
            if token is None and keystone is None:
                token = _DEV_CREDENTIAL
        missing = []
        if not project_id:
            missing.append("project id")
        if token is None and keystone is None:
            missing.append("token (or keystone credentials)")
        if missing and require_credentials:
            raise ConfigError(self._missing_message(missing))
        if token is not None and not header_safe(token):
            # Checked here, not when the first request fails: the HTTP libraries' own errors
            # quote the offending header value, i.e. the token.
            raise ConfigError(
                f"the token (from {self.origin.get('token', 'settings')}) has characters that "
                "cannot be sent in an HTTP header (control characters or non-ASCII)"
            )
        return Settings(
            project_id=project_id or "",
            token=token,
            host=self.values["host"],
            protocol=self.values["protocol"],
            port=self.values["port"],
            api_version=self.values["api_version"],
            path_prefix=self.values["path_prefix"],
            keystone=keystone,
            secret_keys=secret_keys,
            emulator=emulator,
            sources=tuple(self.sources),
        )

    def _validate_address(self) -> None:
        protocol, port, version = (self.values[k] for k in ("protocol", "port", "api_version"))
        if protocol not in DEFAULT_PORTS:
            raise ConfigError(
                f"protocol {protocol!r} (from {self.origin['protocol']}) must be 'https' or 'http'"
            )
        if not 1 <= port <= 65535:
            raise ConfigError(f"port {port} (from {self.origin['port']}) must be 1..65535")
        if version != DEFAULT_API_VERSION:
            why = (
                "the v1/v2 API is shut down (Iron.io answers only v3) and v2 credentials do "
                "not work on v3"
                if version in (1, 2)
                else "no other API version exists"
            )
            raise ConfigError(
                f"api_version {version} (from {self.origin['api_version']}) is not supported: "
                f"ironpush speaks IronMQ API v3 only; {why}. Remove the setting or set it to 3."
            )

    def _missing_message(self, missing: list[str]) -> str:
        """Several lines: what is missing, each place looked at on its own line, the fix."""
        checked = ", ".join(
            prefix + key.upper() for prefix in ENV_PREFIXES for key in _CREDENTIAL_KEYS
        )
        given = f"{self.label('project_id')} and {self.label('token')}"
        return "\n".join(
            [
                f"No IronMQ {' and no '.join(missing)} configured.",
                "Looked in (later wins):",
                *(f"  {source}" for source in self.sources),
                f"Environment variables checked: {checked}.",
                _FIX_HINT.format(given=given),
            ]
        )


def _file_key(path: Path, dotted: str) -> Callable[[str], str]:
    return lambda key: f"{path}: {dotted}{key}"


def _listing(items: list[str]) -> str:
    return ", ".join(items) if items else "nothing set"
