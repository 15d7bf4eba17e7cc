"""The receiver's fast paths (issue 12): the empty 200, ``PushMount``, the separate bound on
unsent acks, a job slot given back when the job ends, deferred jobs that keep no message, and
the JSON decoder with and without orjson."""

from __future__ import annotations

import asyncio
import gc
import math
import weakref
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from support import wait_until_async

from ironpush import Defer, PushMessage, PushRouter, _json
from ironpush._protocol import Delivery
from ironpush.receiver._jobs import JobRunner
from ironpush.receiver.mount import PushMount
from ironpush.testing import PushSimulator, build_push

pytestmark = pytest.mark.anyio
KEYS = ["fast-path-key"]


def make_router(seen: list[PushMessage]) -> PushRouter:
    router = PushRouter(secret_keys=KEYS)

    @router.route("/orders", queue="orders", subscriber="billing", json=True)
    async def billing(msg: PushMessage) -> None:
        seen.append(msg)

    return router


async def home(request: Request) -> PlainTextResponse:
    return PlainTextResponse("home")


@pytest.fixture
async def mounted() -> AsyncIterator[tuple[httpx.AsyncClient, PushRouter, list[PushMessage]]]:
    seen: list[PushMessage] = []
    router = make_router(seen)
    site = Starlette(routes=[Route("/", home)])
    app = PushMount(site, router=router, path="/ironmq/")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://shop") as http:
        yield http, router, seen
    await router.shutdown()


async def test_the_quick_200_is_empty_with_no_content_type(
    mounted: tuple[httpx.AsyncClient, PushRouter, list[PushMessage]],
) -> None:
    http, router, seen = mounted
    headers, body, _ = build_push(router, "/orders", {"id": 1})
    answer = await http.post("/ironmq/orders", headers=headers, content=body)
    assert (answer.status_code, answer.content) == (200, b"")
    assert "content-type" not in answer.headers
    assert answer.headers["content-length"] == "0"
    [msg] = seen
    assert msg.json() == {"id": 1}
    assert router.secret_header not in msg.headers  # still hidden from the handler
    assert msg.headers["iron-message-id"] == msg.id


async def test_pushmount_sends_its_prefix_to_the_router_and_the_rest_to_the_app(
    mounted: tuple[httpx.AsyncClient, PushRouter, list[PushMessage]],
) -> None:
    http, _, _ = mounted
    assert (await http.get("/")).text == "home"
    health = await http.get("/ironmq/_health")
    assert (health.status_code, health.json()["routes"]) == (200, 1)
    assert (await http.get("/ironmq/orders")).status_code == 405  # the router's answer
    assert (await http.post("/ironmq/nowhere")).json() == {"error": "not found"}
    # Whole segments only: /ironmqx is the app's (Starlette's plain-text 404)
    other = await http.post("/ironmqx/orders")
    assert (other.status_code, other.text) == (404, "Not Found")


async def test_pushmount_honours_the_servers_root_path() -> None:
    seen: list[PushMessage] = []
    router = make_router(seen)
    app = PushMount(Starlette(routes=[Route("/", home)]), router=router, path="/ironmq")
    transport = httpx.ASGITransport(app=app, root_path="/api")
    async with httpx.AsyncClient(transport=transport, base_url="http://shop") as http:
        headers, body, _ = build_push(router, "/orders", {"id": 2})
        answer = await http.post("/api/ironmq/orders", headers=headers, content=body)
    await router.shutdown()
    assert answer.status_code == 200
    assert [m.json() for m in seen] == [{"id": 2}]


async def test_pushmount_as_fastapi_middleware() -> None:
    seen: list[PushMessage] = []
    router = make_router(seen)
    app = FastAPI()

    @app.get("/")
    async def index() -> dict[str, str]:
        return {"page": "home"}

    app.add_middleware(PushMount, router=router, path="/ironmq")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://shop") as http:
        headers, body, _ = build_push(router, "/orders", {"id": 3})
        pushed = await http.post("/ironmq/orders", headers=headers, content=body)
        page = await http.get("/")
    await router.shutdown()
    assert (pushed.status_code, page.json()) == (200, {"page": "home"})
    assert len(seen) == 1


def test_pushmount_needs_a_prefix() -> None:
    with pytest.raises(ValueError, match="path prefix"):
        PushMount(Starlette(), router=make_router([]), path="/")


class HangingAcks:
    """An IronMQ that never answers an ack (until released)."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.calls = 0

    async def acknowledge(self, queue: str, delivery: Delivery) -> None:
        self.calls += 1
        await self.release.wait()

    async def acknowledge_all(self, acks: list[tuple[str, Delivery]]) -> list[Exception | None]:
        self.calls += len(acks)
        await self.release.wait()
        return [None] * len(acks)

    async def aclose(self) -> None:
        return None


def deferring_router(**options: Any) -> PushRouter:
    router = PushRouter(secret_keys=KEYS, **options)

    async def job() -> None:
        return None

    @router.route("/jobs", queue="jobs", subscriber="worker")
    async def handler(msg: PushMessage) -> Defer:
        return Defer(job)

    return router


async def test_unsent_acks_have_their_own_bound_apart_from_max_deferred() -> None:
    router = deferring_router(max_deferred=2, max_unsent_acks=4)
    async with PushSimulator(router) as sim:
        acks = HangingAcks()
        router._set_client(acks)  # type: ignore[arg-type]
        runner = router.background.current().runner
        # More finished jobs than max_deferred, their acks unsent: still accepted
        for n in range(4):
            assert (await sim.push("/jobs", str(n))).status_code == 202
            # the job ends at once; its ack stays unsent
            await wait_until_async(lambda: runner.in_flight == 0, what="the job's end")
        full = await sim.push("/jobs", "5")
        assert (full.status_code, full.json()) == (503, {"status": "busy"})
        acks.release.set()


async def test_a_job_gives_its_slot_back_as_it_ends() -> None:
    runner = JobRunner(1)
    seen: list[bool] = []

    async def job() -> None:
        runner.release()
        seen.append(runner.try_reserve())  # free now, not a loop turn later
        runner.unreserve()

    assert runner.try_reserve()
    runner.start(job())
    await wait_until_async(lambda: bool(seen), what="the job")
    assert await runner.drain(5.0) == 0
    assert seen == [True]
    assert runner.in_flight == 0


async def test_a_held_deferred_job_keeps_no_message() -> None:
    router = PushRouter(secret_keys=KEYS)
    release = asyncio.Event()
    headers: list[weakref.ref[Any]] = []

    async def job() -> None:
        await release.wait()

    @router.route("/jobs", queue="jobs", subscriber="worker", json=True)
    async def handler(msg: PushMessage) -> Defer:
        headers.append(weakref.ref(msg.headers))
        return Defer(job)

    async with PushSimulator(router) as sim:
        assert (await sim.push("/jobs", {"big": "x" * 10_000})).status_code == 202
        gc.collect()
        assert headers[0]() is None  # the message (body, JSON, headers) is gone
        assert router.background.current().runner.in_flight == 1  # the job still runs
        release.set()


@pytest.mark.parametrize("fast", [True, False], ids=["orjson", "stdlib"])
def test_json_bodies_are_valid_exactly_when_json_loads_says_so(
    fast: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not fast:
        monkeypatch.setattr(_json, "_fast_loads", None)
    assert _json.loads(b'{"a": [1, 2.5, "\\u00e9"]}') == {"a": [1, 2.5, "é"]}
    assert math.isnan(_json.loads(b"NaN"))  # orjson refuses it, json.loads does not
    big = _json.loads(b"1" * 30)  # beyond 64 bits: orjson's one difference (documented)
    assert big == (float("1" * 30) if fast else int("1" * 30))
    with pytest.raises(ValueError, match="Expecting property name"):
        _json.loads(b"{not json")


async def test_deferred_pushes_wait_for_a_lagging_outbox_instead_of_piling_up() -> None:
    router = deferring_router(max_unsent_acks=20)  # soft limit: 2 unsent acks
    async with PushSimulator(router) as sim:
        acks = HangingAcks()
        router._set_client(acks)  # type: ignore[arg-type]
        outbox = router.background.current().outbox
        for n in range(2):
            assert (await sim.push("/jobs", str(n))).status_code == 202
        await wait_until_async(lambda: outbox.backlog == 2, what="two unsent acks")
        assert not await outbox.wait_below(2, timeout=0.05)  # IronMQ is not answering
        waiting = asyncio.ensure_future(sim.push("/jobs", "late"))
        await wait_until_async(lambda: acks.calls >= 2, what="the acks in flight")
        assert not waiting.done()  # held back while the outbox lags (not refused)
        acks.release.set()
        late = await waiting
        assert late.status_code == 202
        await wait_until_async(lambda: outbox.backlog == 0, what="every ack sent")
