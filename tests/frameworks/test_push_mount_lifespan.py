"""``PushMount`` runs the router's lifespan whatever the wrapped app does with the scope.

The lifespan protocol is driven here as a server drives it (one ``lifespan`` call, startup and
shutdown messages through ``receive``, answers through ``send``); the real servers (uvicorn,
Hypercorn, aiohttp, gunicorn's sidecar) are in ``test_recipes.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from a2wsgi import WSGIMiddleware
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route
from support import build_push, wait_until_async

from ironpush import AsyncIronMQ, Defer, PushMessage, PushRouter
from ironpush.receiver.mount import PushMount

pytestmark = pytest.mark.anyio
KEY = "lifespan-test-key-0123456789abcdef"


class Server:
    """A server's side of one lifespan call."""

    def __init__(self, app: Any) -> None:
        self.to_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.from_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
        self.task = asyncio.get_running_loop().create_task(
            app(scope, self.to_app.get, self.from_app.put)
        )

    async def send(self, kind: str) -> str:
        await self.to_app.put({"type": f"lifespan.{kind}"})
        answer = await asyncio.wait_for(self.from_app.get(), 10)
        return str(answer["type"]) + (f": {answer['message']}" if answer.get("message") else "")

    async def finished(self) -> None:
        await asyncio.wait_for(self.task, 10)


def make_router() -> PushRouter:
    return PushRouter(secret_keys=[KEY])


async def django_like(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        raise ValueError("Django can only handle ASGI/HTTP connections, not lifespan.")


async def ignores_lifespan(scope: Any, receive: Any, send: Any) -> None:
    return None  # an app that serves HTTP only and returns on anything else


def wsgi_app(environ: Any, start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"wsgi"]


@pytest.mark.parametrize(
    ("app", "reason"),
    [
        (django_like, "ValueError: Django can only handle ASGI/HTTP connections"),
        (ignores_lifespan, "it returned without answering"),
    ],
    ids=["refuses", "ignores"],
)
async def test_an_app_without_a_lifespan_gets_the_routers_and_one_line_says_so(
    app: Any, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    router = make_router()
    caplog.set_level(logging.INFO, "ironpush.receiver")
    server = Server(PushMount(app, router=router))
    assert await server.send("startup") == "lifespan.startup.complete"
    assert router.background.running is not None  # started now, not on the first push
    [line] = [r.getMessage() for r in caplog.records if "does not take" in r.getMessage()]
    assert reason in line
    assert await server.send("shutdown") == "lifespan.shutdown.complete"
    await server.finished()
    assert router.background.running is None
    assert router.background.closed


async def test_a_wsgi_app_behind_a2wsgi_answers_its_lifespan_and_the_router_starts() -> None:
    router = make_router()
    server = Server(PushMount(WSGIMiddleware(wsgi_app), router=router))  # type: ignore[arg-type]
    assert await server.send("startup") == "lifespan.startup.complete"
    assert router.background.running is not None
    assert await server.send("shutdown") == "lifespan.shutdown.complete"
    await server.finished()
    assert router.background.closed


async def test_the_app_starts_first_and_stops_last_around_the_router() -> None:
    router = make_router()
    seen: list[tuple[str, bool]] = []

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        seen.append(("app up, router running", router.background.running is not None))
        yield
        # The router drained before: its jobs may use what the app opened (a database pool).
        seen.append(("app down, router drained", router.background.closed))

    server = Server(PushMount(Starlette(lifespan=lifespan), router=router))
    assert await server.send("startup") == "lifespan.startup.complete"
    assert router.background.running is not None
    assert await server.send("shutdown") == "lifespan.shutdown.complete"
    await server.finished()
    assert seen == [("app up, router running", False), ("app down, router drained", True)]


async def test_an_app_that_runs_the_routers_lifespan_too_starts_and_drains_it_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    router = make_router()
    caplog.set_level(logging.INFO, "ironpush.receiver")
    app = PushMount(Starlette(lifespan=router.lifespan), router=router)
    server = Server(app)
    assert await server.send("startup") == "lifespan.startup.complete"
    runtime = router.background.running
    assert await server.send("shutdown") == "lifespan.shutdown.complete"
    await server.finished()
    assert runtime is not None
    drains = [r for r in caplog.records if r.getMessage().startswith("shutting down:")]
    assert len(drains) == 1


async def test_a_failed_app_startup_is_the_answer_and_the_router_does_not_start() -> None:
    router = make_router()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        raise RuntimeError("no database")
        yield

    server = Server(PushMount(Starlette(lifespan=lifespan), router=router))
    answer = await server.send("startup")
    assert answer.startswith("lifespan.startup.failed")
    assert "no database" in answer
    assert router.background.running is None


async def test_a_failed_router_startup_fails_the_start_and_stops_the_app(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    router = make_router()
    stopped: list[bool] = []

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        stopped.append(True)

    async def failing() -> None:
        raise RuntimeError("store unreachable")

    monkeypatch.setattr(router, "startup", failing)
    server = Server(PushMount(Starlette(lifespan=lifespan), router=router))
    assert await server.send("startup") == "lifespan.startup.failed: PushRouter: store unreachable"
    assert stopped == [True]  # the app closed what its startup opened


async def test_a_deferred_job_in_flight_finishes_and_is_acked_before_the_shutdown_answer() -> None:
    router = PushRouter(secret_keys=[KEY], verify=True)
    release, finished = asyncio.Event(), []

    async def job(n: int) -> None:
        await release.wait()
        finished.append(n)

    @router.route("/jobs", queue="jobs", subscriber="worker")
    async def take(msg: PushMessage) -> Defer:
        return Defer(job, 1)

    acks: list[str] = []

    def ironmq(request: httpx.Request) -> httpx.Response:
        acks.append(request.url.path)
        return httpx.Response(200, json={"msg": "Deleted"})

    client = AsyncIronMQ(
        project_id="p", token="t", cloud="http://mq", transport=httpx.MockTransport(ironmq)
    )
    router._set_client(client)
    app = PushMount(django_like, router=router)
    server = Server(app)
    assert await server.send("startup") == "lifespan.startup.complete"
    headers, body, _ = build_push(router, "/jobs", b"x")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as http:
        assert (await http.post("/ironmq/jobs", headers=headers, content=body)).status_code == 202
    shutdown = asyncio.create_task(server.send("shutdown"))
    await wait_until_async(lambda: router.background.draining, what="the drain to begin")
    await asyncio.sleep(0.05)
    assert not shutdown.done()
    assert finished == []
    release.set()  # ...which now finishes; its ack goes out before the answer
    assert await shutdown == "lifespan.shutdown.complete"
    assert finished == [1]
    assert len(acks) == 1
    await client.aclose()


async def test_a_router_no_lifespan_started_says_so_once_on_its_first_push(
    caplog: pytest.LogCaptureFixture,
) -> None:
    router = make_router()

    @router.route("/orders", queue="orders", subscriber="billing")
    async def billing(msg: PushMessage) -> None:
        return None

    async def home(request: Any) -> PlainTextResponse:
        return PlainTextResponse("home")

    # Starlette runs no lifespan of a mounted app, and httpx's transport sends none.
    app = Starlette(routes=[Route("/", home), Mount("/ironmq", app=router)])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as http:
        for n in range(3):
            headers, body, _ = build_push(router, "/orders", b"x", message_id=f"m{n}")
            assert (await http.post("/ironmq/orders", headers=headers, content=body)).is_success
    said = [r for r in caplog.records if "started on its first push" in r.getMessage()]
    assert len(said) == 1
    assert said[0].levelno == logging.WARNING
    assert "PushMount" in said[0].getMessage()
    await router.shutdown()
