"""Register a :class:`~ironpush.receiver.PushRouter`'s routes with IronMQ, idempotently.

``ironpush subscribe --app myservice.app:router --base-url https://api.example.com/ironmq``
calls :func:`subscribe_app`. For every route it makes sure that

- the queue exists as a push queue (created with the route's push type, ``multicast`` by
  default, and settings when it is missing),
- the route's subscriber is on it with the right URL and secret header (added or updated by
  name; other subscribers are left alone),
- the route's push settings (``retries``, ``retries_delay``, ``error_queue``) are in force,

and reports what it changed. Running it twice changes nothing the second time. A queue whose
type cannot hold the subscriber (a pull queue, or another push type than the route asks for)
is an error: v3 fixes a queue's type when it is created.

**Stale subscribers.** A route that was renamed or removed leaves its subscriber registered,
and every push to it would fail (403 or 404) until it lands on the error queue. Every push
queue of the project is checked for subscribers whose URL is under ``base_url`` but that the
router no longer declares; they are reported, and with ``prune=True`` removed. A subscriber
at another URL is never touched: it belongs to someone else. (Mount routers at paths that do
not nest, e.g. not one at ``/ironmq`` and another at ``/ironmq/admin``.)

::

    report = subscribe_app(mq, "myservice.app:router", "https://api.example.com/ironmq")
    print(report.text())   # one line per route, then "stale: mailer — remove with ..."
"""

from __future__ import annotations

import importlib
import shlex
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .._errors import NotFound, ValidationError
from .._redact import redact_url
from ..cli._rendering import subscriber_doc
from ..client._models import PushConfig, QueueInfo, Subscriber
from ..client._sync_client import IronMQ
from ._router import PushRouter, Subscription
from ._routes import lease_warning

__all__ = [
    "Change",
    "Stale",
    "SubscribeReport",
    "find_stale",
    "load_router",
    "subscribe_app",
    "sync_subscriptions",
]


@dataclass(frozen=True, slots=True)
class Change:
    """One thing ``subscribe`` did (or would do): ``action`` is ``created``, ``added``,
    ``updated``, ``settings`` or ``unchanged``."""

    queue: str
    subscriber: str
    action: str
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
    """What :func:`sync_subscriptions` found and changed.

    ``warnings`` are things to fix in the router that IronMQ accepted anyway (e.g. a retry
    budget shorter than the claim lease).
    """

    dry_run: bool
    changes: list[Change] = field(default_factory=list)
    subscriptions: list[Subscription] = field(default_factory=list)
    stale: list[Stale] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def changed(self) -> int:
        return sum(c.action != "unchanged" for c in self.changes)

    def as_json(self) -> dict[str, Any]:
        """``{"dry_run", "changed", "changes": [...], "stale": [...], "warnings": [...]}``."""
        subs = {(s.queue, s.subscriber.name): s.subscriber for s in self.subscriptions}
        return {
            "dry_run": self.dry_run,
            "changed": self.changed,
            "changes": [
                {
                    "queue": c.queue,
                    "subscriber": subscriber_doc(subs[(c.queue, c.subscriber)]),
                    "action": c.action,
                    "detail": c.detail,
                }
                for c in self.changes
            ],
            "stale": [
                {
                    "queue": s.queue,
                    "subscriber": subscriber_doc(s.subscriber),
                    "action": "removed" if s.removed else "stale",
                }
                for s in self.stale
            ],
            "warnings": list(self.warnings),
        }

    def text(self) -> str:
        verb = "would change" if self.dry_run else "changed"
        lines = [
            f"{c.queue}: {c.subscriber} {c.action}{' — ' + c.detail if c.detail else ''}"
            for c in self.changes
        ]
        lines += [s.text(dry_run=self.dry_run) for s in self.stale]
        lines.append(f"{verb} {self.changed} of {len(self.changes)} subscription(s)")
        return "\n".join(lines)


def load_router(ref: str) -> PushRouter:
    """Import ``module:attribute`` and return the :class:`PushRouter` it names."""
    module_name, sep, attr = ref.partition(":")
    if not sep or not module_name or not attr:
        raise ValidationError(f"expected MODULE:ROUTER (e.g. myservice.app:router), got {ref!r}")
    if "" not in sys.path and "." not in sys.path:
        sys.path.insert(0, "")  # like `python -m` and uvicorn: the current directory imports
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValidationError(f"cannot import {module_name!r}: {exc}") from exc
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValidationError(f"{module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not isinstance(obj, PushRouter):
        raise ValidationError(f"{ref} is a {type(obj).__name__}, not a PushRouter")
    return obj


def subscribe_app(
    client: IronMQ, ref: str, base_url: str, *, dry_run: bool = False, prune: bool = False
) -> SubscribeReport:
    """Register every route of the router ``ref`` (``module:router``) mounted at ``base_url``.

    Stale subscribers under ``base_url`` are reported, and removed with ``prune=True``; a
    route whose retry budget is too short for the router's claim lease is a warning.
    """
    router = load_router(ref)
    if not router.routes:
        raise ValidationError(f"{ref} declares no routes")
    subscriptions = router.subscriptions(base_url)
    report = sync_subscriptions(client, subscriptions, dry_run=dry_run)
    report.warnings = [
        warning
        for route in router.routes
        if (warning := lease_warning(route, router.claim_lease)) is not None
    ]
    for stale in find_stale(client, subscriptions, base_url):
        if prune and not dry_run:
            client.queue(stale.queue).remove_subscribers(stale.subscriber.name)
        report.stale.append(Stale(stale.queue, stale.subscriber, removed=prune))
    return report


def find_stale(client: IronMQ, subscriptions: list[Subscription], base_url: str) -> Iterator[Stale]:
    """Subscribers of any push queue whose URL is under ``base_url`` and no route declares."""
    declared = {(s.queue, s.subscriber.name) for s in subscriptions}
    for name in client.iter_queues():
        info = _info(client, name)
        if info is None or not info.is_push:
            continue
        for sub in info.subscribers:
            if (name, sub.name) not in declared and _under(sub.url, base_url):
                yield Stale(name, sub)


def _under(url: str, base_url: str) -> bool:
    """``url`` (query and fragment aside) is ``base_url`` or a path below it."""
    parts = urlsplit(url)
    bare = urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")).rstrip("/")
    base = base_url.rstrip("/")
    return bare == base or bare.startswith(base + "/")


def sync_subscriptions(
    client: IronMQ, subscriptions: list[Subscription], *, dry_run: bool = False
) -> SubscribeReport:
    """Bring IronMQ in line with ``subscriptions``; see the module docstring."""
    report = SubscribeReport(dry_run=dry_run, subscriptions=list(subscriptions))
    infos: dict[str, QueueInfo | None] = {}
    for sub in subscriptions:
        if sub.queue not in infos:
            infos[sub.queue] = _info(client, sub.queue)
        info = infos[sub.queue]
        change = _sync_one(client, sub, info, dry_run=dry_run)
        report.changes.append(change)
        if change.action != "unchanged" and not dry_run:
            infos[sub.queue] = _info(client, sub.queue)
        elif change.action == "created":  # a dry run: later routes see the queue as planned
            infos[sub.queue] = _planned(sub)
    return report


def _info(client: IronMQ, queue: str) -> QueueInfo | None:
    try:
        return client.queue(queue).info()
    except NotFound:
        return None


def _planned(sub: Subscription) -> QueueInfo:
    return QueueInfo(
        name=sub.queue,
        type=sub.push_type or "multicast",
        push=PushConfig(
            subscribers=(sub.subscriber,),
            retries=sub.retries,
            retries_delay=sub.retries_delay,
            error_queue=sub.error_queue,
        ),
    )


def _sync_one(
    client: IronMQ, sub: Subscription, info: QueueInfo | None, *, dry_run: bool
) -> Change:
    name, url = sub.subscriber.name, redact_url(sub.subscriber.url)
    settings = {k: v for k, v in sub.push_settings.items() if k != "push_type"}
    if info is None:
        if not dry_run:
            client.create_queue(
                sub.queue,
                type=sub.push_type or "multicast",
                subscribers=[sub.subscriber],
                **settings,
            )
        return Change(sub.queue, name, "created", f"{sub.push_type or 'multicast'} queue, {url}")
    if not info.is_push:
        raise ValidationError(
            f"queue {sub.queue!r} is a pull queue; v3 cannot add subscribers to it "
            "(delete it or route another queue)"
        )
    if sub.push_type and info.type != sub.push_type:
        raise ValidationError(
            f"queue {sub.queue!r} is {info.type} but the route asks for {sub.push_type}; "
            "v3 cannot change a queue's type"
        )
    current = {s.name: s for s in info.subscribers}.get(name)
    action, detail = "unchanged", ""
    if current is None:
        action, detail = "added", url
    elif current.url != sub.subscriber.url or dict(current.headers) != dict(sub.subscriber.headers):
        action, detail = "updated", _difference(current.url, sub.subscriber.url)
    if action != "unchanged" and not dry_run:
        client.queue(sub.queue).add_subscribers(sub.subscriber)
    outdated = _outdated_settings(info, settings)
    if outdated:
        if not dry_run:
            client.update_queue(sub.queue, **outdated)
        note = "settings " + ", ".join(f"{k}={v}" for k, v in outdated.items())
        detail = f"{detail}; {note}" if detail else note
        action = action if action != "unchanged" else "settings"
    return Change(sub.queue, name, action, detail)


def _difference(old_url: str, new_url: str) -> str:
    if old_url != new_url:
        return f"{redact_url(old_url)} -> {redact_url(new_url)}"
    return "secret header rotated"


def _outdated_settings(info: QueueInfo, wanted: dict[str, Any]) -> dict[str, Any]:
    push = info.push
    current = {
        "retries": push.retries if push else None,
        "retries_delay": push.retries_delay if push else None,
        "error_queue": push.error_queue if push else None,
    }
    return {k: v for k, v in wanted.items() if current.get(k) != v}
