"""What a listener reports: one event per push, ack, retry, failure, and its start and stop.

Each :class:`Event` is a line of text (``ironpush dev``'s style: queue, message id, subscriber,
try, the local answer and its latency, what follows) or, with ``--json``, one JSON object
``{"event", "at", ..., "text"}`` per line::

    push orders 629521… → billing try 1/4: 200 in 3.2 ms → deleted
    push orders 629522… → billing try 1/4: 202 in 2.9 ms → reserved until the service acks (60s)
    ack  orders 629522… ← billing via Iron-Subscriber-Message-Url, reservation 059fc89f…: acked

(the lines show the whole message id).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

#: The ``event`` values, in the order a run may show them (``touch``: ``--json`` only).
KINDS = ("ready", "push", "ack", "touch", "expired", "lost", "failed", "warning", "stopped")


@dataclass(frozen=True, slots=True)
class Event:
    """One thing a listener did or saw; ``fields`` are the JSON keys besides ``event``,
    ``at`` and ``text`` (no secrets: URLs and headers are masked before they get here); each
    kind always has the same keys."""

    kind: str
    text: str
    fields: dict[str, Any] = field(default_factory=dict)
    at: float = field(default_factory=time.time)
    #: Shown with ``--json`` only (a relay reservation kept alive: routine, every few seconds).
    quiet: bool = False

    def as_json(self) -> dict[str, Any]:
        when = datetime.fromtimestamp(self.at, UTC).isoformat(timespec="milliseconds")
        return {
            "event": self.kind,
            "at": when.replace("+00:00", "Z"),
            **self.fields,
            "text": self.text,
        }

    def line(self) -> str:
        clock = datetime.fromtimestamp(self.at).strftime("%H:%M:%S.%f")[:-3]
        return f"{clock} {self.text}"


#: Where events go (the CLI prints them).
Emit = Callable[[Event], None]


def short(reservation: str | None) -> str:
    """A reservation id as lines show it: its first 8 characters (they are credentials)."""
    if not reservation:
        return "-"
    return reservation[:8] + "…" if len(reservation) > 8 else reservation


def ms(seconds: float) -> float:
    return round(seconds * 1000, 1)
