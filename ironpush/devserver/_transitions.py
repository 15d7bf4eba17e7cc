"""The dev server's two state machines, as data: every legal move is one row of a table.

As in h11's ``_state.py``, a state changes only through :func:`move`, which looks the move up in
its table and raises :class:`IllegalMove` for anything else, so a bug shows up as an error at
the move instead of a message stuck in an impossible state.

A **message** (``MESSAGE_MOVES``): posted to a pull queue it is ``ready`` (or ``delayed``),
``reserved`` by a consumer, back to ``ready`` when released or when its reservation times out,
``gone`` when deleted or expired; posted to a push queue it is ``pushing`` until every
subscriber is done with it, then ``finished`` (still readable for a while, and replayable).

A **push** (``PUSH_MOVES``), one per subscriber of a pushed message, the push status of the v3
API: ``queued`` → ``deleted`` (200), ``reserved`` (202, until acknowledged or
``retries_delay`` runs out), ``retrying`` (any other answer, while tries are left) or ``error``
(none left). ::

    move(PUSH_MOVES, PushState.RESERVED, PushEvent.ACKED)   # PushState.DELETED
    move(PUSH_MOVES, PushState.ERROR, PushEvent.ACKED)      # IllegalMove
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import TypeVar

from .._errors import IronPushError


class MessageState(StrEnum):
    NEW = "new"  # being created: not in a queue yet
    READY = "ready"
    DELAYED = "delayed"
    RESERVED = "reserved"
    PUSHING = "pushing"
    FINISHED = "finished"  # a push message every subscriber is done with (kept a while)
    GONE = "gone"  # deleted, expired, dead-lettered, or forgotten


class MessageEvent(StrEnum):
    POSTED = "posted"
    POSTED_DELAYED = "posted with a delay"
    POSTED_FOR_PUSH = "posted to a push queue"
    DELAY_OVER = "delay over"
    RESERVED = "reserved"
    TOUCHED = "touched"
    RELEASED = "released"
    RELEASED_DELAYED = "released with a delay"
    TIMED_OUT = "reservation timed out"
    DEAD_LETTERED = "dead-lettered"
    EXPIRED = "expired"
    DELETED = "deleted"
    FINISHED = "finished"
    REPLAYED = "replayed"
    FORGOTTEN = "forgotten"


class PushState(StrEnum):
    QUEUED = "queued"
    RETRYING = "retrying"
    RESERVED = "reserved"
    DELETED = "deleted"
    ERROR = "error"


class PushEvent(StrEnum):
    DELIVERED = "answered 200"
    DEFERRED = "answered 202"
    FAILED = "failed, tries left"
    EXHAUSTED = "failed, no try left"
    EXPIRED = "202 not acknowledged in time, tries left"
    ACKED = "acknowledged"
    ACKED_IN_FLIGHT = "acknowledged before its 202 arrived"
    OUTRUN = "another subscriber took it (unicast)"


_PULL_LIVE = (MessageState.READY, MessageState.DELAYED, MessageState.RESERVED)

MESSAGE_MOVES: dict[MessageState, dict[MessageEvent, MessageState]] = {
    MessageState.NEW: {
        MessageEvent.POSTED: MessageState.READY,
        MessageEvent.POSTED_DELAYED: MessageState.DELAYED,
        MessageEvent.POSTED_FOR_PUSH: MessageState.PUSHING,
    },
    MessageState.READY: {
        MessageEvent.RESERVED: MessageState.RESERVED,
        MessageEvent.DELETED: MessageState.GONE,
        MessageEvent.EXPIRED: MessageState.GONE,
    },
    MessageState.DELAYED: {
        MessageEvent.DELAY_OVER: MessageState.READY,
        MessageEvent.DELETED: MessageState.GONE,
        MessageEvent.EXPIRED: MessageState.GONE,
    },
    MessageState.RESERVED: {
        MessageEvent.TOUCHED: MessageState.RESERVED,
        MessageEvent.RELEASED: MessageState.READY,
        MessageEvent.RELEASED_DELAYED: MessageState.DELAYED,
        MessageEvent.TIMED_OUT: MessageState.READY,
        MessageEvent.DEAD_LETTERED: MessageState.GONE,
        MessageEvent.DELETED: MessageState.GONE,
        MessageEvent.EXPIRED: MessageState.GONE,
    },
    MessageState.PUSHING: {
        MessageEvent.FINISHED: MessageState.FINISHED,
        MessageEvent.DELETED: MessageState.GONE,
    },
    MessageState.FINISHED: {
        MessageEvent.REPLAYED: MessageState.PUSHING,
        MessageEvent.FORGOTTEN: MessageState.GONE,
    },
    MessageState.GONE: {},
}

PUSH_MOVES: dict[PushState, dict[PushEvent, PushState]] = {
    PushState.QUEUED: {
        PushEvent.DELIVERED: PushState.DELETED,
        PushEvent.DEFERRED: PushState.RESERVED,
        PushEvent.FAILED: PushState.RETRYING,
        PushEvent.EXHAUSTED: PushState.ERROR,
        PushEvent.ACKED_IN_FLIGHT: PushState.DELETED,
    },
    PushState.RETRYING: {
        PushEvent.DELIVERED: PushState.DELETED,
        PushEvent.DEFERRED: PushState.RESERVED,
        PushEvent.FAILED: PushState.RETRYING,
        PushEvent.EXHAUSTED: PushState.ERROR,
        PushEvent.ACKED_IN_FLIGHT: PushState.DELETED,
        PushEvent.OUTRUN: PushState.ERROR,
    },
    PushState.RESERVED: {
        PushEvent.ACKED: PushState.DELETED,
        PushEvent.EXPIRED: PushState.RETRYING,
        PushEvent.EXHAUSTED: PushState.ERROR,
    },
    # Acknowledged while its 202 was on the way: whatever that try's answer turns out to be,
    # the subscriber is done (and a repeated ack of the same reservation is harmless).
    PushState.DELETED: {
        PushEvent.DELIVERED: PushState.DELETED,
        PushEvent.DEFERRED: PushState.DELETED,
        PushEvent.FAILED: PushState.DELETED,
        PushEvent.EXHAUSTED: PushState.DELETED,
        PushEvent.ACKED: PushState.DELETED,
    },
    PushState.ERROR: {},
}

#: Push statuses with work left (a try to make, or an ack to wait for); the others are final.
PENDING = frozenset({PushState.QUEUED, PushState.RETRYING, PushState.RESERVED})
#: Message states whose queue counts them (``size``, ``/_dev/state``).
COUNTED = frozenset({*_PULL_LIVE, MessageState.PUSHING})
#: Message states of a pull message still in its queue (``message_expiration`` applies).
PULL_LIVE = frozenset(_PULL_LIVE)


class IllegalMove(IronPushError):
    """A move its table does not allow: a bug in the dev server, never a client's mistake."""


S = TypeVar("S", MessageState, PushState)
E = TypeVar("E", MessageEvent, PushEvent)


def move(table: Mapping[S, Mapping[E, S]], state: S, event: E) -> S:
    """The state after ``event`` in ``state``; :class:`IllegalMove` if the table has no row."""
    try:
        return table[state][event]
    except KeyError:
        raise IllegalMove(f"no move from {state.value!r} on {event.value!r}") from None
