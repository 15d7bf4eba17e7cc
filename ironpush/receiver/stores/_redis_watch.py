"""What :class:`~ironpush.receiver.stores.RedisStore` watches in its server: the eviction
policy, evictions and restarts, read with ``INFO`` (``CONFIG GET`` is often disabled on
managed services; ``INFO`` is not).

A Redis that evicts keys can drop a claim or the record of a handled message: a redelivery of
that message then runs its handler again, silently. So:

- an evicting ``maxmemory-policy`` (anything but ``noeviction``) is **refused** (every call
  raises :class:`~ironpush._errors.StoreUnavailable` naming the fix; the router refuses to
  start) unless ``allow_eviction`` accepts the risk, which health then shows as a warning;
- ``evicted_keys`` growing after the store's first use makes health **fail** with the reason
  for :data:`EVICTION_MEMORY` seconds after the last eviction seen, and logs a line every time
  (records carry ``ironpush_every_time``: ``ironpush serve``'s repeat limiter lets them all
  through);
- a changed ``run_id`` (the server restarted) is logged: without persistence, Redis forgot every
  claim, handled message and queued ack.

The policy and counters are read at first use and then every ``interval`` seconds, from the
store's own calls (no background task)::

    watch = RedisWatch(allow_eviction=False, interval=10.0)
    watch.read(await client.pipeline(RedisWatch.COMMANDS))
    watch.guard()              # raises StoreUnavailable while the policy is refused
    watch.problems()           # [StoreProblem("refused", "redis maxmemory-policy is ...")]
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from ..._errors import StoreUnavailable
from ._base import StoreProblem

logger = logging.getLogger("ironpush.stores.redis")

#: How long (s) health keeps failing after the last eviction seen.
EVICTION_MEMORY = 600.0
#: Log records that a repeat limiter must never drop (each one is a fact an operator counts).
EVERY_TIME = {"ironpush_every_time": True}

_FIX = (
    "set maxmemory-policy noeviction (CONFIG SET maxmemory-policy noeviction, or your "
    "provider's parameter group / configuration), or give ironpush a Redis (or a database) of "
    "its own"
)


class RedisWatch:
    """The eviction policy, evictions and restarts of one Redis server, from ``INFO``."""

    #: The commands whose answers :meth:`read` takes, in this order.
    COMMANDS: tuple[tuple[str, str], ...] = (
        ("INFO", "server"),
        ("INFO", "memory"),
        ("INFO", "stats"),
    )

    def __init__(
        self,
        *,
        allow_eviction: bool,
        interval: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.allow_eviction = allow_eviction
        self.interval = interval
        self._clock = clock
        self._due = 0.0
        self.policy: str | None = None
        self.refusal: str | None = None
        self.unreadable: str | None = None
        self.evictions = 0  # keys evicted since the first reading
        self._evicted: int | None = None
        self._last_eviction: float | None = None
        self._run_id: str | None = None

    def due(self) -> bool:
        """Whether the next call should read ``INFO`` again (first use, or ``interval``)."""
        return self._clock() >= self._due

    def guard(self) -> None:
        """Raise :class:`StoreUnavailable` with the refusal while the policy evicts."""
        if self.refusal is not None:
            raise StoreUnavailable(self.refusal, store="redis")

    def read(self, replies: Sequence[Any]) -> None:
        """Take the answers to :attr:`COMMANDS` (an error answer: ``INFO`` is not allowed)."""
        self._due = self._clock() + self.interval
        texts = [r for r in replies if isinstance(r, str | bytes)]
        if len(texts) != len(self.COMMANDS):
            why = next((str(r) for r in replies if not isinstance(r, str | bytes)), "no answer")
            self._cannot_read(f"INFO answered: {why[:120]}")
            return
        server, memory, stats = (_fields(t) for t in texts)
        self._restarted(server.get("run_id"), server.get("uptime_in_seconds", "?"))
        policy = memory.get("maxmemory_policy")
        if policy is None:
            self._cannot_read("INFO memory has no maxmemory_policy")
            return
        self.unreadable = None
        self._policy(policy)
        evicted = stats.get("evicted_keys", "")
        if evicted.isdigit():
            self._counted(int(evicted))

    def problems(self) -> list[StoreProblem]:
        """What health should say (see the module docs)."""
        out: list[StoreProblem] = []
        if self.refusal is not None:
            out.append(StoreProblem("refused", self.refusal))
        elif self.policy is not None and self.policy != "noeviction":
            out.append(
                StoreProblem(
                    "degraded",
                    f"redis maxmemory-policy is {self.policy}, allowed by allow_eviction: an "
                    "evicted claim or handled-message record lets a redelivery run its handler "
                    "again",
                )
            )
        if self.unreadable is not None:
            out.append(StoreProblem("degraded", self.unreadable))
        last = self._last_eviction
        if last is not None and self._clock() - last < EVICTION_MEMORY:
            ago = self._clock() - last
            out.append(
                StoreProblem(
                    "failing",
                    f"redis evicted {self.evictions} keys since this store first used it (the "
                    f"last {ago:.0f}s ago, maxmemory-policy {self.policy}): ironpush's claims "
                    "and handled-message records may be among them, so redeliveries of those "
                    f"messages run their handlers again; {_FIX}",
                )
            )
        return out

    # --- the readings ---------------------------------------------------------------------

    def _cannot_read(self, why: str) -> None:
        text = (
            f"could not read the redis eviction policy ({why}): make sure maxmemory-policy is "
            "noeviction"
        )
        if text != self.unreadable:
            logger.warning("%s", text)
        self.unreadable = text

    def _policy(self, policy: str) -> None:
        changed = policy != self.policy
        self.policy = policy
        if policy == "noeviction":
            if self.refusal is not None:
                logger.warning("redis maxmemory-policy is noeviction now: the store is usable")
            self.refusal = None
        elif not self.allow_eviction:
            self.refusal = (
                f"redis maxmemory-policy is {policy}: Redis may evict ironpush's claims and "
                "handled-message records, and a redelivery of an evicted one runs its handler "
                f"again; {_FIX}; RedisStore(..., allow_eviction=True) or ?allow_eviction=1 "
                "accepts the risk"
            )
            if changed:
                logger.error("%s", self.refusal, extra=EVERY_TIME)
        elif changed:
            logger.warning(
                "redis maxmemory-policy is %s, allowed by allow_eviction: an evicted claim or "
                "handled-message record lets a redelivery run its handler again (health shows "
                "this warning)",
                policy,
                extra=EVERY_TIME,
            )

    def _counted(self, evicted: int) -> None:
        before, self._evicted = self._evicted, evicted
        if before is None or evicted < before:  # the first reading, or a restart reset it
            return
        burst = evicted - before
        if burst:
            self.evictions += burst
            self._last_eviction = self._clock()
            logger.error(
                "redis evicted %d keys since the last reading (%d since this store first used "
                "it; maxmemory-policy %s): ironpush's claims and handled-message records may be "
                "among them, so redeliveries of those messages run their handlers again; %s",
                burst,
                self.evictions,
                self.policy,
                _FIX,
                extra=EVERY_TIME,
            )

    def _restarted(self, run_id: str | None, uptime: str) -> None:
        before, self._run_id = self._run_id, run_id
        if before is not None and run_id is not None and run_id != before:
            logger.warning(
                "the redis server restarted (up for %ss): without persistence it forgot every "
                "claim, handled-message record and queued ack; a redelivery of a message handled "
                "before the restart runs its handler again",
                uptime,
                extra=EVERY_TIME,
            )


def _fields(text: str | bytes) -> dict[str, str]:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    out: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if sep and not name.startswith("#"):
            out[name.strip()] = value.strip()
    return out
