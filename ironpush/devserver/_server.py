"""``DevServer``: the dev server in-process, on a real socket, in a background thread."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Unpack

import httpx

from .._devserver_settings import (
    DEFAULT_HOST,
    DEFAULT_PUSHES,
    DEFAULT_RETENTION,
    SHORTCUTS,
    DevConfig,
    PushSettings,
    Retention,
    Shortcuts,
)
from ..server_thread import ServerThread
from ._access import is_ip
from ._app import create_app
from ._engine import Engine

if TYPE_CHECKING:
    from ..client import AsyncIronMQ, IronMQ


log = logging.getLogger("ironpush.devserver")

LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
# Addresses meaning "every interface": names to compare with, nothing is bound here.
WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", ""})  # noqa: S104
DEFAULT_PROJECT = "dev"
DEFAULT_TOKEN = "dev"


def local_url(host: str, port: int) -> str:
    """The URL clients on this machine use (a wildcard bind is reached on 127.0.0.1)."""
    shown = "127.0.0.1" if host in WILDCARD_HOSTS else host
    return f"http://[{shown}]:{port}" if ":" in shown else f"http://{shown}:{port}"


def warn_if_public(host: str) -> None:
    if host not in LOCAL_HOSTS:
        log.warning(
            "dev server bound to %s: reachable from other machines. It is a development tool "
            "(use --token, and never expose it to the internet)",
            host,
        )


class DevServer:
    """A local IronMQ v3 server with a real pusher, for tests, demos and development.

    ::

        with DevServer() as mq:                  # 127.0.0.1, a free port, state in memory
            q = mq.client().queue("jobs")
            q.post("hello")

        DevServer(db="dev.sqlite", token="s3cret", pushes=PushSettings(timeout=2.0)).start()

    Options (keyword-only): ``host``, ``port`` (0 = a free one), ``db`` (SQLite file, or None for
    memory), ``token`` (required token; None accepts any), ``project_id`` (the only project
    served; None serves any), ``public_url`` (the base of ack URLs), ``allowed_hosts`` (more
    names answered in ``Host`` beside localhost, IP addresses, this machine's name, ``host``
    and ``public_url``'s: :mod:`ironpush.devserver._access`), ``log_level`` (uvicorn's),
    ``strict`` (refuse what hosted IronMQ refuses: :mod:`ironpush.devserver._limits`),
    ``max_message_size`` (bytes), ``pushes`` (:class:`PushSettings`: push timeout, concurrency,
    back-pressure) and ``retention`` (:class:`Retention`: what stays readable afterwards). Each
    field of those groups is also a flat keyword: ``push_timeout``, ``max_concurrent_pushes``,
    ``max_push_backlog``, ``backlog_wait``, ``finished_retention``, ``max_finished``. Without
    ``strict``, timings accept fractions (``retries_delay=0.05``) so tests run fast; the hosted
    service's minimum ``retries_delay`` is 3 s.
    """

    def __init__(
        self,
        *,
        host: str = DEFAULT_HOST,
        port: int = 0,
        db: str | None = None,
        token: str | None = None,
        project_id: str | None = None,
        public_url: str | None = None,
        allowed_hosts: Iterable[str] = (),
        log_level: str = "warning",
        strict: bool = False,
        max_message_size: int | None = None,
        pushes: PushSettings = DEFAULT_PUSHES,
        retention: Retention = DEFAULT_RETENTION,
        **shortcuts: Unpack[Shortcuts],
    ) -> None:
        groups = _with_shortcuts({"pushes": pushes, "retention": retention}, shortcuts)
        self.config = DevConfig(
            token=token,
            project_id=project_id,
            db=str(db) if db is not None else None,
            public_url=public_url,
            allowed_hosts=(*allowed_hosts, *_bound_name(host)),
            strict=strict,
            max_message_size=max_message_size,
            pushes=groups["pushes"],
            retention=groups["retention"],
        )
        self.host = host
        self.app = create_app(self.config)
        self._thread = ServerThread(self.app, host=host, port=port, log_level=log_level)
        self._started = False

    def __repr__(self) -> str:
        where = self.url if self._started else "not started"
        token = "required" if self.config.token else "any"
        return f"DevServer({where}, db={self.config.db!r}, token={token})"

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (known once started)."""
        return self._thread.url

    @property
    def port(self) -> int:
        return self._thread.port

    @property
    def bound_address(self) -> tuple[str, int]:
        """The listening socket's address, ``(host, port)`` (once started)."""
        return self._thread.bound_address

    @property
    def project_id(self) -> str:
        """The project id clients use (the fixed one, or ``"dev"``)."""
        return self.config.project_id or DEFAULT_PROJECT

    @property
    def token(self) -> str:
        return self.config.token or DEFAULT_TOKEN

    @property
    def engine(self) -> Engine:
        """The running server (for white-box inspection; runs on the server's loop)."""
        engine: Engine = self.app.state.engine
        return engine

    def start(self) -> DevServer:
        warn_if_public(self.host)
        self._thread.start()
        self._started = True
        engine = self.engine
        url = self.config.public_url or local_url(self.host, self.port)
        # Pushes wait for this: ack URLs need the bound port, unknown before the socket existed.
        asyncio.run_coroutine_threadsafe(_activate(engine, url), engine.loop).result(10)
        log.debug("ironpush dev server on %s", self.url)
        return self

    def is_alive(self) -> bool:
        """Whether the server still runs (False before ``start()``, after ``stop()`` or a crash)."""
        return self._started and self._thread.is_alive()

    def stop(self) -> None:
        """Stop serving (in-flight requests finish; state is flushed to the db file)."""
        if self._started:
            # Open event streams (a tail, an inspector tab) end now instead of holding the stop.
            self.engine.loop.call_soon_threadsafe(self.engine.events.close)
            self._thread.stop()
            self._started = False

    def __enter__(self) -> DevServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ clients and helpers

    def client(self, **options: Any) -> IronMQ:
        """A sync :class:`~ironpush.IronMQ` configured for this server."""
        from ..client._sync_client import IronMQ

        return IronMQ(**self._client_options(options))

    def async_client(self, **options: Any) -> AsyncIronMQ:
        """An :class:`~ironpush.AsyncIronMQ` configured for this server."""
        from ..client import AsyncIronMQ

        return AsyncIronMQ(**self._client_options(options))

    def _client_options(self, options: dict[str, Any]) -> dict[str, Any]:
        # Caller's options win (e.g. another project id on a server that serves any).
        return {"cloud": self.url, "project_id": self.project_id, "token": self.token, **options}

    def _dev(self, method: str, path: str, json: Any = None, **params: Any) -> Any:
        headers = {"Authorization": f"OAuth {self.token}"}
        query = {k: v for k, v in params.items() if v is not None}
        timeout = float(query.get("timeout", 0)) + float((json or {}).get("wait", 0)) + 10
        response = httpx.request(
            method, self.url + path, params=query, json=json, headers=headers, timeout=timeout
        )
        response.raise_for_status()
        return response.json()

    def state(self) -> dict[str, Any]:
        """``GET /_dev/state``."""
        result: dict[str, Any] = self._dev("GET", "/_dev/state")
        return result

    def reset(self) -> None:
        """``POST /_dev/reset``: drop every queue and message."""
        self._dev("POST", "/_dev/reset")

    def deliveries(
        self, *, queue: str | None = None, message_id: str | None = None
    ) -> list[dict[str, Any]]:
        """The latest push attempts (``GET /_dev/deliveries``), oldest first."""
        data = self._dev("GET", "/_dev/deliveries", queue=queue, message_id=message_id)
        result: list[dict[str, Any]] = data["deliveries"]
        return result

    def wait_idle(self, *, queue: str | None = None, timeout: float = 10.0) -> bool:
        """Wait until no message (of ``queue``) is being pushed; False if ``timeout`` passed."""
        data = self._dev("GET", "/_dev/idle", queue=queue, timeout=timeout)
        return bool(data["idle"])

    def expire(
        self,
        queue: str,
        message_id: str,
        *,
        subscriber: str | None = None,
        project: str | None = None,
        wait: float = 10.0,
    ) -> list[dict[str, Any]]:
        """End a message's reservations now (``POST /_dev/expire``); what was expired.

        A 202'd push is pushed again at once with a new reservation (a pull reservation goes
        back to the queue), so a test needs no short ``retries_delay`` race. Waits up to
        ``wait`` seconds for a reservation to exist (a 202 still on its way); raises
        ``httpx.HTTPStatusError`` (409) if none appears.

        ::

            [gone] = dev.expire("jobs", message_id, subscriber="worker")
        """
        body = {
            "project": project or self.project_id,
            "queue": queue,
            "message_id": message_id,
            "subscriber": subscriber,
            "wait": wait,
        }
        data = self._dev("POST", "/_dev/expire", json=body)
        result: list[dict[str, Any]] = data["expired"]
        return result


def _bound_name(host: str) -> tuple[str, ...]:
    """The bind address as an allowed ``Host`` when it is a name (``--host dev-box.lan``)."""
    if host in WILDCARD_HOSTS or is_ip(host):
        return ()
    return (host,)


async def _activate(engine: Engine, url: str) -> None:
    engine.activate(url)


def _with_shortcuts(groups: dict[str, Any], shortcuts: Shortcuts) -> dict[str, Any]:
    """Each flat keyword set on its group; an unknown one is the ``TypeError`` Python gives."""
    for name, value in shortcuts.items():
        if name not in SHORTCUTS:
            raise TypeError(
                f"DevServer() got an unexpected keyword argument {name!r} (options are grouped: "
                "pushes=PushSettings(...), retention=Retention(...))"
            )
        group, field = SHORTCUTS[name]
        groups[group] = dataclasses.replace(groups[group], **{field: value})
    return groups
