"""The resolved settings (:class:`Settings`, :class:`Keystone`) and the names of every setting
and environment variable; :func:`ironpush._config.load_settings` builds them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from urllib.parse import quote

from .._protocol import DEFAULT_API_VERSION, DEFAULT_HOST
from .._redact import hidden, mask, masked_repr

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


DEFAULT_PORTS = {"https": 443, "http": 80}


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
        return masked_repr(self, password=hidden)


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
    sources: tuple[str, ...] = field(default=(), repr=False)

    # Cached (the settings are frozen): every request builds its URL from them.
    @cached_property
    def origin(self) -> str:
        """``scheme://host[:port]``; the port is omitted when it is the scheme's default."""
        host = f"[{self.host}]" if ":" in self.host else self.host  # IPv6 literal
        if DEFAULT_PORTS.get(self.protocol) == self.port:
            return f"{self.protocol}://{host}"
        return f"{self.protocol}://{host}:{self.port}"

    @cached_property
    def base_url(self) -> str:
        """The project's API root, e.g. ``https://host/3/projects/{project_id}`` (no trailing /)."""
        project = quote(self.project_id, safe="")
        return f"{self.origin}{self.path_prefix}/{self.api_version}/projects/{project}"

    def __repr__(self) -> str:
        return masked_repr(self, token=mask, secret_keys=lambda keys: tuple(map(hidden, keys)))
