"""What a listener relays, and the queues it refuses, decided before anything is created.

A :class:`Target` says where one push queue's messages go on this machine (URL, the
``Iron-Subscriber-Name`` to send, the subscriber's custom headers); :func:`plan` reads the
queues' settings and turns targets into :class:`Relay` records, or refuses with one line::

    relays = plan(targets, infos, host="laptop", listener="1a2b3c4d", allow_unicast=False)
    relays[0].name.relay_queue   # 'orders--listen-laptop-1a2b3c4d'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._errors import ValidationError
from .._protocol import DEFAULT_RETRIES, DEFAULT_RETRIES_DELAY
from .._redact import masked_repr, redact_headers, redact_url
from ..client._models import QueueInfo, Subscriber
from ._names import RelayName


@dataclass(frozen=True, slots=True)
class Target:
    """One push queue's messages, forwarded to ``url`` as subscriber ``subscriber`` (None: the
    listener's own subscriber name) with ``headers``; ``copy_from`` names an existing
    subscriber of the queue whose name and custom headers are sent instead (``--as``)."""

    queue: str
    url: str
    subscriber: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    copy_from: str | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        return masked_repr(self, url=redact_url, headers=redact_headers)


@dataclass(frozen=True, slots=True)
class Relay:
    """One relay: the target, its names, and the push queue's retry settings it applies."""

    target: Target
    name: RelayName
    retries: int
    retries_delay: float
    error_queue: str | None

    @property
    def queue(self) -> str:
        return self.target.queue

    @property
    def relay_queue(self) -> str:
        return self.name.relay_queue

    @property
    def subscriber(self) -> str:
        """The ``Iron-Subscriber-Name`` the local service receives."""
        return self.target.subscriber or self.name.subscriber_name

    @property
    def listener(self) -> Subscriber:
        """The extra subscriber added to the push queue."""
        return Subscriber(name=self.name.subscriber_name, url=self.name.subscriber_url)

    def doc(self) -> dict[str, Any]:
        """The relay as JSON (secrets masked)."""
        return {
            "queue": self.queue,
            "relay_queue": self.relay_queue,
            "listener": self.listener.to_json(),
            "forward_to": redact_url(self.target.url),
            "subscriber": self.subscriber,
            "headers": redact_headers(self.target.headers),
            "retries": self.retries,
            "retries_delay": float(self.retries_delay),
            "error_queue": self.error_queue,
        }

    def text(self) -> str:
        return (
            f"{self.queue} → {redact_url(self.target.url)} as {self.subscriber} "
            f"(relay queue {self.relay_queue}, subscriber {self.name.subscriber_name}; "
            f"{self.retries} retries every {self.retries_delay:g}s)"
        )


def plan(
    targets: Sequence[Target],
    infos: Mapping[str, QueueInfo | None],
    *,
    host: str,
    listener: str,
    allow_unicast: bool,
) -> list[Relay]:
    """The relays for ``targets`` given the queues' ``infos`` (None: missing); raises
    :class:`~ironpush.ValidationError` with one line for a queue that cannot be relayed."""
    relays: list[Relay] = []
    per_queue: dict[str, int] = {}
    for target in targets:
        info = infos.get(target.queue)
        _check(target.queue, info, allow_unicast=allow_unicast)
        assert info is not None
        assert info.push is not None
        target = _resolved(target, info)
        index = per_queue[target.queue] = per_queue.get(target.queue, 0) + 1
        push = info.push
        relays.append(
            Relay(
                target=target,
                name=RelayName(target.queue, host, listener, index),
                retries=DEFAULT_RETRIES if push.retries is None else push.retries,
                retries_delay=(
                    DEFAULT_RETRIES_DELAY if push.retries_delay is None else push.retries_delay
                ),
                error_queue=push.error_queue or None,
            )
        )
    return relays


def _check(queue: str, info: QueueInfo | None, *, allow_unicast: bool) -> None:
    if info is None:
        raise ValidationError(
            f"queue {queue!r} does not exist: listen relays an existing push queue "
            "(`ironpush subscribe` creates one)"
        )
    if not info.is_push or info.push is None:
        raise ValidationError(
            f"queue {queue!r} is a pull queue: IronMQ pushes nothing from it "
            "(listen relays push queues)"
        )
    if info.type == "unicast" and not allow_unicast:
        raise ValidationError(
            f"queue {queue!r} is unicast: IronMQ gives each message to one subscriber, so a "
            "listener would take real messages away from production; --allow-unicast relays "
            "it anyway"
        )


def _resolved(target: Target, info: QueueInfo) -> Target:
    """``target`` with ``copy_from``'s name and headers (the given headers win)."""
    if target.copy_from is None:
        return target
    found = {s.name: s for s in info.subscribers}.get(target.copy_from)
    if found is None:
        names = ", ".join(s.name for s in info.subscribers) or "none"
        raise ValidationError(
            f"queue {target.queue!r} has no subscriber {target.copy_from!r} (--as); it has: {names}"
        )
    headers = {**found.headers, **target.headers}
    return Target(target.queue, target.url, found.name, headers)
