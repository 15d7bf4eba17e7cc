"""Helpers of the pusher tests: a push queue with a short ``retries_delay``, gaps between hits."""

from __future__ import annotations

import itertools
from typing import Any

from subscriber_servers import Hit

from ironpush.client import IronMQ

RETRY = 0.15  # retries_delay used by the timing tests (the hosted minimum is 3 s)


def push_queue(mq: IronMQ, name: str, *subscribers: Any, **options: Any) -> str:
    options.setdefault("retries_delay", RETRY)
    mq.create_queue(name, subscribers=list(subscribers), **options)
    return name


def gaps(hits: list[Hit]) -> list[float]:
    """Seconds between consecutive pushes."""
    return [b.at - a.at for a, b in itertools.pairwise(hits)]
