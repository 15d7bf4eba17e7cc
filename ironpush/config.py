"""Settings resolution: where ironpush finds the IronMQ address, project id and token.

ironpush reads its settings the way Iron.io's official Python core (iron_core 1.2) does, so an
existing ``iron.json`` or ``IRON_*`` environment keeps working, plus two ironpush additions: the
dev-server switch ``IRONMQ_EMULATOR_HOST`` and the signing keys ``IRONPUSH_SECRET_KEYS``.

Precedence (each layer overrides the one before it):

1. product defaults: host ``mq-aws-us-east-1-1.iron.io``, protocol ``https``, port ``443``,
   api_version ``3``, no path prefix;
2. ``~/.iron.json`` (the user's home directory);
3. ``IRON_*`` environment variables (apply to every Iron.io product);
4. ``IRON_MQ_*`` environment variables (IronMQ only);
5. ``./iron.json`` in the process's current working directory (like iron_core, not the
   directory of the script);
6. the file passed as ``config_file=`` (it must exist);
7. ``IRONMQ_EMULATOR_HOST``, when set (see below);
8. keyword arguments, e.g. ``IronMQ(project_id=..., token=...)``.

Settings: ``host``, ``protocol`` (``https``/``http``), ``port``, ``api_version`` (must be 3),
``project_id``, ``token``, ``keystone``, ``path_prefix``, ``cloud``. A project id is required,
and a token or complete ``keystone`` credentials (``{"server", "tenant", "username",
"password"}``, used instead of a token).

Files (``~/.iron.json``, ``./iron.json``, ``config_file``) are JSON objects. Top-level keys apply
to every Iron.io product; keys inside a nested ``"iron_mq"`` object override them for IronMQ::

    {"token": "...", "project_id": "...", "iron_mq": {"host": "mq-aws-eu-west-1-1.iron.io"}}

Other keys (other products' sections) are ignored. ``null`` and ``""`` mean "not given", except
``"path_prefix": ""`` which means "no prefix". A missing home or local file is skipped; a file
that exists but is unreadable or not valid JSON is a :class:`~ironpush.errors.ConfigError`
naming the file (its contents are never echoed: they hold tokens).

Environment variables (blank values count as unset):

- ``IRON_HOST``, ``IRON_PROTOCOL``, ``IRON_PORT`` (integer), ``IRON_API_VERSION`` (integer),
  ``IRON_PROJECT_ID``, ``IRON_TOKEN``, ``IRON_KEYSTONE`` (a JSON object), ``IRON_PATH_PREFIX``,
  ``IRON_CLOUD``; and the same names with ``IRON_MQ_`` instead of ``IRON_``, which win;
- ``IRONMQ_EMULATOR_HOST``: the dev-server switch;
- ``IRONPUSH_SECRET_KEYS``: comma-separated signing keys for push secrets and ack tokens,
  oldest first and newest last (itsdangerous' order: the last key signs, all keys verify).

:data:`ENV_VARS` lists them all. A value that cannot be converted (``IRON_PORT=abc``) is a
``ConfigError`` naming the variable.

``cloud`` is a URL ``scheme://host[:port][/prefix]`` that sets protocol, host, port (default 443
for https, 80 for http) and path prefix at once. Layers apply in order: a layer's ``cloud``
expands into those four settings *at that layer*, and inside one layer (or one file section)
explicit ``host``/``protocol``/``port``/``path_prefix`` beat that layer's ``cloud``. So
``IRON_CLOUD=http://a:8080/p`` followed by ``IRON_MQ_HOST=b`` gives ``http://b:8080/p``, and a
later layer's plain ``host`` replaces only the host of an earlier ``cloud``. (iron_core applies
``cloud`` once at the very end, so a ``cloud`` from any layer beat a ``host`` from any layer;
ironpush keeps the documented "later layer wins" rule instead.)

Dev-server switch: when ``IRONMQ_EMULATOR_HOST`` is set (``127.0.0.1:8080``, ``localhost:8080``
or a URL such as ``http://127.0.0.1:8080/prefix``), protocol, host, port and path prefix from
every file and ``IRON_*`` variable are replaced by that address (plain ``http`` unless the URL
says ``https``), and ``project_id``/``token`` default to ``"dev"``/``"dev"`` when nothing else
set them. Keyword arguments still win: ``IronMQ(cloud=...)`` or ``IronMQ(host=...)`` in code
ignores the switch altogether, while ``port=``/``protocol=``/``path_prefix=`` adjust the
emulator address. ``Settings.emulator`` is ``True`` when the switch is in effect.

Unknown keyword arguments raise ``ConfigError`` (not ``TypeError``), like every other
configuration mistake, so one ``except IronPushError`` catches them.

Example::

    from ironpush.config import load_settings

    settings = load_settings(project_id="5a1b...", token="...")
    settings.base_url   # 'https://mq-aws-us-east-1-1.iron.io/3/projects/5a1b...'
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from .errors import ConfigError
from .protocol import DEFAULT_API_VERSION, DEFAULT_HOST
from .redact import MASK, mask, redact_url

__all__ = [
    "DEFAULTS",
    "EMULATOR_ENV",
    "ENV_VARS",
    "KEYS",
    "SECRET_KEYS_ENV",
    "Keystone",
    "Settings",
    "load_settings",
]

KEYS: tuple[str, ...] = (
    "host",
    "protocol",
    "port",
    "api_version",
    "project_id",
    "token",
    "keystone",
    "path_prefix",
    "cloud",
)
DEFAULTS: Mapping[str, object] = {
    "host": DEFAULT_HOST,
    "protocol": "https",
    "port": 443,
    "api_version": DEFAULT_API_VERSION,
    "path_prefix": "",
}
EMULATOR_ENV = "IRONMQ_EMULATOR_HOST"
SECRET_KEYS_ENV = "IRONPUSH_SECRET_KEYS"
ENV_PREFIXES: tuple[str, ...] = ("IRON_", "IRON_MQ_")
ENV_VARS: tuple[str, ...] = (
    *(prefix + key.upper() for prefix in ENV_PREFIXES for key in KEYS),
    EMULATOR_ENV,
    SECRET_KEYS_ENV,
)
"""Every environment variable :func:`load_settings` reads, in precedence order."""

PRODUCT_SECTION = "iron_mq"
HOME_FILE = ".iron.json"
LOCAL_FILE = "iron.json"

_KEYSTONE_KEYS = ("server", "tenant", "username", "password")
_CREDENTIAL_KEYS = ("project_id", "token", "keystone")
_DEFAULT_PORTS = {"https": 443, "http": 80}
_DEV_CREDENTIAL = "dev"
_FIX_HINT = (
    "Set IRON_PROJECT_ID and IRON_TOKEN (or put project_id and token in ~/.iron.json or "
    "./iron.json, or pass project_id= and token=), or run against a dev server with "
    f"{EMULATOR_ENV}=127.0.0.1:8080 (see `ironpush dev`)."
)


@dataclass(frozen=True, repr=False)
class Keystone:
    """OpenStack Keystone credentials, accepted instead of a token (iron_core's ``keystone``).

    The password never appears in the repr::

        >>> Keystone(server="https://ks.example/v2.0/", tenant="t", username="u", password="pw")
        Keystone(server='https://ks.example/v2.0/', tenant='t', username='u', password='***')
    """

    server: str
    tenant: str
    username: str
    password: str

    def __repr__(self) -> str:
        return (
            f"Keystone(server={self.server!r}, tenant={self.tenant!r}, "
            f"username={self.username!r}, password={MASK!r})"
        )


@dataclass(frozen=True, repr=False)
class Settings:
    """Resolved IronMQ settings; build them with :func:`load_settings`.

    Secrets (token, keystone password, secret keys) are masked in the repr::

        >>> s = load_settings(project_id="p", token="t", env={}, home="/nonexistent", cwd="/")
        >>> s.base_url
        'https://mq-aws-us-east-1-1.iron.io/3/projects/p'
    """

    project_id: str
    token: str | None
    host: str
    protocol: str
    port: int
    api_version: int
    path_prefix: str
    keystone: Keystone | None = None
    secret_keys: tuple[str, ...] = ()
    emulator: bool = False
    sources: tuple[str, ...] = ()

    @property
    def origin(self) -> str:
        """``scheme://host[:port]``; the port is omitted when it is the scheme's default."""
        host = f"[{self.host}]" if ":" in self.host else self.host  # IPv6 literal
        if _DEFAULT_PORTS.get(self.protocol) == self.port:
            return f"{self.protocol}://{host}"
        return f"{self.protocol}://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The project's API root, e.g. ``https://host/3/projects/{project_id}`` (no trailing /)."""
        project = quote(self.project_id, safe="")
        return f"{self.origin}{self.path_prefix}/{self.api_version}/projects/{project}"

    def __repr__(self) -> str:
        token = None if self.token is None else mask(self.token)
        keys = tuple(MASK for _ in self.secret_keys)
        return (
            f"Settings(project_id={self.project_id!r}, token={token!r}, host={self.host!r}, "
            f"protocol={self.protocol!r}, port={self.port!r}, api_version={self.api_version!r}, "
            f"path_prefix={self.path_prefix!r}, keystone={self.keystone!r}, "
            f"secret_keys={keys!r}, emulator={self.emulator!r})"
        )


def load_settings(
    *,
    config_file: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    home: str | os.PathLike[str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    require_credentials: bool = True,
    **overrides: Any,
) -> Settings:
    """Resolve settings from defaults, files, environment and ``overrides`` (see module docs).

    ``overrides`` are the keyword-argument layer: any of :data:`KEYS` plus ``secret_keys``
    (a sequence of str); ``None`` means "not given". ``env``, ``home`` and ``cwd`` replace
    ``os.environ``, the home directory and the current directory (for tests and tools).
    With ``require_credentials=False`` a missing project id or token gives ``project_id=""``
    and ``token=None`` instead of raising. Raises :class:`~ironpush.errors.ConfigError`.

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
    home_path = _home_dir(home)
    resolver = _Resolver()

    if home_path is None:
        resolver.sources.append(f"~/{HOME_FILE}: home directory unknown, skipped")
    else:
        resolver.apply_file(home_path / HOME_FILE, "home file", required=False)
    for prefix in ENV_PREFIXES:
        resolver.apply_env(environ, prefix)
    resolver.apply_file(cwd_path / LOCAL_FILE, "local file", required=False)
    if config_file is not None:
        path = _resolve_path(config_file, cwd=cwd_path, home=home_path)
        resolver.apply_file(path, "config_file", required=True)
    # Keyword arguments are converted before the emulator decision: an empty host="" is "not
    # given" and must not disable the switch.
    in_code = _convert_layer(
        {key: overrides[key] for key in KEYS if key in overrides},
        lambda key: f"keyword argument {key}=",
    )
    address_in_code = "host" in in_code or "cloud" in in_code
    emulator = resolver.apply_emulator(environ, address_in_code=address_in_code)
    given_keys = overrides.get("secret_keys")
    secret_keys = _secret_keys(environ, given_keys, resolver.sources)
    resolver.apply_overrides(in_code, secret_keys=given_keys is not None)
    return resolver.build(
        emulator=emulator, secret_keys=secret_keys, require_credentials=require_credentials
    )


class _Resolver:
    """Accumulates layers; remembers where each value came from for error messages."""

    def __init__(self) -> None:
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

    def _set(self, key: str, value: Any, where: str) -> None:
        self.values[key] = value
        self.origin[key] = where

    def apply_file(self, path: Path, label: str, *, required: bool) -> None:
        data = _read_json_object(path, label, required=required)
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
            layer = _convert_layer({k: raw[k] for k in KEYS if k in raw}, _file_key(path, dotted))
            self._apply(layer)
            given.extend(dotted + key for key in layer)
        self.sources.append(f"{path} ({label}): {_listing(given)}")

    def apply_env(self, environ: Mapping[str, str], prefix: str) -> None:
        raw = {}
        for key in KEYS:
            value = environ.get(prefix + key.upper())
            if value is not None and value.strip():
                raw[key] = value
        layer = _convert_layer(raw, lambda key: prefix + key.upper())
        self._apply(layer)
        self.sources.append(
            f"environment {prefix}*: {_listing([prefix + key.upper() for key in layer])}"
        )

    def apply_emulator(self, environ: Mapping[str, str], *, address_in_code: bool) -> bool:
        """Apply IRONMQ_EMULATOR_HOST unless code chose the address; whether it is in effect."""
        raw = environ.get(EMULATOR_ENV, "").strip()
        if not raw:
            return False
        if "://" in raw:
            address = _parse_url(raw, EMULATOR_ENV)
        else:  # host:port form: plain http, and the port is required
            address = _parse_url(f"http://{raw}", EMULATOR_ENV, bare=raw)
        if address_in_code:
            self.sources.append(
                f"environment {EMULATOR_ENV}: ignored (keyword arguments set the address)"
            )
            return False
        for key, value in address.items():
            self._set(key, value, EMULATOR_ENV)
        self.sources.append(f"environment {EMULATOR_ENV}: {_render_address(address)}")
        return True

    def apply_overrides(self, layer: Mapping[str, tuple[Any, str]], *, secret_keys: bool) -> None:
        self._apply(layer)
        given = [f"{key}=" for key in layer] + (["secret_keys="] if secret_keys else [])
        self.sources.append(f"keyword arguments: {_listing(given)}")

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
        if token is not None and not _header_safe(token):
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
        if protocol not in _DEFAULT_PORTS:
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
        checked = ", ".join(
            prefix + key.upper() for prefix in ENV_PREFIXES for key in _CREDENTIAL_KEYS
        )
        return (
            f"No IronMQ {' and no '.join(missing)} configured. "
            f"Looked in (later wins): {'; '.join(self.sources)} "
            f"(environment variables checked: {checked}). {_FIX_HINT}"
        )


# --- conversion of raw layer values -------------------------------------------------------------


def _convert_layer(
    raw: Mapping[str, Any], name: Callable[[str], str]
) -> dict[str, tuple[Any, str]]:
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
        return _parse_url(text, where)
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
        value, problem = _parse_json(value)
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


def _header_safe(value: str) -> bool:
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


def _parse_url(url: str, where: str, *, bare: str | None = None) -> dict[str, Any]:
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
    if scheme not in _DEFAULT_PORTS or not parts.hostname or parts.query or parts.fragment:
        raise ConfigError(problem)
    if bare is not None and explicit_port is None:
        raise ConfigError(f"{problem} (the port is missing)")
    if parts.username is not None or parts.password is not None:
        raise ConfigError(f"{where} must not contain user:password@ credentials")
    return {
        "protocol": scheme,
        "host": parts.hostname,
        "port": explicit_port if explicit_port is not None else _DEFAULT_PORTS[scheme],
        "path_prefix": _normalise_prefix(parts.path),
    }


def _render_address(address: Mapping[str, Any]) -> str:
    host = address["host"]
    host = f"[{host}]" if ":" in host else host
    return f"{address['protocol']}://{host}:{address['port']}{address['path_prefix']}"


def _secret_keys(environ: Mapping[str, str], given: Any, sources: list[str]) -> tuple[str, ...]:
    if given is not None:
        if isinstance(given, str | bytes) or not isinstance(given, Iterable):
            raise ConfigError("secret_keys= must be a sequence of strings (oldest first)")
        keys = list(given)
        for index, key in enumerate(keys):
            if not isinstance(key, str):  # never echo the value itself
                raise ConfigError(f"secret_keys[{index}] must be a str, not {type(key).__name__}")
        return tuple(key for key in keys if key.strip())
    raw = environ.get(SECRET_KEYS_ENV)
    if raw is None:
        return ()
    keys_env = tuple(part.strip() for part in raw.split(",") if part.strip())
    sources.append(f"environment {SECRET_KEYS_ENV}: {len(keys_env)} key(s)")
    return keys_env


# --- files --------------------------------------------------------------------------------------


def _home_dir(home: str | os.PathLike[str] | None) -> Path | None:
    if home is not None:
        return Path(home)
    try:
        return Path.home()
    except (RuntimeError, KeyError):  # no HOME and no passwd entry (some containers)
        return None


def _resolve_path(path: str | os.PathLike[str], *, cwd: Path, home: Path | None) -> Path:
    text = os.fspath(path)
    if home is not None and (text == "~" or text.startswith("~/")):
        return home / text[2:]
    return cwd / text  # an absolute path stays absolute


def _read_json_object(path: Path, label: str, *, required: bool) -> dict[str, Any] | None:
    """The file's JSON object, or None when an optional file is absent.

    Errors are raised outside the ``except`` blocks on purpose: a UnicodeDecodeError or
    JSONDecodeError carries the file's text, which must not travel along as ``__context__``.
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
        raise ConfigError(f"{label} {path} {problem}")
    data, problem = _parse_json(text)
    if problem is not None:
        raise ConfigError(f"{label} {path} is not valid JSON{problem}; fix or remove it")
    if not isinstance(data, dict):
        raise ConfigError(f"{label} {path} must contain a JSON object")
    return data


def _parse_json(text: str) -> tuple[Any, str | None]:
    """``(value, None)``, or ``(None, " (line L, column C: reason)")`` without the text itself."""
    try:
        return json.loads(text), None
    except json.JSONDecodeError as exc:
        return None, f" (line {exc.lineno}, column {exc.colno}: {exc.msg})"


def _file_key(path: Path, dotted: str) -> Callable[[str], str]:
    return lambda key: f"{path}: {dotted}{key}"


def _listing(items: list[str]) -> str:
    return ", ".join(items) if items else "nothing set"
