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

::

    replay(engine.store, engine.pusher, "dev", "orders", "6295…", subscribers=["billing"])
    # {"message_id": "6295…", "how": "same message", "subscribers": ["billing"]}
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .._errors import APIError
from ._entities import PENDING, MessageState, PushState, QueueState
from ._validation import NewMessage

if TYPE_CHECKING:
    from ._pusher import Pusher
    from ._state import Store

__all__ = ["push_headers_from_report", "replay"]

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


def replay(
    store: Store,
    pusher: Pusher,
    project: str,
    queue: str,
    message_id: str | None,
    *,
    subscribers: Sequence[str] = (),
    body: str | None = None,
    push_headers: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Push ``message_id`` again (or post ``body`` anew) to ``subscribers`` (default: all)."""
    q = store.queue(project, queue)
    if not q.is_push or not q.subscribers:
        raise APIError(400, f"queue {queue!r} is not a push queue with subscribers")
    names = _names(q, subscribers)
    m = _kept(store, q, message_id) if message_id else None
    if m is not None:
        busy = _busy(store, q, m)
        if busy and (q.type == "unicast" or set(names) <= busy):
            # Already on its way again (a repeated replay): nothing to do, not an error.
            return {"message_id": m.id, "how": "already being pushed", "subscribers": names}
        names = [n for n in names if n not in busy]
        _repush(store, pusher, q, m, names)
        pusher.journal.replayed(m, names, how="same message")
        return {"message_id": m.id, "how": "same message", "subscribers": names}
    if body is None:
        raise APIError(
            404,
            f"message {message_id} is no longer kept by the dev server (finished_retention): "
            "give its body to post it again",
        )
    [new_id] = store.post(project, queue, [NewMessage(body, 0.0, dict(push_headers or {}))])
    new = store.live[new_id]
    others = {s.name for s in q.subscribers} - set(names)
    if others:
        pusher.drop_subscribers(new, q, others)
    pusher.journal.replayed(new, names, how="new message", source_id=message_id)
    return {"message_id": new_id, "how": "new message", "subscribers": names}


def _names(q: QueueState, wanted: Sequence[str]) -> list[str]:
    known = [s.name for s in q.subscribers]
    for name in wanted:
        if name not in known:
            raise APIError(404, f"queue {q.name!r} has no subscriber {name!r}")
    return [n for n in known if not wanted or n in wanted]  # in the queue's order


def _kept(store: Store, q: QueueState, message_id: str) -> MessageState | None:
    m = store.live.get(message_id) or store.finished.get(message_id)
    if m is None or (m.project, m.queue) != (q.project, q.name):
        return None
    if m.push is None:
        raise APIError(400, f"message {message_id} was not pushed (posted before subscribers?)")
    return m


def _busy(store: Store, q: QueueState, m: MessageState) -> set[str]:
    """Subscribers ``m`` is still being pushed to."""
    if store.alive(m) is None:
        return set()
    return {ps.name for ps in m.push or () if ps.status in PENDING or ps.in_flight}


def _repush(store: Store, pusher: Pusher, q: QueueState, m: MessageState, names: list[str]) -> None:
    if store.alive(m) is None:
        store.revive(q, m)  # a finished message comes back to its queue, being pushed
    fresh = {n: PushState(n, _url(q, n), retries_remaining=q.retries) for n in names}
    if q.type == "unicast":
        m.push, m.push_round = list(fresh.values()), 0
        pusher.schedule_round(m, time.time())
    else:
        kept = [ps for ps in m.push or () if ps.name not in fresh]
        m.push = kept + list(fresh.values())
        for ps in fresh.values():
            pusher.schedule_try(m, ps, time.time())
    store.save(m)


def _url(q: QueueState, name: str) -> str:
    sub = q.subscriber(name)
    return sub.url if sub is not None else ""
