"""Sans-I/O operations: every IronMQ v3 call, written once for both client twins.

An operation is a generator that yields :class:`~ironpush._protocol.Request` values and receives
:class:`~ironpush._protocol.Reply` values, then returns the parsed result. The sync client drives
it with ``httpx.Client`` and the async client with ``httpx.AsyncClient``; neither knows any
endpoint. Multi-step calls (``update`` that creates a missing queue, removing subscribers by
URL) are ordinary Python control flow inside one generator::

    op = operations.reserve("jobs", n=10)
    request = next(op)   # Request(method="POST", path="/queues/jobs/reservations", ...)
    op.send(Reply(200, {"messages": []}))   # raises StopIteration(value=[])

The operations live in modules by what they act on (:mod:`.queues`, :mod:`.messages`,
:mod:`.push`, :mod:`.keystone`); this package re-exports them all, so ``operations.reserve``
is the one name to use.
"""

from __future__ import annotations

from .base import (
    AlertInput,
    MessageInput,
    Op,
    SubscriberInput,
    alerts_json,
    call,
    queue_path,
    subscribers_json,
)
from .keystone import keystone_token
from .messages import (
    clear,
    delete,
    delete_many,
    get_message,
    message_json,
    peek,
    post,
    release,
    reserve,
    touch,
)
from .push import (
    acknowledge,
    add_subscribers,
    push_statuses,
    remove_subscribers,
    replace_subscribers,
)
from .queues import (
    add_alerts,
    create_queue,
    delete_queue,
    get_queue,
    list_queues,
    queue_options,
    remove_alert,
    remove_alerts,
    replace_alerts,
    update_push_queue,
    update_queue,
)

__all__ = [
    "AlertInput",
    "MessageInput",
    "Op",
    "SubscriberInput",
    "acknowledge",
    "add_alerts",
    "add_subscribers",
    "alerts_json",
    "call",
    "clear",
    "create_queue",
    "delete",
    "delete_many",
    "delete_queue",
    "get_message",
    "get_queue",
    "keystone_token",
    "list_queues",
    "message_json",
    "peek",
    "post",
    "push_statuses",
    "queue_options",
    "queue_path",
    "release",
    "remove_alert",
    "remove_alerts",
    "remove_subscribers",
    "replace_alerts",
    "replace_subscribers",
    "reserve",
    "subscribers_json",
    "touch",
    "update_push_queue",
    "update_queue",
]
