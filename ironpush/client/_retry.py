"""Retry policy and backoff for the client (and the receiver's ack outbox).

One backoff rule for everything ironpush retries: exponential growth from ``backoff`` up to
``max_backoff``, with *equal jitter* (a delay drawn uniformly from the upper half of the current
ceiling), so many clients backing off at once do not retry in lockstep yet never retry at once.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from .._protocol import Request


def backoff_delay(attempt: int, *, base: float, cap: float) -> float:
    """Seconds to wait before retry ``attempt`` (1-based): equal jitter over ``base * 2**(n-1)``.

    ::

        backoff_delay(3, base=0.5, cap=8.0)   # somewhere in [1.0, 2.0]
    """
    ceiling = min(cap, base * (2 ** (attempt - 1)))
    return random.uniform(ceiling / 2, ceiling)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How the client retries idempotent calls on 503/504 and connection errors.

    Delays grow exponentially from ``backoff`` up to ``max_backoff`` with equal jitter, so many
    clients backing off at once do not retry in lockstep::

        IronMQ(retry=RetryPolicy(attempts=3, backoff=0.2))
    """

    attempts: int = 5
    backoff: float = 0.5
    max_backoff: float = 8.0
    statuses: frozenset[int] = frozenset({503, 504})

    def delay(self, attempt: int) -> float:
        """Seconds to sleep before retry number ``attempt`` (1-based)."""
        return backoff_delay(attempt, base=self.backoff, cap=self.max_backoff)

    def should_retry(
        self, request: Request, attempt: int, status_code: int | None, *, unsent: bool = False
    ) -> bool:
        """Whether the ``attempt``-th try of ``request`` (1-based) may be repeated.

        ``status_code`` is ``None`` for a transport error; ``unsent`` says the request never left
        (the connection could not be made), which makes even a non-idempotent call safe to retry.
        """
        if attempt >= self.attempts:
            return False
        if unsent:
            return True
        if not request.idempotent:
            return False
        return status_code is None or status_code in self.statuses


NO_RETRY = RetryPolicy(attempts=1)
