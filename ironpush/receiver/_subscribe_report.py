"""What registering a router did: :class:`SubscribeReport`, one :class:`Change` per route and
the :class:`Stale` subscribers found (see :mod:`._registration`). Readable as text and as the
CLI's JSON, secrets masked::

    report = subscribe_app(router, "https://api.example.com/ironmq")
    [(c.queue, c.subscriber, c.action) for c in report.changes]   # [("orders", "billing", ...)]
    print(report.text())
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Any, Literal

from .._redact import redact_subscriber, redact_url
from ..client._models import Subscriber
from ._routes import Subscription

Action = Literal["created", "added", "updated", "settings", "unchanged"]


@dataclass(frozen=True, slots=True)
class Change:
    """What registration did (or would do) for one route's subscriber: ``action`` is
    ``created`` (the queue, with it), ``added``, ``updated``, ``settings`` (the queue's push
    settings only) or ``unchanged``; ``detail`` says what changed (URLs masked)."""

    queue: str
    subscriber: str
    action: Action
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Stale:
    """A subscriber under the router's base URL that no route declares any more.

    ``removed`` is true when it was pruned (on a dry run: when it would be).
    """

    queue: str
    subscriber: Subscriber
    removed: bool = False

    def text(self, *, dry_run: bool) -> str:
        name = self.subscriber.name
        if self.removed:
            verb = "would remove" if dry_run else "removed"
            return f"{self.queue}: {name} {verb} (stale, {redact_url(self.subscriber.url)})"
        command = f"ironpush unsubscribe {shlex.quote(self.queue)} {shlex.quote(name)}"
        return f"stale: {name} — remove with `{command}` or rerun with `--prune`"


@dataclass(slots=True)
class SubscribeReport:
    """What :func:`subscribe_app` found and changed.

    ``changes`` has one :class:`Change` per route (``created``/``added``/``updated``/
    ``settings``/``unchanged``), ``stale`` the subscribers no route declares any more
    (``removed`` when pruned), ``checked`` the queues looked at for them, ``warnings`` what
    to fix in the router that IronMQ accepted anyway (a retry budget shorter than twice the
    claim lease). ``text()`` and ``as_json()`` are what the CLI prints (secrets masked)::

        report = subscribe_app(router, "https://api.example.com/ironmq", dry_run=True)
        [(c.queue, c.subscriber, c.action) for c in report.changes]
    """

    dry_run: bool
    changes: list[Change] = field(default_factory=list)
    subscriptions: list[Subscription] = field(default_factory=list, repr=False)
    stale: list[Stale] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)
    scan_all: bool = False
    #: ``(queue, subscriber)`` of the ``ironpush listen`` relays found on the checked queues:
    #: temporary, never stale (``ironpush listen --cleanup`` removes those of crashed listeners).
    listeners: list[tuple[str, Subscriber]] = field(default_factory=list)

    @property
    def changed(self) -> int:
        """How many routes' subscribers (or queues) were changed."""
        return sum(c.action != "unchanged" for c in self.changes)

    def as_json(self) -> dict[str, Any]:
        """``{"dry_run", "changed", "changes": [...], "stale": [...], "warnings", "checked",
        "listeners": [...]}``."""
        subs = {(s.queue, s.subscriber.name): s.subscriber for s in self.subscriptions}
        return {
            "dry_run": self.dry_run,
            "changed": self.changed,
            "changes": [
                {
                    "queue": c.queue,
                    "subscriber": redact_subscriber(subs[(c.queue, c.subscriber)]),
                    "action": c.action,
                    "detail": c.detail,
                }
                for c in self.changes
            ],
            "stale": [
                {
                    "queue": s.queue,
                    "subscriber": redact_subscriber(s.subscriber),
                    "action": "removed" if s.removed else "stale",
                }
                for s in self.stale
            ],
            "warnings": list(self.warnings),
            "checked": list(self.checked),
            "listeners": [
                {"queue": queue, "subscriber": redact_subscriber(sub)}
                for queue, sub in self.listeners
            ],
        }

    def text(self) -> str:
        verb = "would change" if self.dry_run else "changed"
        lines = [
            f"{c.queue}: {c.subscriber} {c.action}{' — ' + c.detail if c.detail else ''}"
            for c in self.changes
        ]
        lines += [s.text(dry_run=self.dry_run) for s in self.stale]
        lines += [
            f"listener: {sub.name} on {queue} (an `ironpush listen` relay, not stale; "
            "`ironpush listen --cleanup` removes it if its listener crashed)"
            for queue, sub in self.listeners
        ]
        scope = "" if self.scan_all else " (the router's; --scan-all looks on every queue)"
        lines.append(
            f"{verb} {self.changed} of {len(self.changes)} subscription(s); looked for stale "
            f"subscribers on {len(self.checked)} queue(s){scope}"
        )
        return "\n".join(lines)
