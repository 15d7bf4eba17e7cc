"""Where a receiver remembers things: dedupe claims, newest reservations and the ack outbox.

One contract (:class:`Store`), several engines, chosen by object or by a spec string::

    from ironpush.receiver.stores import SQLiteStore, open_store

    router = PushRouter(store=SQLiteStore("/data/ironpush.db"))
    router = PushRouter(store="redis://redis:6379/0")          # same as open_store(...)
    store = open_store("postgresql://app@db/app?schema=push")   # schema/prefix in the query

=========================================  ============================================
spec                                       store
=========================================  ============================================
``"memory"``                               :class:`MemoryStore` (one process)
a path, ``"sqlite:///rel.db"``,            :class:`SQLiteStore` (one host, several
``"sqlite:////abs/path.db"``               processes)
``"redis://…"``, ``"rediss://…"``          :class:`RedisStore` (``?prefix=``,
                                           ``?allow_eviction=1``), extra ``ironpush[redis]``
``"postgresql://…"``, ``"postgres://…"``   :class:`PostgresStore` (``?schema=``), extra
                                           ``ironpush[postgres]``
=========================================  ============================================

``ironpush serve`` and the Docker image read the spec from ``IRONPUSH_STORE``
(:func:`store_from_env`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ..._errors import ConfigError
from ..._redact import redact_url
from ._base import Claim, OutboxItem, Owner, Store, StoreProblem, this_owner
from ._memory import MemoryStore
from ._null import NullStore
from ._sqlite import SQLiteStore

if TYPE_CHECKING:
    from ._postgres import PostgresStore
    from ._redis import RedisStore

__all__ = [
    "STORE_ENV",
    "Claim",
    "MemoryStore",
    "NullStore",
    "OutboxItem",
    "Owner",
    "PostgresStore",
    "RedisStore",
    "SQLiteStore",
    "Store",
    "StoreProblem",
    "open_store",
    "store_from_env",
    "this_owner",
]

STORE_ENV = "IRONPUSH_STORE"

_REDIS_SCHEMES = ("redis", "rediss", "unix")
_POSTGRES_SCHEMES = ("postgresql", "postgres")
_FLAGS = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}


def __getattr__(name: str) -> Any:
    # The networked stores import their client library only when asked for, so a missing
    # extra fails with its pip hint at that moment, not at ``import ironpush``.
    if name == "RedisStore":
        from ._redis import RedisStore

        return RedisStore
    if name == "PostgresStore":
        from ._postgres import PostgresStore

        return PostgresStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def open_store(spec: Store | str | os.PathLike[str]) -> Store:
    """The store a spec names (see the module docs); a :class:`Store` is returned as is.

    Raises :class:`~ironpush._errors.ConfigError` (one line, no credentials) for a spec it
    cannot use, and ``ImportError`` with the pip command when an extra is missing::

        open_store("memory")                      # MemoryStore()
        open_store("ironpush.db")                 # SQLiteStore("ironpush.db")
        open_store("redis://127.0.0.1:6379/0?prefix=orders")
        open_store("redis://cache:6379/0?allow_eviction=1")   # accept an evicting Redis
    """
    if isinstance(spec, os.PathLike):
        return SQLiteStore(spec)
    if not isinstance(spec, str):
        if isinstance(spec, Store):
            return spec
        raise ConfigError(f"not a store or a store spec: {type(spec).__name__}")
    text = spec.strip()
    if not text:
        raise ConfigError(
            "empty store spec: use 'memory', a file path, redis://… or postgresql://…"
        )
    if text == "memory":
        return MemoryStore()
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if not scheme:
        return SQLiteStore(text)
    if scheme == "sqlite":
        path = text[len("sqlite:///") :] if text.startswith("sqlite:///") else ""
        if not path:
            raise ConfigError(
                "sqlite store spec must look like sqlite:///relative.db or sqlite:////abs.db"
            )
        return SQLiteStore(path)
    if scheme in _REDIS_SCHEMES:
        from ._redis import RedisStore

        url, options = _take_options(text, ("prefix", "allow_eviction"))
        named: dict[str, Any] = {"prefix": options["prefix"]} if "prefix" in options else {}
        return RedisStore(url, allow_eviction=_flag(options, "allow_eviction"), **named)
    if scheme in _POSTGRES_SCHEMES:
        from ._postgres import PostgresStore

        dsn, options = _take_options(text, ("schema",))
        schema = options.get("schema")
        return PostgresStore(dsn, schema=schema) if schema else PostgresStore(dsn)
    raise ConfigError(
        f"unknown store {redact_url(text)!r}: use 'memory', a file path, sqlite:///…, "
        "redis://… or postgresql://…"
    )


def store_from_env(
    default: Store | str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> Store | None:
    """The store named by ``IRONPUSH_STORE`` (``default`` when unset or empty; None if no
    default)::

        router = PushRouter(store=store_from_env("memory"))
    """
    env = os.environ if environ is None else environ
    spec = env.get(STORE_ENV, "").strip()
    if spec:
        return open_store(spec)
    return None if default is None else open_store(default)


def _flag(options: Mapping[str, str], name: str) -> bool:
    text = options.get(name, "0").lower()
    if text not in _FLAGS:
        raise ConfigError(f"store option {name} must be 1 or 0 (true/false), not {text!r}")
    return _FLAGS[text]


def _take_options(url: str, names: tuple[str, ...]) -> tuple[str, dict[str, str]]:
    """Split our own query options (``prefix``, ``schema``, ``allow_eviction``) from the
    engine's URL."""
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    options = {k: v for k, v in pairs if k in names and v}
    rest = urlencode([(k, v) for k, v in pairs if k not in names])
    return urlunsplit(parts._replace(query=rest)), options
