"""Signing keys for push secrets and ack tokens (``secret_keys=`` / ``IRONPUSH_SECRET_KEYS``).

Every message about making a key says the same thing, :data:`KEYGEN_HINT`; a short key is
warned about once per process, however many times the settings are resolved (``ironpush
subscribe --app`` resolves them for the router and again for the client).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from .._errors import ConfigError
from .settings import SECRET_KEYS_ENV

logger = logging.getLogger("ironpush._config")

#: Signing keys shorter than this (in bytes) are accepted with a warning: HMAC-SHA1 keys this
#: short can be guessed offline from one observed push secret.
MIN_KEY_BYTES = 32
#: How to make a key, in every message that asks for one.
KEYGEN_HINT = "make one with `ironpush keygen`"

# Fingerprints (never the keys) of the short keys already warned about, with their origin.
_warned: set[tuple[str, bytes]] = set()
_warned_lock = threading.Lock()


def resolve_secret_keys(
    environ: Mapping[str, str], given: Any, sources: list[str]
) -> tuple[str, ...]:
    if given is not None:
        if isinstance(given, str | bytes) or not isinstance(given, Iterable):
            raise ConfigError("secret_keys= must be a sequence of strings (oldest first)")
        keys = list(given)
        for index, key in enumerate(keys):
            if not isinstance(key, str):  # never echo the value itself
                raise ConfigError(f"secret_keys[{index}] must be a str, not {type(key).__name__}")
        return warn_short_keys(tuple(key for key in keys if key.strip()), "secret_keys")
    raw = environ.get(SECRET_KEYS_ENV)
    if raw is None:
        return ()
    keys_env = tuple(part.strip() for part in raw.split(",") if part.strip())
    sources.append(f"environment {SECRET_KEYS_ENV}: {len(keys_env)} key(s)")
    return warn_short_keys(keys_env, SECRET_KEYS_ENV)


def warn_short_keys(keys: tuple[str, ...], where: str) -> tuple[str, ...]:
    """Log a warning for each key under :data:`MIN_KEY_BYTES` (never the key itself), once per
    process for a given key and origin; returns ``keys``. ``where`` names their origin::

        warn_short_keys(("short",), "secret_keys")   # "secret_keys: key #1 is 5 bytes; ..."
    """
    for index, key in enumerate(keys):
        size = len(key.encode())
        if size < MIN_KEY_BYTES and _first_warning(where, key):
            logger.warning(
                "%s: key #%d is %d bytes; use at least %d (%s)",
                where,
                index + 1,
                size,
                MIN_KEY_BYTES,
                KEYGEN_HINT,
            )
    return keys


def _first_warning(where: str, key: str) -> bool:
    fingerprint = hashlib.sha256(key.encode()).digest()
    with _warned_lock:
        if (where, fingerprint) in _warned:
            return False
        _warned.add((where, fingerprint))
        return True
