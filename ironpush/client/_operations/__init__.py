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

# Re-exported (``X as X``): ``operations.reserve`` is the one name to use.
from .base import AlertInput as AlertInput
from .base import MessageInput as MessageInput
from .base import Op as Op
from .base import SubscriberInput as SubscriberInput
from .base import alerts_json as alerts_json
from .base import call as call
from .base import queue_path as queue_path
from .base import subscribers_json as subscribers_json
from .keystone import keystone_token as keystone_token
from .messages import clear as clear
from .messages import delete as delete
from .messages import delete_many as delete_many
from .messages import get_message as get_message
from .messages import message_json as message_json
from .messages import peek as peek
from .messages import post as post
from .messages import release as release
from .messages import reserve as reserve
from .messages import touch as touch
from .push import ack_item as ack_item
from .push import ack_request as ack_request
from .push import acknowledge as acknowledge
from .push import add_subscribers as add_subscribers
from .push import push_statuses as push_statuses
from .push import remove_subscribers as remove_subscribers
from .push import replace_subscribers as replace_subscribers
from .push import v3_ackable as v3_ackable
from .queues import add_alerts as add_alerts
from .queues import create_queue as create_queue
from .queues import delete_queue as delete_queue
from .queues import get_queue as get_queue
from .queues import list_queues as list_queues
from .queues import queue_options as queue_options
from .queues import remove_alert as remove_alert
from .queues import remove_alerts as remove_alerts
from .queues import replace_alerts as replace_alerts
from .queues import update_push_queue as update_push_queue
from .queues import update_queue as update_queue
