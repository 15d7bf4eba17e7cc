"""Queue administration on the :class:`~._ledger.Ledger`: settings, subscribers and alerts.

v3 rules enforced here: a push queue is created explicitly with at least one subscriber, a
queue's type never changes, pull queues take no subscribers or push settings, push queues take
no alerts (400 ``Push queues do not support alerts.``) and no ``dead_letter``. Alerts are stored
and listed (ids assigned by the server) but never fire: the dev server does not send alerts.
Alerts in a ``PATCH`` are added (iron-mq 0.9 ``add_alerts``); in a ``PUT`` on an existing
queue they replace the queue's alerts (iron-mq 0.9 ``update_alerts`` sends exactly that).

Subscriber names may repeat when a subscriber list is given whole (create, update, replace:
hosted IronMQ keeps both, as the Ruby client's tests expect); adding subscribers (``POST
…/subscribers``) updates the one of the same name, as documented. A subscriber may not push
into its own queue (``ironmq:///`` naming it): every delivery would post another message.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..client._models import Subscriber
from ._ledger import Ledger, not_found
from ._queue_targets import parse_queue_url
from ._records import QueueRecord
from ._validation import QueuePatch, bad


class QueueAdmin:
    """Queues' settings, subscribers and alerts (see the module docstring).

    Removing subscribers returns the names removed: their pending pushes are the push side's
    business (:meth:`~._pushes.Pushes.drop_subscribers`), not this class's.
    """

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def list_queues(
        self, project: str, *, prefix: str | None, previous: str | None, per_page: int
    ) -> list[QueueRecord]:
        queues = self.ledger.projects.get(project, {})
        names = sorted(
            n
            for n in queues
            if (not prefix or n.startswith(prefix)) and (not previous or n > previous)
        )
        return [queues[n] for n in names[:per_page]]

    def put_queue(self, project: str, name: str, patch: QueuePatch) -> QueueRecord:
        """Create (PUT) a queue, or update it when it exists (its type cannot change)."""
        q = self.ledger.find_queue(project, name)
        if q is not None:
            alerts, patch.alerts = patch.alerts, None
            if alerts and q.is_push:
                raise bad("Push queues do not support alerts.")
            q = self.update_queue(project, name, patch)
            if alerts is not None:
                self.replace_alerts(project, name, alerts)
            return q
        qtype = patch.type or ("multicast" if patch.push_given else "pull")
        q = QueueRecord(project, name, type=qtype)
        if q.is_push and not patch.subscribers:
            raise bad("A push queue needs at least one subscriber (push.subscribers)")
        self._check_patch(q, patch)
        self._apply(q, patch)
        self.ledger.projects.setdefault(project, {})[name] = q
        self.ledger.save_queue(q)
        return q

    def update_queue(self, project: str, name: str, patch: QueuePatch) -> QueueRecord:
        q = self.ledger.queue(project, name)
        if patch.type is not None and patch.type != q.type:
            raise bad(
                f"A queue's type cannot be changed (this one is {q.type}); "
                "delete it and create it again"
            )
        self._check_patch(q, patch)
        self._apply(q, patch)
        self.ledger.save_queue(q)
        return q

    def _check_patch(self, q: QueueRecord, patch: QueuePatch) -> None:
        if q.is_push:
            if patch.alerts:
                raise bad("Push queues do not support alerts.")
            if patch.dead_letter:
                raise bad("dead_letter is not allowed on push queues (use push.error_queue)")
        elif patch.push_given:
            raise bad(
                "A pull queue cannot have subscribers or push settings "
                "(a queue's type is fixed when it is created)"
            )
        if patch.error_queue and patch.error_queue == q.name:
            raise bad("error_queue cannot be the queue itself")
        self._check_no_loop(q, patch.subscribers or ())
        if patch.alerts:
            self._check_alerts(q.alerts, patch.alerts)

    @staticmethod
    def _check_no_loop(q: QueueRecord, subs: Iterable[Subscriber]) -> None:
        for sub in subs:
            if sub.url.startswith("ironmq:"):
                target = parse_queue_url(sub.url)
                same_project = target.project in (None, q.project)
                if target.is_local and same_project and target.queue == q.name:
                    raise bad(f"subscriber {sub.name!r} pushes into its own queue (a loop)")

    @staticmethod
    def _check_alerts(current: list[dict[str, Any]], new: list[dict[str, Any]]) -> None:
        if len(current) + len(new) > 5:
            raise bad("at most 5 alerts per queue")
        existing = {(a["type"], a["direction"], a["trigger"]) for a in current}
        if any((a["type"], a["direction"], a["trigger"]) in existing for a in new):
            raise bad("At least one new alert duplicates current queue alerts.")

    def _apply(self, q: QueueRecord, patch: QueuePatch) -> None:
        if patch.message_timeout is not None:
            q.message_timeout = patch.message_timeout
        if patch.message_expiration is not None:
            q.message_expiration = patch.message_expiration
        if patch.subscribers is not None:
            q.subscribers = list(patch.subscribers)
        if patch.retries is not None:
            q.retries = patch.retries
        if patch.retries_delay is not None:
            q.retries_delay = patch.retries_delay
        if patch.error_queue is not None:
            q.error_queue = patch.error_queue or None
        if patch.dead_letter is not None:
            q.dead_letter = patch.dead_letter
        if patch.alerts:
            q.alerts.extend({**a, "id": self.ledger.ids.next()} for a in patch.alerts)

    # ------------------------------------------------------------------ subscribers, alerts

    def push_queue(self, project: str, name: str) -> QueueRecord:
        q = self.ledger.queue(project, name)
        if not q.is_push:
            raise bad("Queue is a pull queue: subscribers need a push queue (type is fixed)")
        return q

    def add_subscribers(self, project: str, name: str, subs: list[Subscriber]) -> None:
        """Add, or update the subscriber of the same name (all of them, if several share it)."""
        q = self.push_queue(project, name)
        self._check_no_loop(q, subs)
        for sub in subs:
            at = next((i for i, s in enumerate(q.subscribers) if s.name == sub.name), None)
            if at is None:
                q.subscribers.append(sub)
                continue
            rest = [s for s in q.subscribers[at + 1 :] if s.name != sub.name]
            q.subscribers[at:] = [sub, *rest]
        self.ledger.save_queue(q)

    def replace_subscribers(self, project: str, name: str, subs: list[Subscriber]) -> set[str]:
        """Replace the list; the names no longer subscribed."""
        q = self.push_queue(project, name)
        self._check_no_loop(q, subs)
        removed = {s.name for s in q.subscribers} - {s.name for s in subs}
        q.subscribers = list(subs)
        self.ledger.save_queue(q)
        return removed

    def remove_subscribers(self, project: str, name: str, subs: list[Subscriber]) -> set[str]:
        """Remove these (by name, or by URL); the names removed."""
        q = self.push_queue(project, name)
        names = set()
        for sub in subs:
            match = q.subscriber(sub.name) if sub.name else None
            if match is None and sub.url:
                match = next((s for s in q.subscribers if s.url == sub.url), None)
            if match is None:
                raise not_found(f"Subscriber {sub.name or sub.url!r} not found")
            names.add(match.name)
        q.subscribers = [s for s in q.subscribers if s.name not in names]
        self.ledger.save_queue(q)
        return names

    def replace_alerts(self, project: str, name: str, alerts: list[dict[str, Any]]) -> None:
        q = self.ledger.queue(project, name)
        if q.is_push and alerts:
            raise bad("Push queues do not support alerts.")
        self._check_alerts([], alerts)
        q.alerts = [{**a, "id": self.ledger.ids.next()} for a in alerts]
        self.ledger.save_queue(q)

    def remove_alerts(self, project: str, name: str, ids: Iterable[str]) -> None:
        q = self.ledger.queue(project, name)
        wanted = set(ids)
        unknown = wanted - {a["id"] for a in q.alerts}
        if unknown:
            raise not_found(f"Alert {sorted(unknown)[0]!r} not found")
        q.alerts = [a for a in q.alerts if a["id"] not in wanted]
        self.ledger.save_queue(q)
