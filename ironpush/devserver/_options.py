"""The dev server's settings, shared by the app, the state, the pusher and the entry points."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["DevConfig"]


@dataclass
class DevConfig:
    """How a dev server behaves. Every duration is in seconds and may be fractional.

    ``token``: the token clients must send (``Authorization: OAuth <token>``); ``None`` accepts
    any. ``project_id``: the only project served (others get 404); ``None`` serves any.
    ``db``: a SQLite file for durable state; ``None`` keeps everything in memory.
    ``push_timeout``: how long a subscriber has to answer a push (10 s like hosted v3).
    ``max_concurrent_pushes``: pushes in flight at once across all queues.
    ``finished_retention`` / ``max_finished``: how long and how many delivered or failed push
    messages stay readable (push statuses, get by id) after they left their queue.
    ``public_url``: the base of the ``Iron-Subscriber-Message-Url`` ack URLs (set by the entry
    points from the bound address when not given).
    ``strict``: refuse what hosted IronMQ refuses (reservation timeouts under 30 s,
    ``retries_delay`` under 3 s, fractional seconds, bodies over 64 KB; see
    :mod:`ironpush.devserver._limits`); by default those are accepted so tests run fast.
    ``max_message_size``: the largest message body in bytes (default 256 KB, or 64 KB with
    ``strict``: hosted IronMQ's smallest plan).
    ``max_push_backlog`` / ``backlog_wait``: back-pressure. While more than ``max_push_backlog``
    push tries are due (in flight or waiting for one of the ``max_concurrent_pushes`` slots),
    a post to a push queue waits, up to ``backlog_wait`` seconds, then gets 503 with
    ``Retry-After: 1`` (nothing stored). Posting faster than the pusher delivers would only
    grow memory and the post→push latency. ``0`` turns it off.
    """

    token: str | None = field(default=None, repr=False)  # a secret: never in reprs
    project_id: str | None = None
    db: str | None = None
    push_timeout: float = 10.0
    max_concurrent_pushes: int = 256
    finished_retention: float = 900.0
    max_finished: int = 20_000
    max_message_size: int | None = None
    max_request_size: int = 8 * 1024 * 1024
    deliveries_log_size: int = 2_000
    public_url: str | None = None
    strict: bool = False
    max_push_backlog: int = 2048
    backlog_wait: float = 5.0

    def __post_init__(self) -> None:
        if self.push_timeout <= 0:
            raise ValueError("push_timeout must be > 0")
        if self.max_concurrent_pushes < 1:
            raise ValueError("max_concurrent_pushes must be >= 1")
        if self.max_push_backlog < 0 or self.backlog_wait < 0:
            raise ValueError("max_push_backlog and backlog_wait must be >= 0")
        if self.max_message_size is not None and self.max_message_size < 1:
            raise ValueError("max_message_size must be >= 1")
        if self.token == "":
            self.token = None
