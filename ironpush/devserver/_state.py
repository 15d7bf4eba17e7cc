"""The dev server's state: the ledger and the operations on it, composed; data only.

As h11's state machine never references its connection, this state never references the pusher
or the event loop: each operation changes records through the transition tables and returns
what the engine must do next (:class:`~._ledger.Changes`: messages to re-time, queues to wake,
error reports to record), which the engine hands to the pusher::

    state = BrokerState(Ledger(Retention()))
    ids, changes = state.post("dev", "jobs", [NewMessage("hello")])
    pusher.settle(changes)          # a push queue's new message: its tries get their timers

The parts: :class:`~._ledger.Ledger` (the records and their bookkeeping),
:class:`~._pull.PullQueues` (reserve, touch, release, delete), :class:`~._pushes.Pushes` (what a
push's answer, ack or expiry does) and :class:`~._queues.QueueAdmin` (settings, subscribers,
alerts). The few operations that span two parts are here.
"""

from __future__ import annotations

from ..client._models import Subscriber
from ._ledger import Changes, Ledger
from ._pull import PullQueues
from ._pushes import Pushes
from ._queues import QueueAdmin
from ._records import QueueRecord
from ._validation import NewMessage


class BrokerState:
    """Every queue and message of one dev server, and the operations on them."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self.pull = PullQueues(self.ledger)
        self.push = Pushes(self.ledger)
        self.admin = QueueAdmin(self.ledger)

    def post(self, project: str, name: str, items: list[NewMessage]) -> tuple[list[str], Changes]:
        """Messages onto a queue; the changes name the new push messages to schedule."""
        ids = self.ledger.post(project, name, items)
        return ids, self.ledger.take()

    def replace_subscribers(self, project: str, name: str, subs: list[Subscriber]) -> Changes:
        removed = self.admin.replace_subscribers(project, name, subs)
        return self._unsubscribed(self.ledger.queue(project, name), removed)

    def remove_subscribers(self, project: str, name: str, subs: list[Subscriber]) -> Changes:
        removed = self.admin.remove_subscribers(project, name, subs)
        return self._unsubscribed(self.ledger.queue(project, name), removed)

    def _unsubscribed(self, q: QueueRecord, names: set[str]) -> Changes:
        # Pending pushes to a removed subscriber are dropped (nobody to deliver to).
        if names:
            for m in list(q.messages.values()):
                self.push.drop_subscribers(m, q, names)
        return self.ledger.take()

    def delete_queue(self, project: str, name: str) -> Changes:
        self.ledger.delete_queue(project, name)
        return self.ledger.take()

    def reset(self) -> Changes:
        self.ledger.reset()
        return self.ledger.take()

    def load(self) -> Changes:
        """Rebuild from the database (at startup); every live message needs its timers."""
        for m, q in self.ledger.load():
            self.push.restore(m, q)
        return self.ledger.take()
