"""Liveness and readiness (issue 11 item 4, issue 19 N4): ``/_health/ready`` (and ``/_health``)
is 503 "failing" with the reasons when the store fails or hangs past its own timeout, or most
recent pushes were refused; 200 "degraded" when the store is slow but answers; 200 "ok"
otherwise, in bounded time. ``/_health/live`` is 200 whatever the store does. Stores and the
runtime add reasons through ``problems()``. (Over real sockets, Redis and PostgreSQL behind a
delaying proxy: ``tests/cli/test_serve_health.py``.)"""

from __future__ import annotations

import asyncio
from typing import Any

import anyio
import pytest

from ironpush import Health
from ironpush.receiver._health import DEFAULT_PROBE_TIMEOUT, PROBE_MARGIN, StoreProbe
from ironpush.receiver._outcomes import PushMessage, Retry
from ironpush.receiver._router import PushRouter
from ironpush.receiver.stores import MemoryStore, NullStore
from ironpush.testing import PushSimulator
from receiver.flaky_store import FlakyStore

pytestmark = pytest.mark.anyio
KEYS = ["health-key"]
FIELDS = {"status", "reasons", "checks", "routes", "counters", "outbox_depth", "inflight_jobs"}
GAUGES = {"pending_completions"}  # and any other gauge the runtime keeps
CHECKS = {"store", "pushes", "runtime"}


class SlowStore(FlakyStore):
    """Answers ``check()`` and ``depth()`` after ``delay`` seconds each; counts the checks."""

    def __init__(self, delay: float = 0.0, *, timeout: float | None = None) -> None:
        super().__init__()
        self.delay = delay
        self.checks = 0
        if timeout is not None:
            self.timeout = timeout  # what RedisStore/PostgresStore call their bound

    async def check(self) -> None:
        self.checks += 1
        await anyio.sleep(self.delay)  # the store's own latency (the thing under test)
        await super().check()

    async def depth(self) -> int:
        await anyio.sleep(self.delay)
        return await super().depth()


class ReportingStore(FlakyStore):
    """A store that reports ``found`` through ``problems()`` (sync, async, or raising)."""

    def __init__(self, found: list[tuple[str, str]], *, mode: str = "sync") -> None:
        super().__init__()
        self.found = found
        self.mode = mode

    def problems(self) -> Any:
        if self.mode == "raise":
            raise RuntimeError("postgres://user:pw@db/x")  # never shown: the type only
        if self.mode == "async":

            async def later() -> list[tuple[str, str]]:
                return self.found

            return later()
        return self.found


def router_on(store: MemoryStore, **options: Any) -> PushRouter:
    router = PushRouter(secret_keys=KEYS, store=store, **options)
    router.add_route("/r", lambda msg: None, queue="q", subscriber="s")
    return router


async def health(sim: PushSimulator, path: str = "/_health/ready") -> tuple[int, dict[str, Any]]:
    answer = await sim.http.get(path)
    return answer.status_code, answer.json()


async def test_ready_is_200_ok_with_its_checks_and_durations_while_all_is_well() -> None:
    async with PushSimulator(router_on(FlakyStore())) as sim:
        assert (await sim.push("/r", "x")).status_code == 200
        code, body = await health(sim)
        old_code, old = await health(sim, "/_health")
    assert (code, body["status"], body["reasons"]) == (200, "ok", [])
    assert FIELDS <= set(body) <= FIELDS | GAUGES
    assert set(body["checks"]) == CHECKS
    for check in body["checks"].values():
        assert check["status"] == "ok"
        assert check["duration"] >= 0
    assert body["counters"]["acked"] == 1
    assert (old_code, set(old), old["status"]) == (200, set(body), "ok")  # /_health = ready


async def test_a_failing_store_makes_ready_503_and_leaves_live_200() -> None:
    store = FlakyStore()
    store.fail.add("check")
    async with PushSimulator(router_on(store)) as sim:
        code, body = await health(sim)
        old_code, _ = await health(sim, "/_health")
        live = await health(sim, "/_health/live")
        store.fail.clear()  # the store heals: so does readiness
        healed, _ = await health(sim)
    assert (code, body["status"], old_code) == (503, "failing", 503)
    assert body["checks"]["store"]["status"] == "failing"
    [reason] = body["reasons"]
    assert "unavailable" in reason
    assert "test fault" in reason
    assert body["reason"] == reason
    assert live == (200, {"status": "ok"})
    assert healed == 200


async def test_a_slow_store_is_degraded_but_ready() -> None:
    # 0.3 s per call: the old 0.5 s probe (check then depth) answered 503 here.
    store = SlowStore(0.3, timeout=2.0)
    async with PushSimulator(router_on(store)) as sim:
        code, body = await health(sim)
    assert (code, body["status"]) == (200, "degraded")
    store_check = body["checks"]["store"]
    assert store_check["status"] == "degraded"
    assert 0.3 <= store_check["duration"] < 2.5
    assert "slow" in body["reason"]
    assert body["checks"]["pushes"]["status"] == "ok"


async def test_the_slow_threshold_is_a_setting() -> None:
    store = SlowStore(0.3, timeout=2.0)
    async with PushSimulator(router_on(store, health=Health(slow=5.0))) as sim:
        code, body = await health(sim)
    assert (code, body["status"]) == (200, "ok")


async def test_a_hanging_store_makes_ready_503_in_bounded_time_and_live_stays_200() -> None:
    store = SlowStore()
    store.hang.add("check")
    async with PushSimulator(router_on(store, health=Health(timeout=0.05))) as sim:
        with anyio.fail_after(30):  # a hang would hit this, not the assertion
            first = await health(sim)
            second = await health(sim)  # joins the probe still in flight: past its deadline
            live = await health(sim, "/_health/live")
        assert (await sim.push("/r", "x")).status_code == 200  # pushes are not held up
        assert store.checks == 1  # one pending probe, not one per health request
        store.unhang.set()
    for code, body in (first, second):
        assert (code, body["status"]) == (503, "failing")
        assert "did not answer within 0.05 s" in body["reason"]
    assert live == (200, {"status": "ok"})


async def test_concurrent_health_calls_share_one_probe() -> None:
    store = SlowStore(0.2, timeout=2.0)
    async with PushSimulator(router_on(store)) as sim:
        answers = await asyncio.gather(*(health(sim) for _ in range(10)))
    assert store.checks == 1
    assert {code for code, _ in answers} == {200}


async def test_the_probe_deadline_follows_the_store_timeout() -> None:
    assert StoreProbe(SlowStore(timeout=3.0), timeout=None, slow=0.1).timeout == 3.0 + PROBE_MARGIN
    wrapped = NullStore(outbox=SlowStore(timeout=1.0))  # dedupe off: the outbox's store
    assert StoreProbe(wrapped, timeout=None, slow=0.1).timeout == 1.0 + PROBE_MARGIN
    assert StoreProbe(MemoryStore(), timeout=None, slow=0.1).timeout == DEFAULT_PROBE_TIMEOUT
    assert StoreProbe(MemoryStore(), timeout=0.7, slow=0.1).timeout == 0.7  # Health(timeout=)


async def test_a_store_slower_than_the_probe_but_within_its_own_timeout_is_ready() -> None:
    # The old probe (0.5 s whatever the store) failed a store its pushes found fine.
    store = SlowStore(0.7, timeout=2.0)
    async with PushSimulator(router_on(store)) as sim:
        assert (await sim.push("/r", "x")).status_code == 200
        code, body = await health(sim)
    assert (code, body["status"]) == (200, "degraded")


async def test_most_pushes_refused_with_503_makes_ready_503() -> None:
    store = FlakyStore()
    store.fail.add("claim")  # every push: 503 "unavailable"
    async with PushSimulator(router_on(store)) as sim:
        for _ in range(12):
            assert (await sim.push("/r", "x")).status_code == 503
        code, body = await health(sim)
        live = await health(sim, "/_health/live")
    assert (code, body["status"]) == (503, "failing")
    assert body["checks"]["pushes"]["status"] == "failing"
    assert "12 of the last 12 pushes were refused" in body["reason"]
    assert live[0] == 200


async def test_few_refusals_or_handler_retries_keep_ready_200() -> None:
    store = FlakyStore()
    router = PushRouter(secret_keys=KEYS, store=store)

    async def retry(msg: PushMessage) -> Retry:
        return Retry("the handler's own choice")

    router.add_route("/retry", retry, queue="q", subscriber="s")
    async with PushSimulator(router) as sim:
        for _ in range(12):
            assert (await sim.push("/retry", "x")).status_code == 503
        store.fail.add("claim")
        for _ in range(2):
            assert (await sim.push("/retry", "x")).status_code == 503
        code, body = await health(sim)
    assert (code, body["status"]) == (200, "ok")


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_reasons_a_store_reports_set_the_level(mode: str) -> None:
    degraded = ReportingStore([("degraded", "evictions allowed by the policy")], mode=mode)
    failing = ReportingStore(
        [("degraded", "slow replica"), ("failing", "412 keys evicted")], mode=mode
    )
    async with PushSimulator(router_on(degraded)) as sim:
        d_code, d_body = await health(sim)
    async with PushSimulator(router_on(failing)) as sim:
        f_code, f_body = await health(sim)
        live = await health(sim, "/_health/live")
    assert (d_code, d_body["status"]) == (200, "degraded")
    assert d_body["reasons"] == ["evictions allowed by the policy"]
    assert (f_code, f_body["status"]) == (503, "failing")
    assert f_body["checks"]["store"]["reasons"] == ["slow replica", "412 keys evicted"]
    assert live[0] == 200


async def test_an_unknown_level_counts_as_failing_and_a_broken_reporter_as_degraded() -> None:
    unknown = ReportingStore([("critical", "something")])
    broken = ReportingStore([], mode="raise")
    async with PushSimulator(router_on(unknown)) as sim:
        u_code, _ = await health(sim)
    async with PushSimulator(router_on(broken)) as sim:
        b_code, b_body = await health(sim)
    assert u_code == 503
    assert (b_code, b_body["status"]) == (200, "degraded")
    assert b_body["reasons"] == ["ReportingStore.problems() failed: RuntimeError"]
    assert "pw" not in str(b_body)


async def test_reasons_the_runtime_reports_show_under_runtime() -> None:
    router = router_on(FlakyStore())
    async with PushSimulator(router) as sim:
        assert (await sim.push("/r", "x")).status_code == 200  # starts the runtime
        runtime = router.background.running
        assert runtime is not None
        runtime.problems = lambda: [("degraded", "3 completions pending")]  # type: ignore[method-assign]
        code, body = await health(sim)
    assert (code, body["status"]) == (200, "degraded")
    assert body["checks"]["runtime"] == {
        "status": "degraded",
        "duration": body["checks"]["runtime"]["duration"],
        "reasons": ["3 completions pending"],
    }


async def test_live_answers_head_and_says_draining_during_shutdown() -> None:
    router = router_on(FlakyStore())
    async with PushSimulator(router) as sim:
        assert (await sim.http.head("/_health/live")).status_code == 200
        await router.shutdown()
        live = await health(sim, "/_health/live")
        ready = await health(sim)
    assert live == (200, {"status": "draining"})
    assert (ready[0], ready[1]["status"]) == (200, "draining")
    assert "shutting down" in ready[1]["reason"]
