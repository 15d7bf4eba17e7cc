"""The outcomes of the dev server's events, in one place for the server and ``ironpush tail``.

The dev server's event stream (:mod:`ironpush.devserver._events`) filters on these, and
``ironpush tail --outcome`` offers exactly these choices. This module sits outside
:mod:`ironpush.devserver` on purpose: the CLI reads it without loading the server::

    from ironpush._event_outcomes import OUTCOMES

    "retrying" in OUTCOMES   # True
"""

from __future__ import annotations

OUTCOMES = (
    "delivered",
    "deferred",
    "retrying",
    "failed",
    "acked",
    "refused",
    "expired",
    "error-queue",
    "replayed",
)
