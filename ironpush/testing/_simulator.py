"""Push simulators: send pushes to an app in-process and record what its router acknowledges."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any

import anyio
import anyio.from_thread
import httpx

from .._protocol import HEADER_RESERVATION_ID
from ..receiver._router import PushRouter
from ._fake_ironmq import FakeIronMQ, RecordedAck, RecordedPost
from ._pushes import DEFAULT, FAKE_IRONMQ, FAKE_PROJECT, build_push

if TYPE_CHECKING:
    from ..client._async_client import AsyncIronMQ


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
        self.fake = FakeIronMQ(ack_status)
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
        from ..client._async_client import AsyncIronMQ

        self.client = AsyncIronMQ(
            project_id=FAKE_PROJECT,
            token=FAKE_PROJECT,
            cloud=FAKE_IRONMQ,
            transport=httpx.MockTransport(self.fake),
        )
        self.router._set_client(self.client)
        await self.router.startup()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
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
        self, result: PushResult, body: str | bytes | Any = DEFAULT, **options: Any
    ) -> PushResult:
        """Push the same message again, as IronMQ does after a timeout: a new reservation id.

        ``body`` defaults to the original body (give another to vary the handler's behaviour).
        """
        options.setdefault("message_id", result.message_id)
        return await self.push(result.path, result.body if body is DEFAULT else body, **options)

    async def wait_for_acks(self, count: int = 1, timeout: float = 5.0) -> list[RecordedAck]:
        """Wait until at least ``count`` acks were recorded; return them (TimeoutError if not)."""
        with anyio.fail_after(timeout):
            while len(self.acks) < count:
                await self.fake.changed.wait()
        return list(self.acks)


class SyncPushSimulator:
    """:class:`PushSimulator` for synchronous tests: same options, same methods, no ``await``.

    The app and the router run on an event loop in a helper thread (as Starlette's
    ``TestClient`` does), so sync handlers, deferred jobs and acks behave as in production::

        with SyncPushSimulator(app, router=router, mount="/ironmq") as sim:
            assert sim.push("/orders", {"id": 7}).status_code == 200
    """

    def __init__(self, app: Any, **options: Any) -> None:
        self._sim = PushSimulator(app, **options)
        self._stack = contextlib.ExitStack()
        self._portal: anyio.from_thread.BlockingPortal | None = None

    @property
    def router(self) -> PushRouter:
        return self._sim.router

    @property
    def acks(self) -> list[RecordedAck]:
        """Every ack the router sent so far, in order."""
        return self._sim.acks

    @property
    def posts(self) -> list[RecordedPost]:
        """Every message the router posted so far (dead-letter reports)."""
        return self._sim.posts

    def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if self._portal is None:
            raise RuntimeError("use the simulator inside `with SyncPushSimulator(...) as sim:`")
        return self._portal.call(functools.partial(fn, *args, **kwargs))

    def __enter__(self) -> SyncPushSimulator:
        self._portal = self._stack.enter_context(anyio.from_thread.start_blocking_portal())
        try:
            self._call(self._sim.__aenter__)
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self._call(self._sim.__aexit__, exc_type, exc, tb)
        finally:
            self._portal = None
            self._stack.close()

    def push(self, path: str, body: str | bytes | Any = b"", **options: Any) -> PushResult:
        """Send one push (see :meth:`PushSimulator.push`)."""
        result: PushResult = self._call(self._sim.push, path, body, **options)
        return result

    def redeliver(
        self, result: PushResult, body: str | bytes | Any = DEFAULT, **options: Any
    ) -> PushResult:
        """Push the same message again with a new reservation id."""
        again: PushResult = self._call(self._sim.redeliver, result, body, **options)
        return again

    def wait_for_acks(self, count: int = 1, timeout: float = 5.0) -> list[RecordedAck]:
        """Wait until at least ``count`` acks were recorded (TimeoutError if not)."""
        acks: list[RecordedAck] = self._call(self._sim.wait_for_acks, count, timeout)
        return acks
