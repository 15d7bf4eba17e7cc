"""The dev server's settings: grouped value objects, each default written once.

:class:`PushSettings` (how the pusher delivers) and :class:`Retention` (how long what it did
stays readable) are frozen dataclasses with readable reprs, like httpx's ``Timeout`` and
``Limits``; :class:`DevConfig` holds them with the server-wide switches. ``DevServer(...)``,
``create_app(...)`` and the ``ironpush dev`` options all read their defaults and help from
here::

    PushSettings()   # PushSettings(timeout=10.0, max_concurrent=256, max_backlog=2048, ...)
    DevServer(pushes=PushSettings(timeout=2.0), retention=Retention(finished=60))

This module sits outside :mod:`ironpush.devserver` on purpose: the CLI builds its options from
it without loading the server (``import ironpush.cli`` stays light).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TypedDict

from ._defaults import Checked, setting

DEFAULT_HOST = "127.0.0.1"
#: What ``allowed_hosts`` (``ironpush dev --allow-host``) adds to the names always answered.
ALLOW_HOST_HELP = (
    "Also answer requests whose Host header names this host (a container or LAN name; "
    ".example.com: that domain and its subdomains; *: any name). Always answered: localhost "
    "(and *.localhost), IP addresses, this machine's name, --host and --public-url's host."
)
# Letters, digits, "-" and "_" (container names), dot-separated labels.
_HOST_NAME = re.compile(r"[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*")
#: What ``strict=True`` (``ironpush dev --strict``) refuses, as hosted IronMQ does.
STRICT_HELP = (
    "Refuse what hosted IronMQ refuses: reservation timeouts under 30 s, retries_delay under "
    "3 s, fractional seconds, message bodies over 64 KB."
)


@dataclass(frozen=True, slots=True, kw_only=True)
class PushSettings(Checked):
    """How the dev server's pusher delivers, and when a post waits for it (back-pressure).

    While more than ``max_backlog`` tries are due (in flight, or waiting for one of the
    ``max_concurrent`` slots), a post to a push queue waits up to ``backlog_wait`` seconds,
    then gets 503 ``Retry-After: 1`` with nothing stored::

        DevServer(pushes=PushSettings(timeout=2.0, max_concurrent=16))
    """

    timeout: float = setting(
        10.0, "Seconds a subscriber has to answer a push (hosted v3: 10).", gt=0
    )
    max_concurrent: int = setting(256, "Pushes in flight at once, across every queue.", ge=1)
    max_backlog: int = setting(
        2048,
        "Push tries due (in flight or waiting for a slot) beyond which a post to a push queue "
        "waits, then gets 503; 0 turns back-pressure off.",
        ge=0,
    )
    backlog_wait: float = setting(
        5.0, "Seconds a held post waits for the pusher before its 503.", ge=0
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Retention(Checked):
    """What the dev server keeps after a push message is done with, for people and tests::

    DevServer(retention=Retention(finished=60, max_finished=1000))
    """

    finished: float = setting(
        900.0,
        "Seconds a delivered or failed push message stays readable (statuses, get by id, replay).",
        ge=0,
    )
    max_finished: int = setting(20_000, "At most this many finished push messages are kept.", ge=0)
    attempts: int = setting(
        2_000, "Push attempts kept for /_dev/deliveries and the inspector.", ge=1
    )


DEFAULT_PUSHES = PushSettings()
DEFAULT_RETENTION = Retention()


@dataclass
class DevConfig:
    """How a dev server behaves; the groups hold the tunables (see each for its defaults).

    ``token``: the token clients must send (``Authorization: OAuth <token>``); ``None`` accepts
    any. ``project_id``: the only project served (others get 404); ``None`` serves any.
    ``db``: a SQLite file for durable state; ``None`` keeps everything in memory.
    ``public_url``: the base of the ``Iron-Subscriber-Message-Url`` ack URLs (the entry points
    set it from the bound address when not given). ``allowed_hosts``: :data:`ALLOW_HOST_HELP`
    (each checked by :func:`host_pattern`). ``strict``: :data:`STRICT_HELP`.
    ``max_message_size``: the largest body in bytes (``None``: 256 KB, or 64 KB with
    ``strict``, hosted IronMQ's smallest plan). ``max_request_size``: the largest request body.
    ``pushes``: :class:`PushSettings`. ``retention``: :class:`Retention`. ::

        create_app(DevConfig(token="secret", db="dev.sqlite"))
    """

    token: str | None = field(default=None, repr=False)  # a secret: never in reprs
    project_id: str | None = None
    db: str | None = None
    public_url: str | None = None
    allowed_hosts: tuple[str, ...] = ()
    strict: bool = False
    max_message_size: int | None = None
    max_request_size: int = 8 * 1024 * 1024
    pushes: PushSettings = DEFAULT_PUSHES
    retention: Retention = DEFAULT_RETENTION

    def __post_init__(self) -> None:
        if self.max_message_size is not None and self.max_message_size < 1:
            raise ValueError("max_message_size must be >= 1")
        if self.token == "":
            self.token = None
        self.allowed_hosts = tuple(host_pattern(h) for h in self.allowed_hosts)


def host_pattern(value: str) -> str:
    """An ``allowed_hosts`` entry, lowercased: ``name``, ``.domain`` (it and its subdomains)
    or ``*`` (any name); ``ValueError`` naming the mistake otherwise::

        host_pattern("Dev-Box.lan")   # "dev-box.lan"
        host_pattern("http://x:80")   # ValueError: ... a host name, without scheme or port
    """
    name = value.strip().lower().rstrip(".")  # "box.lan." is "box.lan"
    if name == "*" or _HOST_NAME.fullmatch(name.removeprefix(".")):
        return name
    raise ValueError(
        f"allowed host {value!r} is not a host name (give a name such as dev-box.lan, "
        "without scheme or port; .example.com allows it and its subdomains; * allows any)"
    )


class Shortcuts(TypedDict, total=False):
    """The flat keywords ``DevServer`` also takes: each sets one field of its group."""

    push_timeout: float
    max_concurrent_pushes: int
    max_push_backlog: int
    backlog_wait: float
    finished_retention: float
    max_finished: int


#: shortcut → (group, field)
SHORTCUTS: dict[str, tuple[str, str]] = {
    "push_timeout": ("pushes", "timeout"),
    "max_concurrent_pushes": ("pushes", "max_concurrent"),
    "max_push_backlog": ("pushes", "max_backlog"),
    "backlog_wait": ("pushes", "backlog_wait"),
    "finished_retention": ("retention", "finished"),
    "max_finished": ("retention", "max_finished"),
}
