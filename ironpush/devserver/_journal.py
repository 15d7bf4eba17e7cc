"""What the pusher did, kept for people: attempt records, log lines and the event stream.

Every push attempt becomes one record (``GET /_dev/deliveries``, the inspector's attempt list)
with the headers sent (secrets masked), the answer's status and first bytes and the latency;
an acknowledgement marks the record of the reservation it acknowledged. Each of them is also
one event on the :class:`~ironpush.devserver._events.EventHub` and one INFO line on the
``ironpush.devserver`` logger, both worded by :func:`~ironpush.devserver._events.describe`::

    12:00:03.250 INFO    ironpush.devserver: push orders 6295… → billing try 1/4: 503
    (downstream busy) in 12.3 ms → retrying in 1s
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict, deque
from collections.abc import Mapping
from typing import Any

from .._redact import redact_headers
from ._events import Event, EventHub, describe
from ._masking import shown_url
from ._records import MessageRecord, PushRecord, QueueRecord, iso

log = logging.getLogger("ironpush.devserver")


class Journal:
    """Attempt records (bounded), ack marks, events and log lines of one dev server."""

    def __init__(self, size: int, hub: EventHub | None = None) -> None:
        self.deliveries: deque[dict[str, Any]] = deque(maxlen=size)
        self.events = hub or EventHub()
        self._size = size
        # reservation id → its attempt record, to mark the record when the ack arrives.
        self._by_reservation: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._early: OrderedDict[str, dict[str, Any]] = OrderedDict()  # acks before their 202

    def _remember(self, table: OrderedDict[str, dict[str, Any]], key: str, value: Any) -> None:
        table[key] = value
        while len(table) > self._size:
            table.popitem(last=False)

    def clear(self) -> None:
        self.deliveries.clear()
        self._by_reservation.clear()
        self._early.clear()
        self.events.clear()

    def attempts(self, message_id: str) -> list[dict[str, Any]]:
        """Every kept attempt of one message, oldest first."""
        return [e for e in self.deliveries if e["message_id"] == message_id]

    def _emit(self, fields: Mapping[str, Any]) -> Event:
        event = self.events.publish(fields)
        if log.isEnabledFor(logging.INFO):
            log.info("%s", describe(event), extra=_log_fields(fields))
        return event

    # ------------------------------------------------------------------ pushes

    def attempt(
        self,
        m: MessageRecord,
        q: QueueRecord,
        ps: PushRecord,
        *,
        code: int | None,
        msg: str | None,
        answer: str,
        seconds: float,
        headers: Mapping[str, str],
    ) -> None:
        """One finished POST to a subscriber (``code`` None: no HTTP answer)."""
        outcome, retry_in = _outcome(m, q, ps, code)
        entry = {
            "project": m.project,
            "queue": m.queue,
            "message_id": m.id,
            "subscriber": ps.name,
            "url": shown_url(ps.url),
            "try": ps.tries,
            "tries": q.retries + 1,
            "reservation_id": ps.reservation_id,
            "status_code": code,
            "msg": msg,
            "answer": answer,
            "outcome": outcome,
            "at": iso(ps.last_try_at),
            "duration_ms": round(seconds * 1000, 2),
            "headers": redact_headers(headers),
            "ack": None,
        }
        self.deliveries.append(entry)
        if ps.reservation_id is not None and code == 202:
            early = self._early.pop(ps.reservation_id, None)
            if early is not None:  # acked while the 202 was still on its way
                entry["ack"] = early
            else:
                self._remember(self._by_reservation, ps.reservation_id, entry)
        fields = {k: v for k, v in entry.items() if k not in ("headers", "ack", "url", "at")}
        self._emit({"type": "push", **fields, "retry_in": retry_in})

    def expired(
        self, m: MessageRecord, q: QueueRecord, ps: PushRecord, reservation_id: str
    ) -> None:
        """A 202 that was not acknowledged within ``retries_delay``."""
        entry = self._by_reservation.pop(reservation_id, None)
        if entry is not None:
            entry["ack"] = {"result": "expired", "at": None, "via": None}
        self._emit(
            {
                "type": "expired",
                "outcome": "expired",
                **_where(m, ps.name),
                "try": ps.tries,
                "tries": q.retries + 1,
                "reservation_id": reservation_id,
                "retries_delay": q.retries_delay,
            }
        )

    def reported(
        self, m: MessageRecord, q: QueueRecord, failed: list[PushRecord], report_id: str
    ) -> None:
        """A report on ``q.error_queue`` for the subscribers in ``failed``."""
        self._emit(
            {
                "type": "error_queue",
                "outcome": "error-queue",
                **_where(m, None),
                "error_queue": q.error_queue,
                "report_id": report_id,
                "subscribers": [ps.name for ps in failed],
                "failures": [
                    {"name": ps.name, "code": ps.status_code, "msg": ps.msg} for ps in failed
                ],
            }
        )

    def replayed(
        self, m: MessageRecord, names: list[str], *, how: str, source_id: str | None = None
    ) -> None:
        self._emit(
            {
                "type": "replay",
                "outcome": "replayed",
                **_where(m, None),
                "subscribers": names,
                "how": how,
                "source_id": source_id,
            }
        )

    # ------------------------------------------------------------------ acks

    def ack(
        self,
        q: QueueRecord,
        message_id: str,
        subscriber: str,
        reservation_id: str | None,
        *,
        via: str,
        error: tuple[int, str] | None,
    ) -> None:
        """An acknowledgement of a 202 (``via`` ``api`` or ``url``), accepted or refused."""
        if error is None and reservation_id:
            mark = {"result": "acked", "via": via, "at": iso(time.time())}
            entry = self._by_reservation.pop(reservation_id, None)
            if entry is not None:
                entry["ack"] = mark
            else:
                self._remember(self._early, reservation_id, mark)
        self._emit(
            {
                "type": "ack",
                "outcome": "acked" if error is None else "refused",
                "project": q.project,
                "queue": q.name,
                "message_id": message_id,
                "subscriber": subscriber,
                "via": via,
                "reservation_id": reservation_id,
                "status_code": 200 if error is None else error[0],
                "msg": None if error is None else error[1],
            }
        )


#: An event's fields that its log record carries, under the record's key (see
#: :data:`ironpush._logfields.CONTEXT_KEYS`): ids and names, never a header, body or URL.
_LOGGED = {
    "type": "event",
    "project": "project",
    "queue": "queue",
    "message_id": "message_id",
    "subscriber": "subscriber",
    "try": "attempt",
    "reservation_id": "reservation_id",
    "outcome": "outcome",
    "status_code": "status",
    "duration_ms": "duration_ms",
    "via": "via",
}


def _log_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    return {key: fields[name] for name, key in _LOGGED.items() if fields.get(name) is not None}


def _where(m: MessageRecord, subscriber: str | None) -> dict[str, Any]:
    return {
        "project": m.project,
        "queue": m.queue,
        "message_id": m.id,
        "subscriber": subscriber,
    }


def _outcome(
    m: MessageRecord, q: QueueRecord, ps: PushRecord, code: int | None
) -> tuple[str, float | None]:
    """What the pusher does after this answer, and in how many seconds it tries again."""
    if code == 200:
        return "delivered", None
    if code == 202:
        return "deferred", None
    if q.type != "unicast":
        if ps.tries < q.retries + 1:
            return "retrying", q.retries_delay
        return "failed", None
    states = m.push or []
    last = not states or states[-1] is ps
    if not last:
        return "retrying", 0.0  # the next subscriber is tried at once
    if m.push_round < q.retries + 1:
        return "retrying", q.retries_delay
    return "failed", None
