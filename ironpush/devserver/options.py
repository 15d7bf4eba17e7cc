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
    """

    token: str | None = field(default=None, repr=False)  # a secret: never in reprs
    project_id: str | None = None
    db: str | None = None
    push_timeout: float = 10.0
    max_concurrent_pushes: int = 256
    finished_retention: float = 900.0
    max_finished: int = 20_000
    max_message_size: int = 256 * 1024
    max_request_size: int = 8 * 1024 * 1024
    deliveries_log_size: int = 2_000
    public_url: str | None = None

    def __post_init__(self) -> None:
        if self.push_timeout <= 0:
            raise ValueError("push_timeout must be > 0")
        if self.max_concurrent_pushes < 1:
            raise ValueError("max_concurrent_pushes must be >= 1")
        if self.token == "":
            self.token = None
