"""Push a message again, to every subscriber or to one: the dev server's replay.

Hosted IronMQ cannot push an existing message again, nor push to one subscriber of a queue: a
replay there is a new message posted to the queue (every subscriber gets it, with a new id).
The dev server can do both, which is what the inspector's replay buttons and
``ironpush replay --to SUBSCRIBER`` use (``POST /_dev/replay``):

- the message is still kept (live, or finished within ``finished_retention``): it is pushed
  again **with the same message id** to the chosen subscribers (their push statuses start
  over; the others keep theirs), so a receiver that already handled it answers 200 from its
  dedupe store without running the handler twice. Subscribers it is still being pushed to are
  left alone (``"how": "already being pushed"`` when that is all of them): replaying twice is
  harmless;
- it is no longer kept and ``body`` is given: a new message with that body and push headers is
  posted to the queue and pushed to the chosen subscribers only.

A replay is a state operation like any other: it returns what it changed, and the engine hands
that to the pusher (the pushes are due now)::

    result, changes = replay(state, Replay("dev", "orders", "6295…", subscribers=["billing"]))
    # result: {"message_id": "6295…", "how": "same message", "subscribers": ["billing"]}
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._errors import APIError
from ._ledger import Changes
from ._records import MessageRecord, QueueRecord
from ._state import BrokerState
from ._transitions import PENDING
from ._validation import NewMessage

# Headers of the push request itself (the pusher's, and the HTTP ones), not push headers.
_NOT_PUSH_HEADERS = frozenset(
    {"user-agent", "content-type", "content-length", "host", "accept-encoding", "connection"}
)


def push_headers_from_report(
    headers: Mapping[str, str], *, subscriber_headers: Iterable[str] = ()
) -> dict[str, str]:
    """The message's own push headers among an error report's ``headers``.

    A report lists the headers of the failed push: the pusher's own (``User-Agent``,
    ``Content-Type``, ``Iron-*``; hosted IronMQ may spell them ``USER_AGENT``), the
    subscriber's (such as a push secret: it must not become a push header of the re-posted
    message, which would override a rotated one) and the message's push headers. Only the
    last are kept::

        push_headers_from_report({"User-Agent": "IronMQ Pusherd", "X-Trace": "t1"})
        # {"X-Trace": "t1"}
    """
    skip = {h.lower().replace("_", "-") for h in subscriber_headers}
    out = {}
    for name, value in headers.items():
        key = name.lower().replace("_", "-")
        if key in _NOT_PUSH_HEADERS or key.startswith("iron-") or key in skip:
            continue
        out[name] = value
    return out


@dataclass(frozen=True)
class Replay:
    """What to push again: ``message_id`` of ``queue`` (or, when no longer kept, ``body`` with
    ``push_headers`` as a new message), to ``subscribers`` (empty: all of them)."""

    project: str
    queue: str
    message_id: str | None
    subscribers: Sequence[str] = ()
    body: str | None = None
    push_headers: Mapping[str, str] = field(default_factory=dict)


def replay(state: BrokerState, ask: Replay) -> tuple[dict[str, Any], Changes]:
    """Do ``ask``: what was done (``message_id``, ``how``, ``subscribers``) and the changes."""
    ledger = state.ledger
    project, queue, message_id = ask.project, ask.queue, ask.message_id
    q = ledger.queue(project, queue)
    if not q.is_push or not q.subscribers:
        raise APIError(400, f"queue {queue!r} is not a push queue with subscribers")
    names = _names(q, ask.subscribers)
    m = _kept(state, q, message_id) if message_id else None
    if m is not None:
        busy = _busy(state, m)
        if busy and (q.unicast or set(names) <= busy):
            # Already on its way again (a repeated replay): nothing to do, not an error.
            done = {"message_id": m.id, "how": "already being pushed", "subscribers": names}
            return done, ledger.take()
        names = [n for n in names if n not in busy]
        state.push.repush(m, q, names)
        return {"message_id": m.id, "how": "same message", "subscribers": names}, ledger.take()
    if ask.body is None:
        raise APIError(
            404,
            f"message {message_id} is no longer kept by the dev server (finished_retention): "
            "give its body to post it again",
        )
    [new_id] = ledger.post(project, queue, [NewMessage(ask.body, 0.0, dict(ask.push_headers))])
    others = {s.name for s in q.subscribers} - set(names)
    if others:
        state.push.drop_subscribers(ledger.live[new_id], q, others)
    done = {"message_id": new_id, "how": "new message", "subscribers": names}
    return done, ledger.take()


def _names(q: QueueRecord, wanted: Sequence[str]) -> list[str]:
    known = [s.name for s in q.subscribers]
    for name in wanted:
        if name not in known:
            raise APIError(404, f"queue {q.name!r} has no subscriber {name!r}")
    return [n for n in known if not wanted or n in wanted]  # in the queue's order


def _kept(state: BrokerState, q: QueueRecord, message_id: str) -> MessageRecord | None:
    m = state.ledger.kept(q, message_id)
    if m is not None and m.push is None:
        raise APIError(400, f"message {message_id} was not pushed (posted before subscribers?)")
    return m


def _busy(state: BrokerState, m: MessageRecord) -> set[str]:
    """Subscribers ``m`` is still being pushed to."""
    if state.ledger.alive(m) is None:
        return set()
    return {p.name for p in m.push or () if p.status in PENDING or p.in_flight}
