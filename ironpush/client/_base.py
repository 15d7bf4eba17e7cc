"""What both client twins share: their keyword options, settings, auth headers, URLs, retry
decisions, reply parsing.

Nothing here performs I/O; the sync and async twins (:mod:`ironpush.client`) add it, each with
its own ``transport`` (and the async twin's ``backend``) on top of :class:`ClientOptions`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, TypedDict, TypeVar, Unpack
from urllib.parse import urlencode

import httpx

from .. import _json
from .._config import Settings, load_settings
from .._errors import ConfigError, TransportError
from .._protocol import Reply, Request
from .._redact import redact_text, redact_url
from .._version import __version__
from . import _operations as ops
from ._models import PushStatus
from ._operations import Op
from ._retry import RetryPolicy
from ._transports import HTTPFailure, Response, WireRequest

T = TypeVar("T")
logger = logging.getLogger("ironpush.client")

DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=5.0)
DEFAULT_MAX_CONNECTIONS = 20
USER_AGENT = f"ironpush/{__version__}"
# Keystone tokens are refreshed when they have less than this many seconds left (as iron_core).
KEYSTONE_REFRESH_MARGIN = 10.0


class ClientOptions(TypedDict, total=False):
    """The keyword arguments of both twins (:class:`~ironpush.IronMQ` and
    :class:`~ironpush.AsyncIronMQ`), all optional::

        IronMQ(project_id="...", token="...", timeout=10, retry=RetryPolicy(attempts=5))

    - the configuration layered over ``~/.iron.json``, ``IRON_*``/``IRON_MQ_*`` and
      ``./iron.json`` (see :mod:`ironpush._config`): ``project_id``, ``token``, ``host``,
      ``protocol``, ``port``, ``api_version``, ``path_prefix``, ``cloud`` (one URL for scheme,
      host and port), ``keystone``, ``config_file``, ``secret_keys``; or ``settings``, a
      resolved :class:`~ironpush._config.Settings` that replaces them all;
    - ``timeout``: seconds or an ``httpx.Timeout`` (default :data:`DEFAULT_TIMEOUT`);
    - ``retry``: a :class:`~ironpush.client._retry.RetryPolicy` for 503/504 and connection
      errors of idempotent calls;
    - ``max_connections``: the keep-alive pool's size (default 20; the lean backend has its
      own);
    - ``tracing``: ``post()`` inside an active OpenTelemetry span makes a ``send <queue>`` span
      and puts its context in the messages' ``push_headers`` (default True, with
      ``ironpush[otel]`` and an SDK configured; see :mod:`ironpush.client._tracing`).
    """

    project_id: str | None
    token: str | None
    host: str | None
    protocol: str | None
    port: int | None
    api_version: int | None
    path_prefix: str | None
    cloud: str | None
    keystone: Mapping[str, str] | None
    config_file: str | None
    secret_keys: Sequence[str] | None
    settings: Settings | None
    timeout: float | httpx.Timeout | None
    retry: RetryPolicy | None
    max_connections: int
    tracing: bool


# The options that are configuration layers (the rest configure the client itself).
_LAYERED = frozenset(ClientOptions.__optional_keys__) - {
    "settings",
    "timeout",
    "retry",
    "max_connections",
    "tracing",
}


class ClientBase:
    """Settings, headers, URLs, retry decisions and reply parsing shared by both twins."""

    def __init__(self, **options: Unpack[ClientOptions]) -> None:
        unknown = options.keys() - ClientOptions.__optional_keys__
        if unknown:  # mypy catches it in typed code; say it as Python would for the rest
            raise TypeError(
                f"{type(self).__name__}() got an unexpected keyword argument {min(unknown)!r}"
            )
        config: dict[str, Any] = {
            k: v for k, v in options.items() if k in _LAYERED and v is not None
        }
        self.settings = options.get("settings") or load_settings(**config)
        if not self.settings.project_id:
            raise ConfigError("no IronMQ project id configured")
        timeout = options.get("timeout")
        if timeout is None:
            self.timeout = DEFAULT_TIMEOUT
        elif isinstance(timeout, httpx.Timeout):
            self.timeout = timeout
        else:
            self.timeout = httpx.Timeout(timeout)
        self.retry = options.get("retry") or RetryPolicy()
        self.max_connections = options.get("max_connections", DEFAULT_MAX_CONNECTIONS)
        self.tracing = options.get("tracing", True)
        self._keystone_token: tuple[str, float] | None = None
        # The IronMQ origin's headers with the token they were made for (see _headers).
        self._api_headers: tuple[str | None, dict[str, str]] = (None, _plain_headers())
        self._api_prefix = self.settings.origin + "/"

    def __repr__(self) -> str:
        s = self.settings
        return f"{type(self).__name__}(project_id={s.project_id!r}, url={s.base_url!r})"

    # --- requests -------------------------------------------------------------------------

    def _url(self, request: Request) -> str:
        if request.path.startswith(("http://", "https://")):
            return request.path
        return self.settings.base_url + request.path

    def _headers(self, request: Request, url: str) -> dict[str, str]:
        # Only send the token to the configured IronMQ origin: a legacy ack URL comes from a
        # push header, and the token must not follow it to another host.
        if not url.startswith(self._api_prefix):
            return _plain_headers()
        token = self._token()
        made = self._api_headers
        if made[0] != token:  # made once per token (an outbox sends one call per ack)
            headers = _plain_headers()
            if token:
                headers["Authorization"] = f"OAuth {token}"
            made = self._api_headers = (token, headers)
        return made[1].copy()

    def _token(self) -> str | None:
        if self.settings.keystone is None:
            return self.settings.token
        return self._keystone_token[0] if self._keystone_token else None

    def _keystone_op(self) -> Op[tuple[str, datetime | None]] | None:
        """The Keystone login to run before a call, when the cached token is missing or stale."""
        ks = self.settings.keystone
        if ks is None:
            return None
        if self._keystone_token and self._keystone_token[1] - time.time() > KEYSTONE_REFRESH_MARGIN:
            return None
        return ops.keystone_token(
            ks.server, tenant=ks.tenant, username=ks.username, password=ks.password
        )

    def _store_keystone(self, result: tuple[str, datetime | None]) -> None:
        token, expires = result
        deadline = expires.timestamp() if expires else time.time() + 3600
        self._keystone_token = (token, deadline)

    def _timeout_for(self, request: Request) -> httpx.Timeout:
        if request.read_timeout is None:
            return self.timeout
        read = max(self.timeout.read or 0.0, request.read_timeout)
        return httpx.Timeout(
            connect=self.timeout.connect,
            read=read,
            write=self.timeout.write,
            pool=self.timeout.pool,
        )

    def _wire(self, request: Request) -> WireRequest:
        """``request`` as it goes on the wire: the same bytes whichever twin and transport
        send it."""
        url = self._url(request)
        if request.params:
            url += "?" + urlencode(request.params)
        headers = self._headers(request, url)
        body = b""
        if request.json is not None:
            body = _json.dumps(request.json)
            headers["Content-Type"] = "application/json"
        return WireRequest(
            request.method,
            url,
            headers,
            body,
            timeout=self._timeout_for(request),
            resend_stale=request.idempotent,
        )

    # --- replies and retries ----------------------------------------------------------------

    def _retry_delay(
        self, request: Request, attempt: int, status: int | None, *, unsent: bool = False
    ) -> float | None:
        """Seconds to wait before retrying, or ``None`` when this outcome is final."""
        if not self.retry.should_retry(request, attempt, status, unsent=unsent):
            return None
        delay = self.retry.delay(attempt)
        logger.info(
            "retrying %s %s in %.2fs (attempt %d, %s)",
            request.method,
            redact_url(request.path),
            delay,
            attempt,
            status or "connection error",
        )
        return delay

    def _transport_error(self, request: Request, exc: HTTPFailure) -> TransportError:
        url = redact_url(self._url(request))
        # An HTTP library may quote a header value (i.e. the token) in its message.
        detail = redact_text(str(exc), [self._token(), self.settings.token])
        return TransportError(
            f"{request.method} {url} failed: {detail or 'no answer'}",
            method=request.method,
            url=url,
            unsent=exc.unsent,
        )

    def _reply(self, response: Response) -> Reply:
        return parse_reply(response.status_code, response.content, response.headers, response.raw)


def parse_reply(status: int, content: bytes, headers: Mapping[str, str], response: Any) -> Reply:
    """A :class:`Reply` from raw parts; JSON is parsed whatever the Content-Type says (iron-core
    crashed on a 2xx without one)."""
    data: Any = None
    if content:
        try:
            data = _json.loads(content)
        except ValueError:
            data = content.decode("utf-8", "replace")
    return Reply(status, data, headers, response)


def push_summary(statuses: Sequence[PushStatus]) -> str:
    if not statuses:
        return "no push statuses yet"
    return ", ".join(f"{s.subscriber_name}={s.status}" for s in statuses)


def _plain_headers() -> dict[str, str]:
    """The headers of every call."""
    return {"Accept": "application/json", "User-Agent": USER_AGENT}
