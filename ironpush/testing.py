"""Test helpers for services that receive IronMQ pushes.

:class:`PushSimulator` sends valid pushes (the right ``Iron-*`` headers and push secret) to your
app in-process through ``httpx.ASGITransport`` and records the acks and dead-letter posts the
router makes, through a client whose transport answers like IronMQ. The ``ironmq_devserver``
fixture gives a running :class:`~ironpush.devserver.DevServer` for end-to-end tests.

Use it as a pytest plugin (in ``conftest.py``: ``pytest_plugins = ["ironpush.testing"]``) or
import what you need::

    import pytest
    from ironpush.testing import PushSimulator
    from myservice import app, router          # app mounts router at /ironmq

    @pytest.mark.anyio
    async def test_order_is_charged():
        async with PushSimulator(app, router=router, mount="/ironmq") as sim:
            result = await sim.push("/orders", {"id": 7, "total": 12})
            assert result.status_code == 200

            again = await sim.redeliver(result)         # same message id, new reservation
            assert again.json()["status"] == "duplicate"

    @pytest.mark.anyio
    async def test_big_order_is_deferred_then_acked():
        async with PushSimulator(app, router=router, mount="/ironmq") as sim:
            result = await sim.push("/orders", {"id": 8, "total": 50_000})
            assert result.status_code == 202
            [ack] = await sim.wait_for_acks(1)
            assert ack.message_id == result.message_id

    def test_with_a_real_pusher(ironmq_devserver):      # the plugin's fixture
        mq = ironmq_devserver.client()
        ...
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import anyio
import httpx

from .protocol import (
    HEADER_MESSAGE_ID,
    HEADER_RESERVATION_ID,
    HEADER_SUBSCRIBER_MESSAGE_ID,
    HEADER_SUBSCRIBER_MESSAGE_URL,
    HEADER_SUBSCRIBER_NAME,
    PUSH_CONTENT_TYPE,
    PUSHER_USER_AGENT,
)
from .receiver.router import PushRouter, Route
from .signing import push_secret

if TYPE_CHECKING:
    from .client.sync_client import AsyncIronMQ
    from .devserver import DevServer

__all__ = [
    "PushResult",
    "PushSimulator",
    "RecordedAck",
    "RecordedPost",
    "build_push",
    "ironmq_devserver",
]

_ids = itertools.count(1)
_DEFAULT: Any = object()
FAKE_IRONMQ = "http://ironmq.test"


@dataclass(frozen=True, slots=True)
class RecordedAck:
    """An acknowledgement the router sent (v3 delete, or ``url`` for a legacy push)."""

    queue: str | None
    message_id: str | None
    reservation_id: str | None
    subscriber_name: str | None
    url: str
    status_code: int


@dataclass(frozen=True, slots=True)
class RecordedPost:
    """A message the router posted (a ``Drop`` to the dead-letter queue)."""

    queue: str
    body: str


@dataclass(frozen=True, slots=True)
class PushResult:
    """A push's answer: ``status_code``, ``response``, and the ids the push carried."""

    response: httpx.Response
    message_id: str
    reservation_id: str | None
    path: str
    body: bytes
    headers: Mapping[str, str] = field(repr=False)

    @property
    def status_code(self) -> int:
        return self.response.status_code

    def json(self) -> Any:
        return self.response.json()


def _message_id() -> str:
    # Realistic-looking numeric ids, unique per process and run.
    return f"{int(time.time() * 1000)}{next(_ids):06d}"


def build_push(
    router: PushRouter,
    path: str,
    body: str | bytes | Any = b"",
    *,
    message_id: str | None = None,
    reservation_id: str | None = None,
    subscriber: str | None = None,
    secret: str | None = _DEFAULT,
    secret_in: str = "header",  # noqa: S107 - where the secret goes, not a secret
    legacy: bool = False,
    headers: Mapping[str, str] | None = None,
    ironmq_url: str = FAKE_IRONMQ,
) -> tuple[dict[str, str], bytes, str]:
    """The headers, body and query string IronMQ would send to ``path`` of ``router``.

    ``body`` may be bytes, text, or any JSON-able value (dumped). The push secret is computed
    from the router's keys unless ``secret`` is given (``None`` leaves it out). ``legacy=True``
    builds a v1/v2 push (``Iron-Subscriber-Message-Id`` and ``-Url``, no reservation)::

        headers, content, query = build_push(router, "/orders", {"id": 1})
    """
    route = _route(router, path)
    message_id = message_id or _message_id()
    name = subscriber or route.subscriber
    out = {"User-Agent": PUSHER_USER_AGENT, "Content-Type": PUSH_CONTENT_TYPE}
    queue_url = f"{ironmq_url}/1/projects/test/queues/{route.queue}"
    if legacy:
        out[HEADER_MESSAGE_ID] = message_id
        out[HEADER_SUBSCRIBER_MESSAGE_ID] = message_id
        out[HEADER_SUBSCRIBER_MESSAGE_URL] = f"{queue_url}/messages/{message_id}/subscribers/{name}"
    else:
        out[HEADER_MESSAGE_ID] = message_id
        out[HEADER_RESERVATION_ID] = reservation_id or uuid.uuid4().hex[:16]
        out[HEADER_SUBSCRIBER_NAME] = name
        out[HEADER_SUBSCRIBER_MESSAGE_URL] = (
            f"{ironmq_url}/3/projects/test/queues/{route.queue}/messages/{message_id}"
        )
    if secret is _DEFAULT:
        secret = push_secret(route.queue, route.subscriber, router.keys) if router.keys else None
    query = ""
    if secret is not None:
        if secret_in == "header":
            out[router.secret_header] = secret
        else:
            query = httpx.QueryParams({router.secret_param: secret}).__str__()
    out.update(headers or {})
    if isinstance(body, str):
        content = body.encode()
    elif isinstance(body, bytes | bytearray):
        content = bytes(body)
    else:
        content = json.dumps(body).encode()
    return out, content, query


def _route(router: PushRouter, path: str) -> Route:
    for route in router.routes:
        if route.path == (path.rstrip("/") or "/"):
            return route
    raise ValueError(f"the router has no route {path!r}; routes: {[r.path for r in router.routes]}")


class _FakeIronMQ:
    """The transport behind the simulator's client: answers acks and posts like IronMQ."""

    def __init__(self, ack_status: int | Callable[[RecordedAck], int]) -> None:
        self.ack_status = ack_status
        self.acks: list[RecordedAck] = []
        self.posts: list[RecordedPost] = []
        # Set (and replaced) on every request; asyncio's Event binds to no loop until awaited.
        self.changed = asyncio.Event()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        try:
            return self._answer(request)
        finally:
            self.changed.set()
            self.changed = asyncio.Event()

    def _answer(self, request: httpx.Request) -> httpx.Response:
        parts = [unquote(p) for p in urlsplit(str(request.url)).path.split("/")]
        queue = parts[parts.index("queues") + 1] if "queues" in parts else None
        if request.method == "POST" and parts[-1] == "messages" and queue:
            bodies = json.loads(request.content).get("messages", [])
            self.posts.extend(RecordedPost(queue, str(m.get("body", ""))) for m in bodies)
            ids = [_message_id() for _ in bodies]
            return httpx.Response(201, json={"ids": ids, "msg": "Messages put on queue."})
        if request.method == "DELETE":
            data = json.loads(request.content) if request.content else {}
            message_id = parts[parts.index("messages") + 1] if "messages" in parts else None
            ack = RecordedAck(
                queue=queue,
                message_id=message_id,
                reservation_id=data.get("reservation_id"),
                subscriber_name=data.get("subscriber_name"),
                url=str(request.url),
                status_code=0,
            )
            status = self.ack_status(ack) if callable(self.ack_status) else self.ack_status
            self.acks.append(
                RecordedAck(
                    ack.queue,
                    ack.message_id,
                    ack.reservation_id,
                    ack.subscriber_name,
                    ack.url,
                    status,
                )
            )
            if status == 200:
                return httpx.Response(200, json={"msg": "Deleted"})
            msg = "Reservation timed out" if status == 403 else "Message not found"
            return httpx.Response(status, json={"msg": msg})
        return httpx.Response(404, json={"msg": "not simulated"})


class PushSimulator:
    """Push to an app in-process and record what the router acknowledges.

    ``app`` is your ASGI app (or the router itself); ``router`` the :class:`PushRouter` inside
    it (default: ``app``) and ``mount`` where it is mounted. The router's IronMQ client is
    replaced by a recording one for the simulator's lifetime; ``ack_status`` makes acks
    answer differently (e.g. ``403`` to simulate an expired reservation).
    """

    def __init__(
        self,
        app: Any,
        *,
        router: PushRouter | None = None,
        mount: str = "",
        ack_status: int | Callable[[RecordedAck], int] = 200,
        base_url: str = "http://testserver",
    ) -> None:
        if router is None:
            if not isinstance(app, PushRouter):
                raise TypeError("pass router= when app is not the PushRouter itself")
            router = app
        self.app = app
        self.router = router
        self.mount = mount.rstrip("/")
        self.fake = _FakeIronMQ(ack_status)
        self.http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url)
        self.client: AsyncIronMQ | None = None

    @property
    def acks(self) -> list[RecordedAck]:
        """Every ack the router sent so far, in order."""
        return self.fake.acks

    @property
    def posts(self) -> list[RecordedPost]:
        """Every message the router posted so far (dead-letter reports)."""
        return self.fake.posts

    async def __aenter__(self) -> PushSimulator:
        from .client.sync_client import AsyncIronMQ

        self.client = AsyncIronMQ(
            project_id="test",
            token="test",
            cloud=FAKE_IRONMQ,
            transport=httpx.MockTransport(self.fake),
        )
        self.router._set_client(self.client)
        await self.router.startup()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.router.shutdown()
        await self.http.aclose()
        if self.client is not None:
            await self.client.aclose()

    async def push(self, path: str, body: str | bytes | Any = b"", **options: Any) -> PushResult:
        """Send one push to ``path`` (relative to the mount); options as :func:`build_push`."""
        headers, content, query = build_push(self.router, path, body, **options)
        url = f"{self.mount}{path}" + (f"?{query}" if query else "")
        response = await self.http.post(url, content=content, headers=headers)
        return PushResult(
            response=response,
            message_id=headers["Iron-Message-Id"],
            reservation_id=headers.get(HEADER_RESERVATION_ID),
            path=path,
            body=content,
            headers=headers,
        )

    async def redeliver(
        self, result: PushResult, body: str | bytes | Any = _DEFAULT, **options: Any
    ) -> PushResult:
        """Push the same message again, as IronMQ does after a timeout: a new reservation id.

        ``body`` defaults to the original body (give another to vary the handler's behaviour).
        """
        options.setdefault("message_id", result.message_id)
        return await self.push(result.path, result.body if body is _DEFAULT else body, **options)

    async def wait_for_acks(self, count: int = 1, timeout: float = 5.0) -> list[RecordedAck]:
        """Wait until at least ``count`` acks were recorded; return them (TimeoutError if not)."""
        with anyio.fail_after(timeout):
            while len(self.acks) < count:
                await self.fake.changed.wait()
        return list(self.acks)


try:
    import pytest
except ImportError:  # pragma: no cover - the helpers above work without pytest
    pass
else:

    @pytest.fixture(scope="session")
    def ironmq_devserver() -> Iterator[DevServer]:
        """A :class:`~ironpush.devserver.DevServer` running for the whole test session.

        Queues are shared by every test that uses it: give each test its own queue names.
        """
        from .devserver import DevServer

        with DevServer() as server:
            yield server
