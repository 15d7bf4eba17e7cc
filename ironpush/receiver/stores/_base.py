"""The store contract: where a receiver remembers claims, newest reservations and the outbox.

Every engine (memory, SQLite, Redis, PostgreSQL, and the null store used when deduplication is
off) implements :class:`Store`, and one contract test suite runs against all of them.

**Claims** are keyed by ``(message id, subscriber name)``. A claim is *running* (a handler is
executing), *deferred* (a ``Defer`` job runs), *external* (an external worker or a job engine
holds the ack token), *idle* (the last attempt failed: the next push runs the handler again) or
*done* (handled; remembered for ``ttl`` seconds so a redelivery answers 200 without the handler).
An active claim carries a lease that its owner renews while the work runs, and the identity of
that owner (:class:`Owner`): a running or deferred claim whose owner is a dead process on this
host is taken over at once; an *external* claim (the work left the process) and a remote owner's
claim only when the lease runs out.

Every active claim also remembers the **newest delivery** seen for the message: a redelivery
that arrives while the work runs replaces it, and the final ack uses it (a v3 reservation
lasts only ``retries_delay`` seconds after a 202).

The **outbox** holds acknowledgements (and dead-letter posts) until IronMQ confirms them; items
are taken with a lease so that exactly one sender (of any process or host) sends each.

All methods but :meth:`Store.problems` are coroutines. A store that cannot reach its engine
raises :class:`~ironpush._errors.StoreUnavailable` (the router answers 503, health says so) and
heals by itself when the engine is back: it never keeps a broken connection. What a store knows
is wrong beyond "unreachable" (a Redis whose eviction policy can drop its keys, evictions seen)
it says in :meth:`Store.problems`, as :class:`StoreProblem` values health reports.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, Protocol, runtime_checkable

from ..._frozen import slot_init
from ..._protocol import Delivery

Key = tuple[str, str]  # (message id, subscriber name)
ActiveState = Literal["running", "deferred", "external"]
Outcome = Literal["acked", "dropped"]
Level = Literal["refused", "failing", "degraded"]
_ACTIVE = ("running", "deferred", "external")


@dataclass(frozen=True, slots=True)
class Owner:
    """Who holds a claim: the host, the process id and a per-process start id.

    The start id tells a live process from a new one that reuses a dead one's pid.
    ``str(owner)`` is the compact form stores keep (``host:pid:start``).
    """

    host: str
    pid: int
    start: str

    def __str__(self) -> str:
        return f"{self.host}:{self.pid}:{self.start}"

    @classmethod
    def parse(cls, text: str) -> Owner | None:
        """The inverse of ``str()``; None for anything else (an old row, a foreign writer)."""
        host, _, rest = text.rpartition(":")
        host, _, pid = host.rpartition(":")
        if not host or not pid.isdigit():
            return None
        return cls(host, int(pid), rest)

    def is_dead_local(self) -> bool:
        """True when this owner ran on this host and that process is gone (or was replaced)."""
        me = this_owner()
        if self.host != me.host:
            return False
        if self.pid == me.pid:
            return self.start != me.start
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False


_THIS_OWNER = Owner(socket.gethostname(), os.getpid(), uuid.uuid4().hex[:8])


def this_owner() -> Owner:
    """The :class:`Owner` of claims made by this process (renewed after a fork)."""
    global _THIS_OWNER
    if _THIS_OWNER.pid != os.getpid():
        _THIS_OWNER = Owner(socket.gethostname(), os.getpid(), uuid.uuid4().hex[:8])
    return _THIS_OWNER


@slot_init
@dataclass(frozen=True, slots=True)
class Claim:
    """The answer to :meth:`Store.claim`.

    - ``status == "new"``: the caller owns the message now (``claim_id``) and runs the handler;
      ``attempt`` counts the handler runs this store has seen for the message (1, 2, ...).
    - ``"done"``: already handled (``outcome`` is ``"acked"`` or ``"dropped"``): answer 200.
    - ``"busy"``: another call or job holds it (``state``); the push's delivery was recorded
      as the newest, so the holder acknowledges with the newest reservation: answer 202.
    """

    status: Literal["new", "done", "busy"]
    claim_id: str | None = None
    attempt: int = 1
    outcome: str | None = None
    state: str | None = None


@slot_init
@dataclass(frozen=True, slots=True)
class OutboxItem:
    """One pending IronMQ call: an ack of ``delivery``, or a post of ``body`` to ``queue``."""

    kind: Literal["ack", "post"]
    queue: str
    delivery: Delivery | None = None
    body: str | None = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    attempts: int = 0
    created_at: float = field(default_factory=time.time)
    next_at: float = 0.0


class StoreProblem(NamedTuple):
    """What a store knows is wrong, in one line that names the fix: a ``(level, reason)``
    pair, as health reads them.

    - ``refused``: a configuration that breaks the store's promise (a Redis whose
      ``maxmemory-policy`` evicts): every call raises
      :class:`~ironpush._errors.StoreUnavailable` with ``reason``, the router refuses to start,
      health fails;
    - ``failing``: damage seen at run time (Redis evicted keys): health fails (503) with
      ``reason``;
    - ``degraded``: a risk accepted by an explicit option (``allow_eviction=True``), or work
      waiting for the store: health stays 200 and shows ``reason``.

    ::

        StoreProblem("degraded", "redis maxmemory-policy is allkeys-lru, allowed by ...")
    """

    level: Level
    reason: str


@runtime_checkable
class Store(Protocol):
    """Claims, newest deliveries and the ack outbox, shared by every process that uses it.

    ``kind`` names the engine (``"memory"``, ``"sqlite"``, ``"redis"``, ``"postgres"``,
    ``"null"``); ``shared`` is True when several processes or hosts may use one store (memory:
    False); ``dedupes`` is False only for the null store (deduplication off).
    """

    kind: str
    shared: bool
    dedupes: bool

    # --- claims -------------------------------------------------------------------------

    async def claim(self, key: Key, delivery: Delivery, *, lease: float, ttl: float) -> Claim:
        """Claim ``key`` for a push of ``delivery``; see :class:`Claim` for the answers.

        Atomic across processes: of N concurrent claims of a free key exactly one is "new".
        A key whose active claim's lease ran out, or whose running/deferred claim's owner is a
        dead local process, is taken over ("new", attempt + 1). A busy key records ``delivery``
        as the newest.
        """
        ...

    async def hold(self, key: Key, claim_id: str, *, state: ActiveState, lease: float) -> bool:
        """Switch an owned claim to ``state`` with a new lease; False if the claim was lost."""
        ...

    async def renew(self, claim_ids: Collection[str], *, lease: float) -> None:
        """Extend the lease of these active claims (the owner's heartbeat, every lease/3)."""
        ...

    async def complete(
        self, key: Key, *, outcome: Outcome, ttl: float, delivery: Delivery
    ) -> Delivery:
        """Mark ``key`` handled for ``ttl`` seconds; return the newest delivery recorded for it
        (``delivery`` when none is newer): the one to acknowledge."""
        ...

    async def complete_once(
        self, key: Key, *, outcome: Outcome, ttl: float, delivery: Delivery
    ) -> Delivery | None:
        """:meth:`complete`, unless ``key`` is already handled: then nothing changes and the
        answer is None (an ack token used twice acknowledges once)."""
        ...

    async def release(self, key: Key, claim_id: str | None) -> bool:
        """Give up an active claim (owned by ``claim_id``, or any when None) after a failure,
        so that the next push runs the handler again; False when nothing was held."""
        ...

    async def newest(self, key: Key) -> Delivery | None:
        """The newest delivery recorded for an active claim on ``key`` (None when none)."""
        ...

    # --- the outbox -----------------------------------------------------------------------

    async def add(self, item: OutboxItem) -> None:
        """Keep ``item`` until :meth:`finish`; durable stores make it survive a crash."""
        ...

    async def take(self, *, limit: int, lease: float) -> list[OutboxItem]:
        """Up to ``limit`` due items nobody has leased, leased now for ``lease`` seconds."""
        ...

    async def finish(self, item_ids: Collection[str]) -> None:
        """Remove items that are done (confirmed, late, or given up)."""
        ...

    async def retry(self, item_id: str, *, attempts: int, next_at: float) -> None:
        """Put a failed item back, due again at ``next_at`` (epoch seconds)."""
        ...

    async def depth(self) -> int:
        """How many items the outbox holds (for metrics and health)."""
        ...

    async def next_due(self) -> float | None:
        """When the earliest item can be taken (due and unleased), or None when empty."""
        ...

    # --- life -----------------------------------------------------------------------------

    async def check(self) -> None:
        """Probe the engine in bounded time; raise :class:`~ironpush._errors.StoreUnavailable`
        when it is down (``/_health`` calls this, and the router once at start)."""
        ...

    def problems(self) -> list[StoreProblem]:
        """What is wrong beyond reachability, from what the store saw in its own calls and
        checks (no I/O: cheap enough for every health request); empty when all is well."""
        ...

    async def close(self) -> None:
        """Release connections and threads; the store may not be used afterwards."""
        ...


def sync_twin(store: object, name: str) -> Any:
    """The store's synchronous twin of its coroutine ``name`` (``claim_now`` of ``claim``): a
    store whose operations never wait, such as the memory store, offers some (no coroutine
    per call); None unless the coroutine is the one written beside the twin, so that a
    subclass that overrides ``claim`` (to add a fault, a delay, a record of calls) is called
    through its override::

        claim_now = sync_twin(MemoryStore(), "claim")   # its claim_now, bound
    """
    twin = f"{name}_now"
    owner = next((c for c in type(store).__mro__ if name in c.__dict__), None)
    if owner is None or twin not in owner.__dict__:
        return None
    # Neither overridden on the instance: each must be its class's own function, bound to the
    # store. (Not read from the instance's __dict__: reading it makes the instance keep a
    # dict, and every attribute read of the store slower from then on.)
    for attribute in (name, twin):
        bound = getattr(store, attribute, None)
        if getattr(bound, "__func__", None) is not owner.__dict__[attribute] or (
            getattr(bound, "__self__", None) is not store
        ):
            return None
    return getattr(store, twin)
