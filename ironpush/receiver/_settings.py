"""The router's options: grouped value objects, each default written once, in its group.

``PushRouter(...)`` takes the groups (and a few flat shortcuts, :class:`Shortcuts`) and builds
one :class:`RouterSettings` that its pipeline, internal endpoints and background machinery
read. Every group is a frozen dataclass with a readable ``repr``; its fields carry their default,
help and bounds (:func:`~ironpush._defaults.setting`), so ``Leases()`` shows the defaults::

    Leases()          # Leases(claim=10.0, external=900.0, dedupe_ttl=86400.0)
    PushRouter(leases=Leases(claim=20), limits=Limits(max_deferred=100))
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, TypedDict

from .._defaults import Checked, Shortcut, setting
from .._signing import DEFAULT_ACK_TOKEN_MAX_AGE, Keys, normalize_keys
from ._outbox import OutboxSettings
from .stores import MemoryStore, NullStore, Store, open_store, store_from_env

if TYPE_CHECKING:
    from os import PathLike

logger = logging.getLogger("ironpush.receiver")

#: How long a handled message is remembered, by default (also the ack helpers' default).
DEFAULT_DEDUPE_TTL = 86_400.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Leases(Checked):
    """How long the router's claims and memories last, in seconds.

    A claim says "this process runs the handler (or the job) of this message": while it holds,
    a redelivery gets 202 instead of running the handler again::

        PushRouter(leases=Leases(claim=20))   # a crashed process's work runs again after 20 s
    """

    claim: float = setting(
        10.0,
        "A claim outlives a crashed owner by this; renewed every claim/3 while the work runs. "
        "Keep it under half of each route's (retries + 1) x retries_delay.",
        gt=0,
    )
    external: float = setting(
        900.0, "How long Defer() work handed to an external worker blocks re-running it.", gt=0
    )
    dedupe_ttl: float = setting(
        DEFAULT_DEDUPE_TTL, "How long a handled message is remembered (its redelivery: 200).", gt=0
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits(Checked):
    """What the router takes on before it refuses: bodies (413) and deferred work (503).

    Past a tenth of ``max_unsent_acks`` a ``Defer(job)`` push waits (up to 1 s) for the outbox
    to catch up, so IronMQ's pusher slows to the ack rate::

        PushRouter(limits=Limits(max_deferred=100))
    """

    body_limit: int = setting(256 * 1024, "Largest push body in bytes; larger gets 413.", ge=1)
    max_deferred: int = setting(
        32, "Deferred jobs running at once; beyond it new deferred work gets 503.", ge=1
    )
    max_unsent_acks: int = setting(
        10_000,
        "Acks of finished jobs IronMQ has not confirmed (about 1 KB each); beyond it new "
        "deferred work gets 503.",
        ge=1,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Shutdown(Checked):
    """The graceful stop: new deferred work gets 503, running jobs get ``grace`` seconds, the
    outbox ``flush_timeout`` seconds; the rest is left to IronMQ's redelivery::

        PushRouter(shutdown=Shutdown(grace=30))
    """

    grace: float = setting(10.0, "Seconds running deferred jobs get to finish.", ge=0)
    flush_timeout: float = setting(5.0, "Seconds the outbox gets to send its acks.", ge=0)


@dataclass(frozen=True, slots=True, kw_only=True)
class Health(Checked):
    """How ``/_health/ready`` (and ``/_health``) judges: the store's probe and its speed, and
    the share of recent pushes refused with 503 (``/_health/live`` judges only the process)::

    PushRouter(health=Health(slow=0.5))
    """

    timeout: float | None = setting(
        None,
        "Seconds the store's probe may take before readiness fails (503); None: the store's "
        "own timeout + 0.5 s (2 s for a store without one).",
        gt=0,
    )
    slow: float = setting(
        0.1, "A store probe slower than this makes readiness 'degraded' (still 200).", gt=0
    )
    unhealthy_refusals: float = setting(
        0.9, "Fraction of the last 30 s of pushes refused with 503 that fails health.", ge=0, le=1
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class AckTokens(Checked):
    """Ack tokens (``msg.ack_token``) and the ``POST /_ack`` endpoint that takes them::

    PushRouter(ack_tokens=AckTokens(max_age=3600))
    """

    max_age: float = setting(DEFAULT_ACK_TOKEN_MAX_AGE, "Seconds a token stays valid.", gt=0)
    wait: float = setting(
        5.0, "Seconds POST /_ack waits for IronMQ's answer before saying 'queued'.", gt=0
    )


DEFAULT_LEASES = Leases()
DEFAULT_LIMITS = Limits()
DEFAULT_SHUTDOWN = Shutdown()
DEFAULT_HEALTH = Health()
DEFAULT_ACK_TOKENS = AckTokens()
DEFAULT_OUTBOX = OutboxSettings()


class Shortcuts(TypedDict, total=False):
    """The flat keywords ``PushRouter`` also takes: each sets one field of its group."""

    claim_lease: Annotated[float, Shortcut("leases", "claim")]
    max_deferred: Annotated[int, Shortcut("limits", "max_deferred")]
    max_unsent_acks: Annotated[int, Shortcut("limits", "max_unsent_acks")]
    body_limit: Annotated[int, Shortcut("limits", "body_limit")]
    shutdown_grace: Annotated[float, Shortcut("shutdown", "grace")]


@dataclass(frozen=True, slots=True, kw_only=True)
class RouterSettings:
    """Everything one router's parts read (the defaults are in the groups and ``PushRouter``)."""

    keys: tuple[str | bytes, ...] = field(repr=False)
    verify: bool
    dead_letter_queue: str | None
    secret_header: str
    secret_param: str
    leases: Leases
    limits: Limits
    shutdown: Shutdown
    health: Health
    ack_tokens: AckTokens
    outbox: OutboxSettings
    #: OpenTelemetry spans per push, job and ack (with ``ironpush[otel]`` and an SDK).
    tracing: bool = True
    #: Latency histograms (``/_metrics``, and OpenTelemetry metrics with an SDK).
    metrics: bool = True


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
