"""The dev server's records: queues, messages and per-subscriber push states.

Each record knows its wire JSON (what the v3 API answers) and its storage row (what SQLite keeps).
Deadlines are wall-clock timestamps (``time.time()``) so they mean the same after a restart;
timer handles are runtime-only and never stored.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..client._models import Subscriber

__all__ = [
    "PENDING",
    "IdGenerator",
    "MessageState",
    "PushState",
    "QueueState",
    "iso",
    "new_reservation_id",
    "num",
]

# Push statuses of a subscriber that still has work to do; "deleted" and "error" are final.
PENDING = frozenset({"queued", "retrying", "reserved"})


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


@dataclass
class QueueState:
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
    messages: dict[str, MessageState] = field(default_factory=dict, repr=False)
    # Ready message ids in delivery order; an OrderedDict so that a message deleted while
    # ready leaves at once (no stale entry for peek or reserve to skip) and the front is O(1).
    ready: OrderedDict[str, None] = field(default_factory=OrderedDict, repr=False)
    counts: Counter[str] = field(default_factory=Counter, repr=False)  # live messages by state
    waiters: list[asyncio.Future[None]] = field(default_factory=list, repr=False)

    @property
    def is_push(self) -> bool:
        return self.type != "pull"

    def subscriber(self, name: str) -> Subscriber | None:
        for sub in self.subscribers:
            if sub.name == name:
                return sub
        return None

    def subscriber_for(self, ps: PushState) -> Subscriber | None:
        """The subscriber a push state delivers to: by name, and by URL among namesakes.

        Two subscribers may share a name (hosted IronMQ keeps both); each push state keeps
        the URL it was created with, so each goes to its own subscriber. A lone namesake is
        taken whatever its URL (an update of the subscriber's URL applies to pending pushes).
        """
        named = [s for s in self.subscribers if s.name == ps.name]
        if len(named) > 1:
            return next((s for s in named if s.url == ps.url), named[0])
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
        return {
            "type": self.type,
            "message_timeout": self.message_timeout,
            "message_expiration": self.message_expiration,
            "subscribers": [s.to_json() for s in self.subscribers],
            "retries": self.retries,
            "retries_delay": self.retries_delay,
            "error_queue": self.error_queue,
            "dead_letter": self.dead_letter,
            "alerts": [dict(a) for a in self.alerts],
            "total_messages": self.total_messages,
            "created_at": self.created_at,
        }

    @classmethod
    def from_row(cls, project: str, name: str, row: dict[str, Any]) -> QueueState:
        return cls(
            project=project,
            name=name,
            type=row["type"],
            message_timeout=row["message_timeout"],
            message_expiration=row["message_expiration"],
            subscribers=[Subscriber.from_json(s) for s in row["subscribers"]],
            retries=row["retries"],
            retries_delay=row["retries_delay"],
            error_queue=row.get("error_queue"),
            dead_letter=row.get("dead_letter"),
            alerts=list(row.get("alerts") or []),
            total_messages=row.get("total_messages", 0),
            created_at=row.get("created_at", time.time()),
        )


@dataclass
class PushState:
    """One subscriber's delivery of one message (a push status)."""

    name: str
    url: str
    retries_remaining: int
    status: str = "queued"
    status_code: int | None = None
    tries: int = 0
    last_try_at: float | None = None
    msg: str | None = None
    reservation_id: str | None = None
    due_at: float | None = None  # next try (queued/retrying) or 202 expiry (reserved)
    timer: asyncio.TimerHandle | None = field(default=None, repr=False)
    in_flight: bool = field(default=False, repr=False)

    def to_json(self, retries_delay: float) -> dict[str, Any]:
        return {
            "name": self.name,
            "url": self.url,
            "status": self.status,
            "status_code": self.status_code,
            "tries": self.tries,
            "retries_remaining": self.retries_remaining,
            "retries_delay": num(retries_delay),
            "last_try_at": iso(self.last_try_at),
            "msg": self.msg,
        }

    def to_row(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "url": self.url,
            "retries_remaining": self.retries_remaining,
            "status": self.status,
            "status_code": self.status_code,
            "tries": self.tries,
            "last_try_at": self.last_try_at,
            "msg": self.msg,
            "reservation_id": self.reservation_id,
            "due_at": self.due_at,
        }

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> PushState:
        return cls(**row)


@dataclass
class MessageState:
    """A message. ``state``: ready, delayed, reserved (pull), pushing (push), finished.

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
    state: str = "ready"
    available_at: float | None = None
    front: bool = False  # when a delay ends, go to the front (released) or the back (posted)
    reservation_id: str | None = None
    reserved_until: float | None = None
    reserved_count: int = 0
    expires_at: float | None = None
    push: list[PushState] | None = None
    push_round: int = 0  # unicast: rounds started
    push_due_at: float | None = None  # unicast: when the next round starts
    finished_at: float | None = None
    timer: asyncio.TimerHandle | None = field(default=None, repr=False)
    expiry_timer: asyncio.TimerHandle | None = field(default=None, repr=False)

    def cancel_timers(self) -> None:
        for handle in (self.timer, self.expiry_timer):
            if handle is not None:
                handle.cancel()
        self.timer = self.expiry_timer = None
        for ps in self.push or ():
            if ps.timer is not None:
                ps.timer.cancel()
                ps.timer = None

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
        return {
            "body": self.body,
            "push_headers": self.push_headers,
            "posted_at": self.posted_at,
            "seq": self.seq,
            "state": self.state,
            "available_at": self.available_at,
            "front": self.front,
            "reservation_id": self.reservation_id,
            "reserved_until": self.reserved_until,
            "reserved_count": self.reserved_count,
            "expires_at": self.expires_at,
            "push": None if self.push is None else [p.to_row() for p in self.push],
            "push_round": self.push_round,
            "push_due_at": self.push_due_at,
            "finished_at": self.finished_at,
        }

    @classmethod
    def from_row(cls, mid: str, project: str, queue: str, row: dict[str, Any]) -> MessageState:
        push = row.pop("push", None)
        msg = cls(id=mid, project=project, queue=queue, **row)
        msg.push = None if push is None else [PushState.from_row(p) for p in push]
        return msg
