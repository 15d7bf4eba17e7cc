"""The router's options, validated once and shared (read-only) by its parts.

``PushRouter(...)`` builds one :class:`RouterSettings` from its keyword arguments; the
pipeline, the internal endpoints and the background machinery all read it::

    router = PushRouter(secret_keys=keys, claim_lease=10)
    router.settings.claim_lease   # 10.0
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .._signing import DEFAULT_SECRET_HEADER, DEFAULT_SECRET_PARAM, Keys, normalize_keys
from ._outbox import OutboxSettings
from .stores import MemoryStore, NullStore, Store, open_store, store_from_env

if TYPE_CHECKING:
    from os import PathLike

__all__ = ["RouterSettings", "resolve_keys", "resolve_store"]

logger = logging.getLogger("ironpush.receiver")


@dataclass(frozen=True, slots=True)
class RouterSettings:
    """Every option of :class:`~ironpush.PushRouter` (see its docstring for each meaning)."""

    keys: tuple[str | bytes, ...] = field(repr=False)
    verify: bool = True
    body_limit: int = 256 * 1024
    max_deferred: int = 32
    max_unsent_acks: int = 10_000
    dead_letter_queue: str | None = None
    secret_header: str = DEFAULT_SECRET_HEADER
    secret_param: str = DEFAULT_SECRET_PARAM
    claim_lease: float = 10.0
    external_lease: float = 900.0
    dedupe_ttl: float = 86_400.0
    shutdown_grace: float = 10.0
    flush_timeout: float = 5.0
    ack_wait: float = 5.0
    ack_token_max_age: float | None = None
    outbox: OutboxSettings = field(default_factory=OutboxSettings)
    unhealthy_refusals: float = 0.9
    health_timeout: float = 0.5

    def __post_init__(self) -> None:
        if self.body_limit < 1 or self.max_deferred < 1 or self.claim_lease <= 0:
            raise ValueError("body_limit, max_deferred and claim_lease must be positive")
        if self.max_unsent_acks < 1:
            raise ValueError("max_unsent_acks must be positive")
        if not 0 <= self.unhealthy_refusals <= 1:
            raise ValueError("unhealthy_refusals must be a fraction between 0 and 1")
        if self.health_timeout <= 0:
            raise ValueError("health_timeout must be positive")


def resolve_keys(secret_keys: Keys | None, *, verify: bool) -> tuple[str | bytes, ...]:
    """The signing keys: given, or from configuration (``IRONPUSH_SECRET_KEYS``); none only
    with ``verify=False`` (logged as a warning)."""
    if secret_keys is None:
        from .._config import load_settings  # reads iron.json/env: only when keys are not given

        secret_keys = load_settings(require_credentials=False).secret_keys or None
    if secret_keys is None and not verify:
        logger.warning(
            "PushRouter(verify=False): pushes are NOT verified; anyone who can reach this "
            "URL can post messages. Use this for local experiments only."
        )
        return ()
    return normalize_keys(secret_keys)


def resolve_store(spec: Store | str | PathLike[str] | None, *, dedupe: bool) -> Store:
    """The store for ``PushRouter(store=...)``: a Store as is; a path or URL opened by
    :func:`~ironpush.receiver.stores.open_store`; None is the store ``IRONPUSH_STORE`` names
    (``ironpush serve --store``), else a new :class:`MemoryStore`. Wrapped in
    a :class:`NullStore` (which keeps the outbox) when ``dedupe`` is off."""
    store = (store_from_env() or MemoryStore()) if spec is None else open_store(spec)
    return store if dedupe else NullStore(outbox=store)
