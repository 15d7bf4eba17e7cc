"""Transports: the one seam between the client twins and the network.

Both twins turn every call into the same :class:`WireRequest` (method, absolute URL, headers,
body, timeouts) and hand it to a transport's ``send``, which answers a :class:`Response` or
raises :class:`HTTPFailure`. The implementations:

- :class:`HttpxTransport` / :class:`HttpxSyncTransport`: over ``httpx`` (the default; proxies,
  ``httpx.MockTransport`` and ``httpx.ASGITransport`` work through them);
- :class:`LeanTransport`: over ironpush's own keep-alive HTTP/1.1 client
  (:mod:`ironpush.client._lean`), what a receiver's ack outbox uses;
- :class:`MockTransport`: answers from a function, no sockets, for tests of any code that
  talks to IronMQ through :class:`~ironpush.AsyncIronMQ`::

      def ironmq(request: WireRequest) -> Response:
          assert request.method == "DELETE"
          return Response.from_json(200, {"msg": "Deleted"})

      mq = AsyncIronMQ(project_id="p", token="t", transport=MockTransport(ironmq))
      await mq.queue("q").delete("m1", "r1")
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import httpx

from .._frozen import slot_init
from ._lean import HTTPFailure as HTTPFailure
from ._lean import HTTPResponse, LeanHTTPClient, or_failure

#: Idempotent calls in flight per connection of a :class:`LeanTransport` (measured:
#: benchmarks/README.md, ``bench_http_clients.py``).
DEFAULT_PIPELINE = 8


def _default_timeout() -> httpx.Timeout:
    """A call's timeouts when none are given."""
    return httpx.Timeout(30.0)


@slot_init
@dataclass(frozen=True, slots=True)
class WireRequest:
    """One call as it goes on the wire: absolute URL, headers, body and timeouts.

    ``resend_stale`` says the call may be sent again when a reused keep-alive connection turns
    out to be closed before any answer byte (true for idempotent calls).
    """

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes = b""
    timeout: httpx.Timeout = field(default_factory=_default_timeout)
    resend_stale: bool = True

    def json(self) -> Any:
        """The body parsed as JSON (``None`` when empty)."""
        return json.loads(self.body) if self.body else None


@slot_init
@dataclass(frozen=True, slots=True)
class WireBatch:
    """Idempotent calls that differ only in their URL's last segment and their body, sent
    together (``AsyncIronMQ.acknowledge_all``'s acks of one queue): ``url_dir`` ends with
    ``/``, each item is ``(segment, body)``, the segment already escaped. :meth:`requests`
    gives each as the :class:`WireRequest` it stands for::

        batch = WireBatch("DELETE", f"{base}/queues/q/messages/", headers, [("m1", b"{}")],
                          timeout=httpx.Timeout(30.0))
        batch.requests()[0].url  # f"{base}/queues/q/messages/m1"
    """

    method: str
    url_dir: str
    headers: Mapping[str, str]
    items: Sequence[tuple[str, bytes]]
    timeout: httpx.Timeout = field(default_factory=_default_timeout)

    def requests(self) -> list[WireRequest]:
        """Each call of the batch, in order."""
        method, url_dir, headers, timeout = self.method, self.url_dir, self.headers, self.timeout
        return [
            WireRequest(method, url_dir + segment, headers, body, timeout=timeout)
            for segment, body in self.items
        ]


@slot_init
@dataclass(frozen=True, slots=True)
class Response:
    """A transport's answer: status, body and headers; ``raw`` is the HTTP library's own
    response object (an ``httpx.Response``), or ``None``."""

    status_code: int
    content: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    raw: Any = field(default=None, repr=False, compare=False)

    @classmethod
    def from_json(cls, status_code: int, data: Any) -> Response:
        """A JSON answer: ``Response.from_json(200, {"msg": "Deleted"})``."""
        headers = {"Content-Type": "application/json"}
        return cls(status_code, json.dumps(data).encode(), headers)


@runtime_checkable
class AsyncTransport(Protocol):
    """What :class:`~ironpush.AsyncIronMQ` sends its calls through.

    A failure without an answer raises :class:`HTTPFailure`, with ``unsent=True`` when the
    request certainly never left (then even a non-idempotent call may be retried). A
    transport may also take a :class:`WireBatch` of idempotent calls at once, ``async def
    send_all(batch) -> list[Response | HTTPFailure]`` (each answer or failure, in order): the
    lean one pipelines them (``AsyncIronMQ.acknowledge_all``); without it they go through
    ``send``, concurrently.
    """

    async def send(self, request: WireRequest) -> Response: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class SyncTransport(Protocol):
    """What :class:`~ironpush.IronMQ` sends its calls through (see :class:`AsyncTransport`)."""

    def send(self, request: WireRequest) -> Response: ...

    def close(self) -> None: ...


def _failure(exc: httpx.TransportError) -> HTTPFailure:
    detail = str(exc)
    reason = type(exc).__name__ + (f" ({detail})" if detail else "")
    # ConnectError/ConnectTimeout/PoolTimeout: the request never left, safe to retry anything.
    unsent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
    return HTTPFailure(reason, unsent=unsent)


def _httpx_request(http: httpx.Client | httpx.AsyncClient, request: WireRequest) -> httpx.Request:
    return http.build_request(
        request.method,
        request.url,
        headers=request.headers,
        content=request.body or None,
        timeout=request.timeout,
    )


def _response(response: httpx.Response) -> Response:
    return Response(response.status_code, response.content, response.headers, response)


def _limits(max_connections: int) -> httpx.Limits:
    return httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)


class HttpxTransport:
    """:class:`AsyncTransport` over ``httpx.AsyncClient`` (redirects are never followed).

    ``transport`` is an httpx transport (``httpx.MockTransport``, ``httpx.ASGITransport``...);
    without one, httpx's own pool of ``max_connections`` is used::

        HttpxTransport(transport=httpx.ASGITransport(app=app))
    """

    def __init__(
        self, *, transport: httpx.AsyncBaseTransport | None = None, max_connections: int = 20
    ) -> None:
        self.http = httpx.AsyncClient(
            transport=transport, limits=_limits(max_connections), follow_redirects=False
        )

    async def send(self, request: WireRequest) -> Response:
        try:
            return _response(await self.http.send(_httpx_request(self.http, request)))
        except httpx.TransportError as exc:
            raise _failure(exc) from exc

    async def aclose(self) -> None:
        await self.http.aclose()


class HttpxSyncTransport:
    """:class:`SyncTransport` over ``httpx.Client``; the sync twin of :class:`HttpxTransport`."""

    def __init__(
        self, *, transport: httpx.BaseTransport | None = None, max_connections: int = 20
    ) -> None:
        self.http = httpx.Client(
            transport=transport, limits=_limits(max_connections), follow_redirects=False
        )

    def send(self, request: WireRequest) -> Response:
        try:
            return _response(self.http.send(_httpx_request(self.http, request)))
        except httpx.TransportError as exc:
            raise _failure(exc) from exc

    def close(self) -> None:
        self.http.close()


class LeanTransport:
    """:class:`AsyncTransport` over :class:`~ironpush.client._lean.LeanHTTPClient`.

    Several times less CPU per call than httpx, for a busy receiver's ack outbox. One total
    deadline per call (``timeout.connect + timeout.read``); proxy settings are not used; the
    response's ``raw`` is ``None``. Idempotent calls (an ack is a ``DELETE``) are pipelined,
    up to ``pipeline_depth`` in flight per connection (1: one per connection); calls that are
    not idempotent always have a connection to themselves::

        AsyncIronMQ(transport=LeanTransport())      # what AsyncIronMQ(backend="lean") does
    """

    def __init__(
        self, client: LeanHTTPClient | None = None, *, pipeline_depth: int = DEFAULT_PIPELINE
    ) -> None:
        self.client = client or LeanHTTPClient(pipeline_depth=pipeline_depth)
        self.pipeline = pipeline_depth > 1

    async def send(self, request: WireRequest) -> Response:
        answer = await self.client.request(
            request.method,
            request.url,
            headers=request.headers.items(),
            body=request.body,
            timeout=_seconds(request.timeout),
            resend_stale=request.resend_stale,
            pipeline=self.pipeline and request.resend_stale,
        )
        return _lean_response(answer)

    async def send_all(self, batch: WireBatch) -> list[Response | HTTPFailure]:
        """A batch of idempotent calls at once (pipelined, one write per connection), each
        answer or failure in order; :meth:`send` for each when pipelining is off."""
        if not self.pipeline or not batch.items:
            requests = batch.requests()
            return list(await asyncio.gather(*(or_failure(self.send(r)) for r in requests)))
        answers = await self.client.request_all(
            batch.method,
            batch.url_dir,
            batch.headers.items(),
            batch.items,
            timeout=_seconds(batch.timeout),
        )
        return [a if isinstance(a, HTTPFailure) else _lean_response(a) for a in answers]

    async def aclose(self) -> None:
        self.client.close()


def _lean_response(answer: HTTPResponse) -> Response:
    """A lean client's answer as a transport's (its headers decoded on first use)."""
    return Response(answer.status, answer.body, _RawHeaders(answer.headers))


def _seconds(timeout: httpx.Timeout) -> float:
    """The one deadline of a lean call: connect + read."""
    return (timeout.connect or 0.0) + (timeout.read or 30.0)


class _RawHeaders(Mapping[str, str]):
    """A response's headers, decoded on first use (most answers are read for status and body
    only)."""

    __slots__ = ("_decoded", "_raw")

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        self._raw = raw
        self._decoded: dict[str, str] | None = None

    def _headers(self) -> dict[str, str]:
        if self._decoded is None:
            self._decoded = {k.decode("latin-1"): v.decode("latin-1") for k, v in self._raw}
        return self._decoded

    def __getitem__(self, name: str) -> str:
        return self._headers()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._headers())

    def __len__(self) -> int:
        return len(self._headers())

    def __repr__(self) -> str:
        return repr(self._headers())


MockHandler = Callable[[WireRequest], "Response | Awaitable[Response]"]


class MockTransport:
    """:class:`AsyncTransport` answering from ``handler`` (sync or async); no sockets.

    The handler gets the :class:`WireRequest` and returns a :class:`Response`, or raises
    :class:`HTTPFailure` to act out a network failure. Every request is kept in ``sent``.
    """

    def __init__(self, handler: MockHandler) -> None:
        self.handler = handler
        self.sent: list[WireRequest] = []
        self.closed = False

    async def send(self, request: WireRequest) -> Response:
        self.sent.append(request)
        answer = self.handler(request)
        if inspect.isawaitable(answer):
            answer = await answer
        return answer

    async def send_all(self, batch: WireBatch) -> list[Response | HTTPFailure]:
        """:meth:`send` for each call of ``batch``, in order (``AsyncIronMQ.acknowledge_all``
        takes this way)."""
        return [await or_failure(self.send(request)) for request in batch.requests()]

    async def aclose(self) -> None:
        self.closed = True
