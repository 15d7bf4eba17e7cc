"""Register a :class:`~ironpush.PushRouter`'s routes with IronMQ, idempotently:
:func:`subscribe_app` and its async twin :func:`subscribe_app_async` (what ``ironpush subscribe
--app`` runs). For every route it makes sure that

- the queue exists as a push queue (created with the route's push type, ``multicast`` by
  default, and settings when it is missing),
- the route's subscriber is on it with the right URL and secret header (added or updated by
  name; other subscribers are left alone),
- the route's push settings (``retries``, ``retries_delay``, ``error_queue``) are in force,

and reports what it changed. Running it twice changes nothing the second time. A queue whose
type cannot hold the subscriber (a pull queue, or another push type than the route asks for)
is refused before anything is changed: v3 fixes a queue's type when it is created.

**Stale subscribers.** A route that was renamed or removed leaves its subscriber registered,
and every push to it would fail (403 or 404) until it lands on the error queue. The queues the
router declares are checked for subscribers whose URL is under ``base_url`` but that no route
declares; they are reported, and with ``prune=True`` removed. A subscriber at another URL is
never touched: it belongs to someone else. (Mount routers at paths that do not nest, e.g. not
one at ``/ironmq`` and another at ``/ironmq/admin``.) IronMQ's queue list carries names only,
so a subscriber left on a queue *no route declares any more* is found only with
``scan_all=True``, which reads every queue of the project, one request per queue. Without it,
a run costs one request per declared queue plus one per change, whatever the size of the
project.

The work is one sans-I/O operation (:func:`registration`) that both client twins drive, so
the sync and async functions cannot differ::

    report = subscribe_app(router, "https://api.example.com/ironmq")
    print(report.text())   # one line per route, then "stale: mailer — remove with ..."
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .._errors import ConfigError, NotFound, ValidationError
from .._listen._names import listener_of
from .._redact import redact_url
from .._refs import import_ref
from ..client import _operations as ops
from ..client._async_client import AsyncIronMQ
from ..client._models import PushConfig, QueueInfo, Subscriber
from ..client._operations import Op
from ..client._sync_client import IronMQ
from ._router import PushRouter
from ._routes import Subscription, lease_warning
from ._subscribe_report import Action, Change, Stale
from ._subscribe_report import SubscribeReport as SubscribeReport  # where callers found it

#: URL schemes IronMQ pushes to (protocol §3.1); a base URL must be HTTP.
SUBSCRIBER_SCHEMES = ("http", "https", "ironmq", "ironworker")
_HTTP = ("http", "https")
_LIST_PAGE = 100


# --------------------------------------------------------------------------- public functions


def subscribe_app(
    router: PushRouter,
    base_url: str,
    *,
    client: IronMQ | None = None,
    prune: bool = False,
    dry_run: bool = False,
    scan_all: bool = False,
) -> SubscribeReport:
    """Register every route of ``router``, mounted at the public URL ``base_url``, with IronMQ.

    Creates missing push queues, adds or updates each route's subscriber (URL and signed
    secret header) and push settings, and reports stale subscribers under ``base_url``
    (removed with ``prune=True``); ``dry_run=True`` changes nothing and reports what would
    change. ``client`` defaults to an :class:`~ironpush.IronMQ` from the configuration
    (closed afterwards). A bad ``base_url`` or a router without routes raises
    :class:`~ironpush.ValidationError` before any request. Deploy scripts, tests and
    management commands use it as ``ironpush subscribe --app`` does::

        from ironpush import subscribe_app
        from myservice.app import router

        report = subscribe_app(router, "https://api.example.com/ironmq", prune=True)
        print(report.text())
    """
    op = registration(router, base_url, prune=prune, dry_run=dry_run, scan_all=scan_all)
    if client is not None:
        return client.run(op)
    with IronMQ() as mq:
        return mq.run(op)


async def subscribe_app_async(
    router: PushRouter,
    base_url: str,
    *,
    client: AsyncIronMQ | None = None,
    prune: bool = False,
    dry_run: bool = False,
    scan_all: bool = False,
) -> SubscribeReport:
    """:func:`subscribe_app` for async code (an :class:`~ironpush.AsyncIronMQ` client)::

    report = await subscribe_app_async(router, "https://api.example.com/ironmq")
    """
    op = registration(router, base_url, prune=prune, dry_run=dry_run, scan_all=scan_all)
    if client is not None:
        return await client.run(op)
    async with AsyncIronMQ() as mq:
        return await mq.run(op)


def sync_subscriptions(
    client: IronMQ, subscriptions: list[Subscription], *, dry_run: bool = False
) -> SubscribeReport:
    """Bring IronMQ in line with ``subscriptions`` (no stale check): ``subscribe QUEUE URL``."""
    report = SubscribeReport(dry_run=dry_run)
    client.run(_sync_all(subscriptions, report))
    return report


def registration(
    router: PushRouter, base_url: str, *, prune: bool, dry_run: bool, scan_all: bool
) -> Op[SubscribeReport]:
    """The sans-I/O registration both twins drive. Checks ``base_url`` and the router now,
    before the first request (the generator starts only when a client drives it)."""
    check_base_url(base_url)
    if not router.routes:
        raise ValidationError(f"{router!r} declares no routes")
    subscriptions = router.subscriptions(base_url)
    report = SubscribeReport(dry_run=dry_run, subscriptions=list(subscriptions), scan_all=scan_all)
    report.warnings = [
        warning
        for route in router.routes
        if (warning := lease_warning(route, router.claim_lease)) is not None
    ]
    return _register(report, base_url, prune=prune, scan_all=scan_all)


# --------------------------------------------------------------------------- checks


def check_base_url(url: str) -> str:
    """``url`` if it is an ``http(s)://host/...`` URL without query or fragment, else
    :class:`~ironpush.ValidationError` with the URL it probably meant."""
    parts = urlsplit(url)
    if parts.scheme in _HTTP and parts.netloc and not parts.query and not parts.fragment:
        return url
    if parts.query or parts.fragment:
        raise ValidationError(f"base URL {redact_url(url)!r} must not have a query or fragment")
    raise ValidationError(
        f"base URL {redact_url(url)!r} needs http:// or https:// and a host, e.g. "
        f"{_with_scheme(url)}"
    )


def check_subscriber_url(url: str) -> str:
    """``url`` if IronMQ can push to it (``http(s)://``, ``ironmq://``, ``ironworker://``)."""
    parts = urlsplit(url)
    if parts.scheme in SUBSCRIBER_SCHEMES and (parts.netloc or parts.scheme == "ironmq"):
        return url
    raise ValidationError(
        f"subscriber URL {redact_url(url)!r} needs a scheme IronMQ pushes to "
        f"({', '.join(s + '://' for s in SUBSCRIBER_SCHEMES)}), e.g. {_with_scheme(url)}"
    )


def _with_scheme(url: str) -> str:
    """The URL a scheme-less ``url`` probably meant (http for local hosts, else https)."""
    bare = url.split("://", 1)[-1].lstrip("/") or "api.example.com/ironmq"
    local = bare.startswith(("127.", "localhost", "0.0.0.0", "[::1]"))  # noqa: S104 - a name
    return ("http://" if local else "https://") + redact_url(bare)


def load_router(ref: str) -> PushRouter:
    """Import ``module:attribute`` and return the :class:`PushRouter` it names."""
    module_name, sep, attr = ref.partition(":")
    if not sep or not module_name or not attr:
        raise ValidationError(f"expected MODULE:ROUTER (e.g. myservice.app:router), got {ref!r}")
    try:
        obj, _module = import_ref(ref)
    except ConfigError as exc:
        raise ValidationError(str(exc)) from exc
    if not isinstance(obj, PushRouter):
        raise ValidationError(f"{ref} is a {type(obj).__name__}, not a PushRouter")
    return obj


# --------------------------------------------------------------------------- the operation


def _register(
    report: SubscribeReport, base_url: str, *, prune: bool, scan_all: bool
) -> Op[SubscribeReport]:
    checked = yield from _sync_all(report.subscriptions, report)
    if scan_all:
        for name in (yield from _all_queue_names()):
            if name not in checked:
                checked[name] = yield from _info(name)
    declared = {(s.queue, s.subscriber.name) for s in report.subscriptions}
    stale = [
        Stale(name, sub, removed=prune)
        for name, info in checked.items()
        if info is not None and info.is_push
        for sub in info.subscribers
        if (name, sub.name) not in declared and _under(sub.url, base_url)
    ]
    if prune and not report.dry_run:
        for queue in dict.fromkeys(s.queue for s in stale):
            names = [s.subscriber.name for s in stale if s.queue == queue]
            yield from ops.remove_subscribers(queue, names)
    report.stale = stale
    report.checked = list(checked)
    report.listeners = [
        (name, sub)
        for name, info in checked.items()
        if info is not None
        for sub in info.subscribers
        if listener_of(sub.url) is not None
    ]
    return report


def _sync_all(
    subscriptions: Iterable[Subscription], report: SubscribeReport
) -> Op[dict[str, QueueInfo | None]]:
    """Read each queue once, refuse impossible routes before any change, then apply; the
    queues as registration leaves them (on a dry run: would leave them)."""
    subscriptions = list(subscriptions)
    report.subscriptions = subscriptions
    infos: dict[str, QueueInfo | None] = {}
    for sub in subscriptions:
        if sub.queue not in infos:
            infos[sub.queue] = yield from _info(sub.queue)
    for sub in subscriptions:
        _check_type(sub, infos[sub.queue], subscriptions)
    for sub in subscriptions:
        change, after = yield from _sync_one(sub, infos[sub.queue], dry_run=report.dry_run)
        report.changes.append(change)
        infos[sub.queue] = after
    return infos


def _check_type(sub: Subscription, info: QueueInfo | None, all_subs: list[Subscription]) -> None:
    if info is None:
        wanted = {s.push_type for s in all_subs if s.queue == sub.queue and s.push_type}
        if len(wanted) > 1:
            raise ValidationError(
                f"routes of queue {sub.queue!r} ask for different push types: {sorted(wanted)}"
            )
        return
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


def _info(queue: str) -> Op[QueueInfo | None]:
    try:
        return (yield from ops.get_queue(queue))
    except NotFound:
        return None


def _all_queue_names() -> Op[list[str]]:
    names: list[str] = []
    previous: str | None = None
    while True:
        page = yield from ops.list_queues(per_page=_LIST_PAGE, previous=previous)
        names += page
        if len(page) < _LIST_PAGE:
            return names
        previous = page[-1]


def _sync_one(
    sub: Subscription, info: QueueInfo | None, *, dry_run: bool
) -> Op[tuple[Change, QueueInfo]]:
    """One route's subscriber and settings: the change, and the queue as it is afterwards."""
    name, url = sub.subscriber.name, redact_url(sub.subscriber.url)
    settings = {k: v for k, v in sub.push_settings.items() if k != "push_type"}
    if info is None:
        push_type = sub.push_type or "multicast"
        if not dry_run:
            yield from ops.create_queue(
                sub.queue, type=push_type, subscribers=[sub.subscriber], **settings
            )
        after = QueueInfo(name=sub.queue, type=push_type, push=PushConfig(subscribers=()))
        return Change(sub.queue, name, "created", f"{push_type} queue, {url}"), _applied(
            after, sub.subscriber, settings
        )
    current = {s.name: s for s in info.subscribers}.get(name)
    action: Action = "unchanged"
    detail = ""
    if current is None:
        action, detail = "added", url
    elif current.url != sub.subscriber.url or dict(current.headers) != dict(sub.subscriber.headers):
        action, detail = "updated", _difference(current.url, sub.subscriber.url)
    if action != "unchanged" and not dry_run:
        yield from ops.add_subscribers(sub.queue, [sub.subscriber])
    outdated = _outdated_settings(info, settings)
    if outdated:
        if not dry_run:
            yield from ops.update_queue(sub.queue, **outdated)
        note = "settings " + ", ".join(f"{k}={v}" for k, v in outdated.items())
        detail = f"{detail}; {note}" if detail else note
        action = action if action != "unchanged" else "settings"
    added = sub.subscriber if action in ("added", "updated") else None
    return Change(sub.queue, name, action, detail), _applied(info, added, outdated)


def _applied(info: QueueInfo, subscriber: Subscriber | None, settings: dict[str, Any]) -> QueueInfo:
    """``info`` with ``subscriber`` added or replaced (by name) and ``settings`` set: what the
    queue is after the calls, without reading it again."""
    push = info.push or PushConfig()
    subs = push.subscribers
    if subscriber is not None:
        kept = [s for s in subs if s.name != subscriber.name]
        at = next((i for i, s in enumerate(subs) if s.name == subscriber.name), len(kept))
        subs = (*kept[:at], subscriber, *kept[at:])
    return replace(info, push=replace(push, subscribers=tuple(subs), **settings))


def _under(url: str, base_url: str) -> bool:
    """``url`` (query and fragment aside) is ``base_url`` or a path below it."""
    parts = urlsplit(url)
    bare = urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")).rstrip("/")
    base = base_url.rstrip("/")
    return bare == base or bare.startswith(base + "/")


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
