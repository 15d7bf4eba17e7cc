"""``subscribe_app`` / ``subscribe_app_async``: a router's routes registered from Python, against a
real dev server over real sockets; the number of API calls it makes does not grow with the
number of queues in the project."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest

from ironpush import (
    IronMQ,
    PushMessage,
    PushRouter,
    SubscribeReport,
    ValidationError,
    subscribe_app,
    subscribe_app_async,
)
from ironpush.devserver import DevServer

KEY = "registration-key-0123456789"
BASE = "https://svc.example.com/ironmq"


def _handler(msg: PushMessage) -> None:
    return None


def three_routes(prefix: str, *, subscriber: str = "mailer") -> PushRouter:
    router = PushRouter(secret_keys=[KEY])
    router.add_route(f"/{prefix}/a", _handler, queue=f"{prefix}-orders", subscriber="billing")
    router.add_route(f"/{prefix}/b", _handler, queue=f"{prefix}-orders", subscriber="audit")
    router.add_route(
        f"/{prefix}/c",
        _handler,
        queue=f"{prefix}-mail",
        subscriber=subscriber,
        push_type="unicast",
        retries=2,
        retries_delay=40,
    )
    return router


class Counting(httpx.HTTPTransport):
    """A real HTTP transport that counts the requests by method and path."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: Counter[tuple[str, str]] = Counter()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.calls[(request.method, request.url.path.split("/queues", 1)[-1])] += 1
        return super().handle_request(request)

    @property
    def total(self) -> int:
        return sum(self.calls.values())


class AsyncCounting(httpx.AsyncHTTPTransport):
    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.total += 1
        return await super().handle_async_request(request)


@pytest.fixture(scope="module")
def dev() -> Iterator[DevServer]:
    with DevServer() as server:
        yield server


def populate(dev: DevServer, pull: int, push: int, stale: int) -> None:
    """``pull`` pull queues and ``push`` push queues, the first ``stale`` of them with a
    subscriber under the base URL (another deployment's, or a stale one). Concurrently: one
    call at a time would take most of the test's time."""

    async def make() -> None:
        async with dev.async_client() as mq, anyio.create_task_group() as tg:
            limit = anyio.Semaphore(16)

            async def one(name: str, url: str | None) -> None:
                async with limit:
                    if url is None:
                        await mq.queue(name).post("x")
                    else:
                        await mq.create_queue(name, subscribers=[{"name": "old", "url": url}])

            for i in range(pull):
                tg.start_soon(one, f"other-pull-{i:03}", None)
            for i in range(push):
                url = f"{BASE}/gone-{i}" if i < stale else f"https://elsewhere.example.com/{i}"
                tg.start_soon(one, f"other-push-{i:03}", url)

    anyio.run(make)
    with dev.client() as mq:
        assert len(list(mq.iter_queues(prefix="other-"))) == pull + push


@pytest.fixture(scope="module")
def crowded() -> Iterator[DevServer]:
    """A project with 300 other queues: 200 pull, 100 push (20 with a subscriber under BASE)."""
    with DevServer() as server:
        populate(server, 200, 100, 20)
        yield server


def test_registration_makes_api_calls_per_route_not_per_queue(crowded: DevServer) -> None:
    router = three_routes("count")
    transport = Counting()
    with crowded.client(transport=transport) as mq:
        first = subscribe_app(router, BASE, client=mq)
        created = transport.total
        transport.calls.clear()
        second = subscribe_app(router, BASE, client=mq)
        unchanged = transport.total

    assert [(c.queue, c.subscriber, c.action) for c in first.changes] == [
        ("count-orders", "billing", "created"),
        ("count-orders", "audit", "added"),
        ("count-mail", "mailer", "created"),
    ]
    # created: a GET per declared queue, a PUT per new queue, a POST for the second subscriber
    assert created == 5, transport.calls
    # unchanged: one GET per declared queue, nothing else, whatever else the project holds
    assert unchanged == 2, transport.calls
    assert set(transport.calls) == {("GET", "/count-orders"), ("GET", "/count-mail")}
    assert second.changed == 0
    assert second.checked == ["count-orders", "count-mail"]
    assert second.stale == []  # the 20 subscribers under BASE elsewhere were not looked at


def test_scan_all_reads_every_queue_and_finds_stale_subscribers_there() -> None:
    router = three_routes("scan")
    transport = Counting()
    with DevServer() as dev:
        populate(dev, 20, 10, 4)
        with dev.client(transport=transport) as mq:
            report = subscribe_app(router, BASE, client=mq, dry_run=True, scan_all=True)
            queues = list(mq.iter_queues())
    assert sorted(s.queue for s in report.stale) == [f"other-push-{i:03}" for i in range(4)]
    assert not any(s.removed for s in report.stale)
    assert set(report.checked) == {*queues, "scan-orders", "scan-mail"}
    gets = sum(n for (method, _), n in transport.calls.items() if method == "GET")
    assert gets >= len(queues)  # one GET per queue: why it is opt-in


def test_async_twin_gives_the_same_report_with_as_few_calls(crowded: DevServer) -> None:
    async def run() -> tuple[SubscribeReport, SubscribeReport, int]:
        transport = AsyncCounting()
        async with crowded.async_client(transport=transport) as mq:
            first = await subscribe_app_async(three_routes("async"), BASE, client=mq)
            before = transport.total
            again = await subscribe_app_async(three_routes("async"), BASE, client=mq)
            return first, again, transport.total - before

    first, again, calls = anyio.run(run)
    assert [c.action for c in first.changes] == ["created", "added", "created"]
    assert [c.action for c in again.changes] == ["unchanged"] * 3
    assert calls == 2
    with crowded.client() as mq:
        info = mq.queue("async-mail").info()
    assert (info.type, info.push and info.push.retries, info.push and info.push.retries_delay) == (
        "unicast",
        2,
        40.0,
    )
    [mailer] = info.subscribers
    assert mailer.url == BASE + "/async/c"
    assert mailer.headers["X-Ironpush-Secret"]  # signed: the router will accept its pushes


def test_dry_run_changes_nothing_and_says_what_would_change(dev: DevServer) -> None:
    with dev.client() as mq:
        report = subscribe_app(three_routes("dry"), BASE, client=mq, dry_run=True)
        assert "dry-orders" not in mq.queues(prefix="dry-")
    assert report.dry_run
    assert report.changed == 3
    assert report.text().splitlines()[-1].startswith("would change 3 of 3 subscription(s)")


def test_renamed_route_is_stale_and_pruned_from_its_declared_queue(dev: DevServer) -> None:
    with dev.client() as mq:
        subscribe_app(three_routes("ren"), BASE, client=mq)
        renamed = three_routes("ren", subscriber="mailer2")
        listed = subscribe_app(renamed, BASE, client=mq)
        assert [(s.queue, s.subscriber.name, s.removed) for s in listed.stale] == [
            ("ren-mail", "mailer", False)
        ]
        pruned = subscribe_app(renamed, BASE, client=mq, prune=True)
        assert [(s.queue, s.subscriber.name, s.removed) for s in pruned.stale] == [
            ("ren-mail", "mailer", True)
        ]
        assert {s.name for s in mq.queue("ren-mail").subscribers()} == {"mailer2"}
        assert subscribe_app(renamed, BASE, client=mq).stale == []


def test_lease_warning_is_in_the_report(dev: DevServer) -> None:
    router = PushRouter(secret_keys=[KEY], claim_lease=10.0)
    router.add_route("/q", _handler, queue="warn-q", subscriber="quick", retries=1, retries_delay=3)
    with dev.client() as mq:
        report = subscribe_app(router, BASE, client=mq)
    [warning] = report.warnings
    assert "is not at least twice claim_lease = 10s" in warning


class Refusing(httpx.BaseTransport):
    def handle_request(self, request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"no request expected, got {request.method} {request.url}")


@pytest.mark.parametrize(
    ("base", "message"),
    [
        ("api.example.com/ironmq", "needs http:// or https:// and a host, e.g. https://api."),
        ("localhost:8000/ironmq", "e.g. http://localhost:8000/ironmq"),
        ("ftp://api.example.com/ironmq", "needs http:// or https://"),
        ("https:///ironmq", "needs http:// or https:// and a host"),
        ("https://api.example.com/ironmq?x=1", "must not have a query or fragment"),
    ],
)
def test_a_bad_base_url_is_refused_before_any_request(base: str, message: str) -> None:
    mq = IronMQ(project_id="p", token="t", transport=Refusing())
    with pytest.raises(ValidationError, match="base URL") as raised:
        subscribe_app(three_routes("bad"), base, client=mq)
    assert message in str(raised.value)


def test_a_router_without_routes_is_refused_before_any_request() -> None:
    mq = IronMQ(project_id="p", token="t", transport=Refusing())
    with pytest.raises(ValidationError, match="declares no routes"):
        subscribe_app(PushRouter(secret_keys=[KEY]), BASE, client=mq)


def test_a_pull_queue_is_refused_before_any_route_is_changed(dev: DevServer) -> None:
    router = PushRouter(secret_keys=[KEY])
    router.add_route("/a", _handler, queue="mixed-new", subscriber="a")
    router.add_route("/b", _handler, queue="mixed-pull", subscriber="b")
    with dev.client() as mq:
        mq.queue("mixed-pull").post("made by a post")
        with pytest.raises(ValidationError, match="'mixed-pull' is a pull queue"):
            subscribe_app(router, BASE, client=mq)
        assert mq.queues(prefix="mixed-") == ["mixed-pull"]  # mixed-new was not created


def test_the_report_never_shows_the_secret(dev: DevServer) -> None:
    router = three_routes("masked")
    secrets = [s.subscriber.headers["X-Ironpush-Secret"] for s in router.subscriptions(BASE)]
    with dev.client() as mq:
        report = subscribe_app(router, BASE, client=mq)
    shown: Any = [repr(report), report.text(), str(report.as_json())]
    assert not any(secret in text for secret in secrets for text in shown)
