"""Creating a listener's relays, removing them, and finding the ones a crash left behind.

Order matters both ways. Opening creates the relay queue first, then adds the subscriber;
closing removes the subscriber first, then deletes the queue: IronMQ creates a queue that a
subscriber posts into, so a subscriber left without its queue would bring the queue back. A
crash between the steps leaves a relay queue without a subscriber at worst, which
``--cleanup`` finds by name. Subscribers are added and removed by name with IronMQ's
subscriber calls (``POST``/``DELETE …/subscribers``), never by writing the list back, so
concurrent changes to the push queue's other subscribers are never lost::

    await open_relays(mq, relays)
    ...
    problems = await close_relays(mq, relays)   # [] when everything was removed
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._errors import IronPushError, NotFound
from ..client._async_client import AsyncIronMQ
from ..client._models import QueueInfo
from . import _locks as locks
from ._names import MARK, RelayName, listener_of
from ._plan import Relay
from ._settings import RELAY_EXPIRATION


async def open_relays(mq: AsyncIronMQ, relays: Sequence[Relay]) -> None:
    """Create each relay queue, then add its subscriber; on a failure, undo what was done."""
    opened: list[Relay] = []
    try:
        for relay in relays:
            await mq.create_queue(
                relay.relay_queue, type="pull", message_expiration=RELAY_EXPIRATION
            )
            opened.append(relay)
            await mq.queue(relay.queue).add_subscribers(relay.listener)
    except BaseException:
        with contextlib.suppress(Exception):
            await close_relays(mq, opened)
        raise


async def close_relays(mq: AsyncIronMQ, relays: Sequence[Relay]) -> list[str]:
    """Remove each relay's subscriber, then its queue; what could not be removed (one line each)."""
    problems: list[str] = []
    for relay in relays:
        problems += await _remove(mq, relay.name)
    return problems


async def _remove(mq: AsyncIronMQ, name: RelayName, *, subscriber: bool = True) -> list[str]:
    problems: list[str] = []
    if subscriber:
        try:
            await mq.queue(name.queue).remove_subscribers(name.subscriber_name)
        except NotFound:
            pass  # the queue or the subscriber is gone already
        except IronPushError as exc:
            problems.append(f"subscriber {name.subscriber_name} of {name.queue}: {exc}")
            return problems  # keep the queue: deleting it first would let the subscriber re-make it
    try:
        await mq.delete_queue(name.relay_queue)
    except NotFound:
        pass
    except IronPushError as exc:
        problems.append(f"queue {name.relay_queue}: {exc}")
    return problems


# --------------------------------------------------------------------------- --cleanup


@dataclass(frozen=True, slots=True)
class Leftover:
    """A listener's relay found on the project: its names, whether its relay queue and its
    subscriber exist, and why it is kept (``None``: it is removable)."""

    name: RelayName
    queue_exists: bool
    subscriber_exists: bool
    kept: str | None = None

    def doc(self) -> dict[str, Any]:
        return {
            "queue": self.name.queue,
            "relay_queue": self.name.relay_queue if self.queue_exists else None,
            "subscriber": self.name.subscriber_name if self.subscriber_exists else None,
            "host": self.name.host,
            "listener": self.name.listener,
            "kept": self.kept,
        }

    def text(self, *, removed: bool) -> str:
        parts = []
        if self.subscriber_exists:
            parts.append(f"subscriber {self.name.subscriber_name} of {self.name.queue}")
        if self.queue_exists:
            parts.append(f"queue {self.name.relay_queue}")
        what = " and ".join(parts)
        if self.kept is not None:
            return f"kept {what}: {self.kept}"
        return f"{'removed' if removed else 'would remove'} {what}"


@dataclass(slots=True)
class Cleanup:
    """What ``--cleanup`` found: ``removed`` (or removable, on a dry run), ``kept``, problems."""

    dry_run: bool
    removed: list[Leftover] = field(default_factory=list)
    kept: list[Leftover] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "removed": [x.doc() for x in self.removed],
            "kept": [x.doc() for x in self.kept],
            "problems": list(self.problems),
        }

    def text(self) -> str:
        lines = [x.text(removed=not self.dry_run) for x in [*self.removed, *self.kept]]
        lines += [f"could not remove {p}" for p in self.problems]
        verb = "would remove" if self.dry_run else "removed"
        lines.append(
            f"{verb} {len(self.removed)} stale listener relay(s); kept {len(self.kept)} "
            "(running, or another machine's)"
        )
        return "\n".join(lines)


async def find_leftovers(
    mq: AsyncIronMQ, *, host: str, any_host: bool, queues: Iterable[str] = ()
) -> list[Leftover]:
    """Every listener relay on the project: relay queues found by name (one list of the
    project's queues), their push queues' listener subscribers, and those of ``queues``."""
    names: dict[str, RelayName] = {}
    async for queue in mq.iter_queues():
        if MARK in queue and (name := RelayName.parse(queue)) is not None:
            names[name.relay_queue] = name
    existing = set(names)
    subscribed: set[str] = set()
    for queue in dict.fromkeys([*(n.queue for n in names.values()), *queues]):
        info = await _info(mq, queue)
        for sub in info.subscribers if info is not None else ():
            name = listener_of(sub.url)
            if name is not None and name.queue == queue and sub.name == name.subscriber_name:
                names.setdefault(name.relay_queue, name)
                subscribed.add(name.relay_queue)
    return [
        Leftover(name, key in existing, key in subscribed, _kept(name, host, any_host))
        for key, name in sorted(names.items())
    ]


def _kept(name: RelayName, host: str, any_host: bool) -> str | None:
    """Why a relay must stay: its listener runs here, or it is another machine's."""
    if name.host != host:
        return None if any_host else f"listener of host {name.host!r} (--any-host removes it)"
    if locks.is_running(name.listener):
        pid = locks.running_info(name.listener).get("pid")
        return f"its listener is running (pid {pid})" if pid else "its listener is running"
    return None


async def _info(mq: AsyncIronMQ, queue: str) -> QueueInfo | None:
    try:
        return await mq.queue(queue).info()
    except NotFound:
        return None


async def clean(mq: AsyncIronMQ, found: Sequence[Leftover], *, host: str, dry_run: bool) -> Cleanup:
    """Remove every removable leftover of ``found`` (subscriber first, then queue) and the
    lock files of this machine's listeners that were removed."""
    report = Cleanup(dry_run=dry_run)
    for leftover in found:
        if leftover.kept is not None:
            report.kept.append(leftover)
            continue
        report.removed.append(leftover)
        if dry_run:
            continue
        report.problems += await _remove(mq, leftover.name, subscriber=leftover.subscriber_exists)
        if leftover.name.host == host:
            locks.forget(leftover.name.listener)
    return report
