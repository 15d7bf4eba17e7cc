"""ironpush.testing: building pushes, the simulator on a mounted app, and the pytest plugin."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from ironpush.protocol import parse_delivery
from ironpush.receiver.outcomes import Defer, PushMessage
from ironpush.receiver.router import PushRouter
from ironpush.signing import push_secret
from ironpush.testing import PushSimulator, build_push

KEYS = ["testing-key"]


@pytest.fixture
def router() -> PushRouter:
    router = PushRouter(secret_keys=KEYS)

    @router.route("/orders", queue="orders", subscriber="billing", json=True)
    async def orders(msg: PushMessage) -> Defer | None:
        return Defer(lambda: None) if msg.json().get("defer") else None

    return router


def test_build_push_makes_v3_headers_with_the_secret(router: PushRouter) -> None:
    headers, content, query = build_push(router, "/orders", {"id": 1}, message_id="m1")
    delivery = parse_delivery(headers)
    assert (delivery.message_id, delivery.subscriber_name, delivery.flavour) == (
        "m1",
        "billing",
        "v3",
    )
    assert delivery.reservation_id
    assert headers["X-Ironpush-Secret"] == push_secret("orders", "billing", KEYS)
    assert headers["User-Agent"] == "IronMQ Pusherd"
    assert content == b'{"id": 1}'
    assert query == ""


def test_build_push_legacy_and_query_secret(router: PushRouter) -> None:
    headers, _, query = build_push(router, "/orders", "x", legacy=True, secret_in="query")
    delivery = parse_delivery(headers)
    assert delivery.flavour == "legacy"
    assert delivery.subscriber_message_url
    assert "X-Ironpush-Secret" not in headers
    assert query.startswith("ironpush_secret=")
    with pytest.raises(ValueError, match="no route"):
        build_push(router, "/missing")


@pytest.mark.anyio
async def test_simulator_on_a_mounted_app_records_acks(router: PushRouter) -> None:
    app = Starlette(routes=[Mount("/ironmq", app=router)])
    async with PushSimulator(app, router=router, mount="/ironmq") as sim:
        assert (await sim.push("/orders", {"defer": False})).status_code == 200
        deferred = await sim.push("/orders", {"defer": True})
        assert deferred.status_code == 202
        [ack] = await sim.wait_for_acks(1)
        assert (ack.message_id, ack.status_code) == (deferred.message_id, 200)
        assert (await sim.redeliver(deferred)).json() == {"status": "duplicate"}


@pytest.mark.anyio
async def test_wait_for_acks_times_out(router: PushRouter) -> None:
    async with PushSimulator(router) as sim:
        await sim.push("/orders", {})
        with pytest.raises(TimeoutError):
            await sim.wait_for_acks(1, timeout=0.05)


def test_simulator_needs_the_router_for_a_plain_app() -> None:
    with pytest.raises(TypeError, match="router="):
        PushSimulator(Starlette())


def test_usable_as_a_pytest_plugin_with_the_devserver_fixture(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text('pytest_plugins = ["ironpush.testing"]\n')
    (tmp_path / "test_user.py").write_text(
        textwrap.dedent(
            """
            def test_devserver_fixture(ironmq_devserver):
                with ironmq_devserver.client() as mq:
                    mq.queue("plugin-check").post("hello")
                    assert mq.queue("plugin-check").size() == 1
            """
        )
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
