"""The v3 API's routing table: (method, path) → endpoint, one row per endpoint.

Paths are the segments after ``/3/projects/{project_id}``; ``"{x}"`` captures one
percent-decoded segment (a queue named ``a/b`` is one segment). The endpoints are
:mod:`._api` (queues, messages) and :mod:`._api_push` (push statuses, acks, subscribers,
alerts). ::

    match("DELETE", ["queues", "jobs", "messages", "42"])
    # (api.delete_message, {"q": "jobs", "id": "42"})
"""

from __future__ import annotations

from .._errors import APIError
from . import _api as api
from . import _api_push as push
from ._call import Handler

ROUTES: list[tuple[str, tuple[str, ...], Handler]] = [
    ("GET", ("queues",), api.list_queues),
    ("GET", ("queues", "{q}"), api.get_queue),
    ("PUT", ("queues", "{q}"), api.create_queue),
    ("PATCH", ("queues", "{q}"), api.update_queue),
    ("DELETE", ("queues", "{q}"), api.delete_queue),
    ("POST", ("queues", "{q}", "messages"), api.post_messages),
    ("GET", ("queues", "{q}", "messages"), api.peek),
    ("DELETE", ("queues", "{q}", "messages"), api.delete_many),
    ("POST", ("queues", "{q}", "webhook"), api.webhook),
    ("POST", ("queues", "{q}", "messages", "webhook"), api.webhook),
    ("POST", ("queues", "{q}", "reservations"), api.reserve),
    ("GET", ("queues", "{q}", "messages", "{id}"), api.get_message),
    ("DELETE", ("queues", "{q}", "messages", "{id}"), api.delete_message),
    ("POST", ("queues", "{q}", "messages", "{id}", "touch"), api.touch),
    ("POST", ("queues", "{q}", "messages", "{id}", "release"), api.release),
    ("GET", ("queues", "{q}", "messages", "{id}", "subscribers"), push.push_statuses),
    ("DELETE", ("queues", "{q}", "messages", "{id}", "subscribers", "{name}"), push.ack_url),
    ("POST", ("queues", "{q}", "subscribers"), push.add_subscribers),
    ("PUT", ("queues", "{q}", "subscribers"), push.replace_subscribers),
    ("DELETE", ("queues", "{q}", "subscribers"), push.remove_subscribers),
    ("POST", ("queues", "{q}", "alerts"), push.add_alerts),
    ("PUT", ("queues", "{q}", "alerts"), push.replace_alerts),
    ("DELETE", ("queues", "{q}", "alerts"), push.remove_alerts),
    ("DELETE", ("queues", "{q}", "alerts", "{aid}"), push.remove_alert),
]


def match(method: str, segments: list[str]) -> tuple[Handler, dict[str, str]] | APIError | None:
    """The handler and parameters for a request; an APIError 405 when only the method is wrong."""
    path_known = False
    for route_method, pattern, handler in ROUTES:
        if len(pattern) != len(segments):
            continue
        params: dict[str, str] = {}
        for part, seg in zip(pattern, segments, strict=True):
            if part.startswith("{"):
                if not seg:
                    break
                params[part[1:-1]] = seg
            elif part != seg:
                break
        else:
            if route_method == method:
                return handler, params
            path_known = True
    return APIError(405, "Method not allowed") if path_known else None
