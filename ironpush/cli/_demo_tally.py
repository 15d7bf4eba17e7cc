"""How each message of ``ironpush demo`` ended, counted so that the outcomes add up.

The receiver's counters count *pushes* (a flaky order is received twice, a long order busy
three times), so they cannot add up to the number of messages. The :class:`Ledger` counts
*messages*: it listens to the dev server's events and keeps each message's last word from
IronMQ's side (a 200 on some try, an ack after a 202, or no try left), so that::

    ledger.counts(kinds)  # {"delivered": 250, "delivered_after_retry": 250, "acked": 250,
                          #  "dropped": 250, "failed": 0, "unfinished": 0}  → sums to 1000

(a poison order answered 200 by ``Drop`` is ``dropped``; a message with no last word yet is
``unfinished``).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping
from typing import Any

# Receiver outcomes that are not "handled, answered 200 at once" (see summary_rows).
NOT_DONE = ("deferred", "retried", "dropped", "duplicates", "busy", "rejected")
#: Every way a message can end, in the order the summary names them.
OUTCOMES = ("delivered", "delivered_after_retry", "acked", "dropped", "failed", "unfinished")
LABELS = {
    "delivered": "delivered at once (200)",
    "delivered_after_retry": "delivered on a later try (200)",
    "acked": "acked after 202",
    "dropped": "dropped (200)",
    "failed": "failed (no try left: error queue)",
    "unfinished": "not finished in time",
}


class Ledger:
    """The last word of IronMQ on each message of one queue (fed by dev server events)."""

    def __init__(self, queue: str) -> None:
        self.queue = queue
        self._finals: dict[str, tuple[str, int]] = {}  # message id → (outcome, try)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)

    def on_event(self, event: Mapping[str, Any]) -> None:
        """A dev server event (called on the server's loop: kept quick)."""
        if event.get("queue") != self.queue:
            return
        final = _final(event)
        if final is not None:
            with self._lock:
                self._finals[str(event.get("message_id"))] = final
                self._changed.notify_all()

    @property
    def finished(self) -> int:
        with self._lock:
            return len(self._finals)

    @property
    def failed(self) -> int:
        with self._lock:
            return sum(outcome == "failed" for outcome, _ in self._finals.values())

    def wait_finished(self, ids: set[str], timeout: float) -> bool:
        """Wait until every message of ``ids`` has its last word (False after ``timeout``)."""
        with self._lock:
            return self._changed.wait_for(lambda: ids <= self._finals.keys(), timeout)

    def ended(self, message_id: str) -> str | None:
        """``delivered``/``acked``/``failed`` for a finished message, else None."""
        with self._lock:
            final = self._finals.get(message_id)
        return None if final is None else final[0]

    def counts(self, kinds: Mapping[str, str]) -> dict[str, int]:
        """How the messages of ``kinds`` (id → kind) ended, one of :data:`OUTCOMES` each."""
        with self._lock:
            finals = dict(self._finals)
        tally = Counter(_category(finals.get(m), kind) for m, kind in kinds.items())
        return {outcome: tally[outcome] for outcome in OUTCOMES}


def _final(event: Mapping[str, Any]) -> tuple[str, int] | None:
    kind, outcome = event.get("type"), event.get("outcome")
    if kind == "push" and outcome in ("delivered", "failed"):
        return str(outcome), int(event.get("try") or 1)
    if kind == "ack" and outcome == "acked":
        return "acked", 0
    return None


def _category(final: tuple[str, int] | None, kind: str) -> str:
    if final is None:
        return "unfinished"
    outcome, tries = final
    if outcome != "delivered":
        return outcome
    if kind == "poison":
        return "dropped"
    return "delivered" if tries <= 1 else "delivered_after_retry"


def outcomes_text(counts: Mapping[str, int]) -> str:
    """``250 delivered at once (200) + … + 0 failed (…)``: every outcome that happened, and
    ``failed`` always (it is the one to look for)."""
    parts = [
        f"{counts[name]} {LABELS[name]}"
        for name in OUTCOMES
        if counts.get(name) or name == "failed"
    ]
    return " + ".join(parts)


def summary_rows(
    counters: Mapping[str, int], *, retries_delay: float = 1.0
) -> list[dict[str, Any]]:
    """The receiver's counters that matter here, each with what it counts (they add up)."""
    c = Counter(counters)
    done = c["received"] - sum(c[k] for k in NOT_DONE) - c["verification_failures"]
    meaning = {
        "received": "pushes that reached the service, retries included: "
        + " + ".join(
            f"{n} {label}"
            for n, label in (
                (done, "answered 200 at once"),
                (c["deferred"], "deferred (202)"),
                (c["retried"], "retried (503)"),
                (c["dropped"], "dropped"),
                (c["duplicates"], "duplicates"),
                (c["busy"], "busy"),
            )
            if n or label.startswith("answered")
        ),
        "acked": f"{done} answered 200 at once + {c['acked'] - done} deferred job(s) "
        "acknowledged afterwards through the outbox",
        "deferred": "answered 202: the job ran after the answer, then its ack was sent",
        "retried": "answered 503 (Retry): IronMQ pushed them again after retries_delay",
        "dropped": "answered 200 but recorded as dropped (poison orders stop retrying)",
        "duplicates": "redeliveries of handled messages, answered 200 without the handler",
        "busy": "answered 503 because the deferred-job capacity was full: IronMQ pushed them "
        "again later (back-pressure, nothing lost)",
        "late_acks": "acks refused because the 202 reservation had run out (retries_delay "
        f"{retries_delay:g}s here): the message was pushed again and acknowledged then",
    }
    always = ("received", "acked", "deferred", "retried", "dropped", "duplicates")
    return [
        {"counter": name, "value": c[name], "what it counts": text}
        for name, text in meaning.items()
        if name in always or c[name]
    ]
