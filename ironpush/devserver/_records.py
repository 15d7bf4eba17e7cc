"""The dev server's records: queues, messages and per-subscriber pushes, plain data.

Each record knows its wire JSON (what the v3 API answers) and its storage row (what SQLite keeps).
Deadlines are wall-clock timestamps (``time.time()``) so they mean the same after a restart; a
record holds no timer: :meth:`MessageRecord.deadlines` says what is due when, and the pusher
turns that into timers. Records compare by identity (two messages are never "equal").
"""

from __future__ import annotations

import secrets
import time
from collections import Counter, OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from .._redact import redact_text
from ..client._models import Subscriber
from ._masking import shown_url
from ._transitions import PULL_LIVE, MessageState, PushState


def num(value: float) -> int | float:
    """Whole seconds as ints in JSON (what the hosted service shows), fractions kept."""
    return int(value) if float(value).is_integer() else value


def iso(ts: float | None) -> str | None:
    """ISO 8601 UTC with milliseconds, e.g. ``2024-05-01T12:00:03.250Z``."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def new_reservation_id() -> str:
    return secrets.token_hex(12)


#: Field metadata of what lives only while the server runs (never stored).
RUNTIME = {"runtime": True}


def _stored(cls: Any) -> list[str]:
    return [f.name for f in fields(cls) if not f.metadata.get("runtime")]


def _row(record: Any, *, skip: frozenset[str]) -> dict[str, Any]:
    """The stored fields of a dataclass record (the runtime-only ones are left out)."""
    return {name: getattr(record, name) for name in _stored(record) if name not in skip}


class IdGenerator:
    """Numeric message ids like the hosted service's: increasing, unique across restarts.

    Millisecond time shifted left by 20 bits leaves room for a million ids per millisecond and
    still fits a signed 64-bit integer.
    """

    def __init__(self) -> None:
        self._last = 0

    def next(self) -> str:
        self._last = max(self._last + 1, int(time.time() * 1000) << 20)
        return str(self._last)

    def seen(self, mid: str) -> None:
        """Keep future ids above a stored one (after a restart)."""
        if mid.isdigit():
            self._last = max(self._last, int(mid))


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one push try got back: a status code (None: no HTTP answer) and the failure."""

    code: int | None
    msg: str | None
    answer: str = ""  # the start of the answer's body, whatever the status
    headers: dict[str, str] = field(default_factory=dict)  # what was sent

    def masked(self, hidden: list[str]) -> Outcome:
        """This outcome with each value of ``hidden`` masked in its failure message and answer
        (a subscriber that echoes its own secret)."""
        if not hidden:
            return self
        msg = redact_text(self.msg, hidden) if self.msg else self.msg
        return replace(self, msg=msg, answer=redact_text(self.answer, hidden))


@dataclass(eq=False)
class QueueRecord:
    """A queue: its settings (stored) and its live messages (rebuilt from the messages table)."""

    project: str
    name: str
    type: str = "pull"
    message_timeout: float = 60
    message_expiration: float = 604_800
    subscribers: list[Subscriber] = field(default_factory=list)
    retries: int = 3
    retries_delay: float = 60
    error_queue: str | None = None
    dead_letter: dict[str, Any] | None = None
    alerts: list[dict[str, Any]] = field(default_factory=list)
    total_messages: int = 0
    created_at: float = field(default_factory=time.time)
    # runtime only
    messages: dict[str, MessageRecord] = field(default_factory=dict, repr=False, metadata=RUNTIME)
    # Ready message ids in delivery order; an OrderedDict so that a message deleted while
    # ready leaves at once (no stale entry for peek or reserve to skip) and the front is O(1).
    ready: OrderedDict[str, None] = field(default_factory=OrderedDict, repr=False, metadata=RUNTIME)
    # Live messages by state (running counts: nothing scans the messages to count them).
    counts: Counter[str] = field(default_factory=Counter, repr=False, metadata=RUNTIME)

    @property
    def is_push(self) -> bool:
        return self.type != "pull"

    @property
    def unicast(self) -> bool:
        return self.type == "unicast"

    def subscriber(self, name: str) -> Subscriber | None:
        return next((sub for sub in self.subscribers if sub.name == name), None)

    def subscriber_for(self, push: PushRecord) -> Subscriber | None:
        """The subscriber a push delivers to: by name, and by URL among namesakes.

        Two subscribers may share a name (hosted IronMQ keeps both); each push keeps the URL it
        was created with, so each goes to its own subscriber. A lone namesake is taken whatever
        its URL (an update of the subscriber's URL applies to pending pushes).
        """
        named = [s for s in self.subscribers if s.name == push.name]
        if len(named) > 1:
            return next((s for s in named if s.url == push.url), named[0])
        return named[0] if named else None

    def to_json(self, *, counts: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {"project_id": self.project, "name": self.name}
        if counts:
            out["size"] = len(self.messages)
            out["total_messages"] = self.total_messages
        out["message_timeout"] = num(self.message_timeout)
        out["message_expiration"] = num(self.message_expiration)
        out["type"] = self.type
        if self.is_push:
            out["push"] = {
                "subscribers": [s.to_json() for s in self.subscribers],
                "retries": self.retries,
                "retries_delay": num(self.retries_delay),
                "error_queue": self.error_queue or "",
            }
        if self.dead_letter:
            out["dead_letter"] = dict(self.dead_letter)
        if self.alerts:
            out["alerts"] = [dict(a) for a in self.alerts]
        return out

    def to_row(self) -> dict[str, Any]:
        row = _row(self, skip=frozenset({"project", "name"}))
        row["subscribers"] = [s.to_json() for s in self.subscribers]
        row["alerts"] = [dict(a) for a in self.alerts]
        return row

    @classmethod
    def from_row(cls, project: str, name: str, row: dict[str, Any]) -> QueueRecord:
        known = set(_stored(cls))
        values = {k: v for k, v in row.items() if k in known}
        values["subscribers"] = [Subscriber.from_json(s) for s in row["subscribers"]]
        values["alerts"] = list(row.get("alerts") or [])
        return cls(project=project, name=name, **values)


#: The fields of a push status on the wire, in the order the v3 API lists them.
PUSH_STATUS_FIELDS = ("name", "url", "status", "status_code", "tries", "retries_remaining")


@dataclass(eq=False)
class PushRecord:
    """One subscriber's delivery of one message: its push status (see :data:`PUSH_MOVES`)."""

    name: str
    url: str
    retries_remaining: int
    status: PushState = PushState.QUEUED
    status_code: int | None = None
    tries: int = 0
    last_try_at: float | None = None
    msg: str | None = None
    reservation_id: str | None = None
    due_at: float | None = None  # next try (queued/retrying) or 202 expiry (reserved)
    # A POST is out and its answer awaited (an ack arriving now is "acked in flight").
    in_flight: bool = field(default=False, repr=False, metadata=RUNTIME)

    def to_json(self, retries_delay: float) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in PUSH_STATUS_FIELDS}
        out["url"] = shown_url(self.url)  # not the queue owner's read of its subscribers
        out.update(retries_delay=num(retries_delay), last_try_at=iso(self.last_try_at))
        out["msg"] = self.msg
        return out

    def to_row(self) -> dict[str, Any]:
        return _row(self, skip=frozenset())

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> PushRecord:
        return cls(**{**row, "status": PushState(row["status"])})


class Due(StrEnum):
    """What a message's deadline is for (the pusher calls the matching state operation)."""

    DELAY_OVER = "delay over"
    RESERVATION_OVER = "reservation over"
    EXPIRY = "message expiration"
    TRY = "push try"
    ROUND = "unicast round"
    PUSH_EXPIRY = "202 expiry"


#: (slot, wall-clock time, what, the push it concerns): one timer per slot.
Deadline = tuple[object, float, Due, PushRecord | None]


@dataclass(eq=False)
class MessageRecord:
    """A message; ``state`` moves only through :data:`MESSAGE_MOVES`.

    ``seq`` orders ready messages: posts take increasing values, released or timed-out messages
    decreasing negative ones, which puts them at the front (v3 rule) and survives a restart.
    """

    id: str
    project: str
    queue: str
    body: str
    push_headers: dict[str, str] = field(default_factory=dict)
    posted_at: float = field(default_factory=time.time)
    seq: int = 0
    state: MessageState = MessageState.NEW
    available_at: float | None = None
    front: bool = False  # when a delay ends, go to the front (released) or the back (posted)
    reservation_id: str | None = None
    reserved_until: float | None = None
    reserved_count: int = 0
    expires_at: float | None = None
    push: list[PushRecord] | None = None
    push_round: int = 0  # unicast: rounds started
    push_due_at: float | None = None  # unicast: when the next round starts
    finished_at: float | None = None

    def deadlines(self, *, unicast: bool) -> Iterator[Deadline]:
        """What is due when, from this record's state alone (the timers to have)."""
        state = self.state
        if state is MessageState.DELAYED and self.available_at is not None:
            yield "main", self.available_at, Due.DELAY_OVER, None
        elif state is MessageState.RESERVED and self.reserved_until is not None:
            yield "main", self.reserved_until, Due.RESERVATION_OVER, None
        if state in PULL_LIVE and self.expires_at is not None:
            yield "expiry", self.expires_at, Due.EXPIRY, None
        if state is not MessageState.PUSHING:
            return
        pushes = self.push or []
        waiting = any(p.status is PushState.RESERVED for p in pushes)
        if unicast and self.push_due_at is not None and not waiting:
            yield "main", self.push_due_at, Due.ROUND, None
        for p in pushes:
            if p.due_at is None:
                continue
            if p.status is PushState.RESERVED:
                yield p, p.due_at, Due.PUSH_EXPIRY, p
            elif not unicast and p.status in (PushState.QUEUED, PushState.RETRYING):
                yield p, p.due_at, Due.TRY, p

    def to_json(self, *, reservation: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "body": self.body,
            "reserved_count": self.reserved_count,
        }
        if reservation and self.reservation_id:
            out["reservation_id"] = self.reservation_id
        if self.push_headers:
            out["push_headers"] = dict(self.push_headers)
        return out

    def to_row(self) -> dict[str, Any]:
        row = _row(self, skip=frozenset({"id", "project", "queue"}))
        row["push"] = None if self.push is None else [p.to_row() for p in self.push]
        return row

    @classmethod
    def from_row(cls, mid: str, project: str, queue: str, row: dict[str, Any]) -> MessageRecord:
        push = row.pop("push", None)
        msg = cls(id=mid, project=project, queue=queue, **row)
        msg.state = MessageState(msg.state)
        msg.push = None if push is None else [PushRecord.from_row(p) for p in push]
        return msg
