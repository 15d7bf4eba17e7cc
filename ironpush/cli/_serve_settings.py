"""The settings of ``ironpush serve``, each default written once, and how they reach workers.

Three value objects: :class:`ServeSettings` (where and how the processes run),
:class:`HttpLimits` (what one connection may cost) and :class:`AppSettings` (the app's
lifespan, a WSGI app's mount). ``ironpush serve`` builds its options from
their fields (:func:`~ironpush.cli._options.options_from`), so ``ironpush serve --help`` shows
these defaults and help texts. Kept apart from :mod:`._serve_http` (which subclasses uvicorn's
protocol) so that the CLI reads them without importing uvicorn until ``serve`` runs::

    HttpLimits()   # HttpLimits(max_head_bytes=32768, max_headers=100, timeout_head=5.0, ...)

:func:`raise_open_files_limit` lifts the process's open-files limit for ``limit_concurrency``
connections (the workers inherit it).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from dataclasses import dataclass
from typing import Literal

from .._defaults import Checked, setting

LIMITS_ENV = "IRONPUSH_SERVE_LIMITS"
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
LOG_FORMATS = ("text", "json")
LIFESPAN_MODES = ("auto", "on", "off")
#: Descriptors a worker needs beside its connections (listening socket, logs, store, clients).
SPARE_FILES = 256
_MAX_FILES = 1 << 20  # what an unlimited hard limit is lowered to (setrlimit may refuse it)

logger = logging.getLogger("ironpush.serve")


@dataclass(frozen=True, slots=True, kw_only=True)
class ServeSettings(Checked):
    """Where ``ironpush serve`` listens, how many processes it runs, and how it logs."""

    host: str = setting("127.0.0.1", "Interface to bind.")
    port: int = setting(8000, "Port to bind.", ge=0, le=65535)
    workers: int = setting(
        1, "Worker processes; more than one needs a shared store (see --store).", ge=1
    )
    log_level: str = setting("info", "Log level of uvicorn and ironpush.", choices=LOG_LEVELS)
    log_format: str = setting(
        "text",
        "text, or json: one JSON object per line, the push's fields as keys (README "
        "'Observability').",
        choices=LOG_FORMATS,
    )
    proxy_headers: bool = setting(True, "Trust X-Forwarded-* from a proxy in front.")
    log_repeat_interval: float = setting(
        60.0,
        "Identical warnings/errors: the first is logged, then one count per interval.",
        ge=0.1,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpLimits(Checked):
    """What one connection, and one client address, may cost: uvicorn's own limits, and those
    :class:`~ironpush.cli._serve_http.BoundedHttpToolsProtocol` adds (head size, header count,
    head and request time, connections per address waiting for their head)."""

    max_head_bytes: int = setting(
        32 * 1024, "Largest request line + headers; larger gets 431.", ge=1024
    )
    max_headers: int = setting(100, "Most header fields per request; more gets 431.", ge=8)
    timeout_head: float = setting(
        5.0,
        "Seconds to receive a request's line and headers once connected (or once its first "
        "byte came on a kept-alive connection): 408 and close; silent connections are closed. "
        "At most --timeout-request.",
        ge=0.1,
    )
    timeout_request: float = setting(
        15.0,
        "Seconds to receive a whole request once connected (slowloris): 408 and close.",
        ge=0.1,
    )
    limit_pending_per_peer: int = setting(
        100,
        "Connections from one client address still waiting for their request head (idle "
        "kept-alive ones do not count); one more gets 503 and close. 0: no limit.",
        ge=0,
    )
    limit_concurrency: int = setting(
        1000,
        "Connections + requests per worker beyond which requests get 503 (a complete request "
        "first closes the oldest connection still waiting for its head).",
        ge=1,
    )
    timeout_keep_alive: int = setting(5, "Seconds an idle keep-alive connection stays open.", ge=1)
    timeout_graceful_shutdown: int = setting(
        30, "Seconds a stop waits for requests in flight.", ge=1
    )

    @property
    def head_deadline(self) -> float:
        """Seconds a request head may take: ``timeout_head``, never beyond ``timeout_request``."""
        return min(self.timeout_head, self.timeout_request)

    def to_env(self) -> str:
        """These limits as the value of :data:`LIMITS_ENV` (the workers inherit it)."""
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_env(cls) -> HttpLimits:
        """The limits ``serve`` passed in :data:`LIMITS_ENV`, else the defaults."""
        text = os.environ.get(LIMITS_ENV)
        return cls(**json.loads(text)) if text else cls()


def raise_open_files_limit(limits: HttpLimits) -> None:
    """Lift the soft open-files limit (``ulimit -n``) to the hard one when it is below what
    ``limit_concurrency`` connections need: past it ``accept()`` fails, and asyncio then stops
    accepting *every* connection for a second, so a flood of sockets would starve real pushes.
    Warns when even the hard limit is too low."""
    try:
        import resource
    except ImportError:  # not a POSIX system: nothing to lift
        return
    needed = limits.limit_concurrency + SPARE_FILES
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    ceiling = _MAX_FILES if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < min(needed, ceiling):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (ceiling, hard))
            soft = ceiling
        except (OSError, ValueError) as exc:
            logger.warning("could not raise the open files limit to %d: %s", ceiling, exc)
    if soft != resource.RLIM_INFINITY and soft < needed:
        logger.warning(
            "the open files limit (ulimit -n) is %d, below --limit-concurrency %d + %d: past it "
            "new connections wait; raise it (ulimit -n, systemd LimitNOFILE=, docker run "
            "--ulimit nofile=N:N) or lower --limit-concurrency",
            soft,
            limits.limit_concurrency,
            SPARE_FILES,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class AppSettings(Checked):
    """How ``ironpush serve`` runs the app it imports (see :mod:`._serve_apps`)."""

    lifespan: Literal["auto", "on", "off"] = setting(
        "auto",
        "The ASGI lifespan, as uvicorn's: auto (run it when the app takes it), on (an app "
        "that refuses it stops the start), off.",
        choices=LIFESPAN_MODES,
    )
    wsgi_mount: str = setting(
        "/ironmq",
        "Where a WSGI app's PushRouter is mounted in front of it (a WSGI app is served "
        "through a2wsgi: pip install 'ironpush[wsgi]').",
    )
