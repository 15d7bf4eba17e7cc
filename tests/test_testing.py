"""ironpush.testing: building pushes, the simulators (async and sync), and the pytest plugin.

The plugin's promises (a signing key with no setup, a dev server emptied before each test) are
checked in a child pytest run in a temporary directory, without ``IRONPUSH_SECRET_KEYS``: the
environment of a user who just installed ironpush.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from ironpush._protocol import message_url, parse_delivery
from ironpush._signing import push_secret
from ironpush.receiver._outcomes import Defer, PushMessage
from ironpush.receiver._router import PushRouter
from ironpush.testing import FAKE_IRONMQ, PushSimulator, SyncPushSimulator, build_push

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
    # The v3 ack URL is the pusher's: built by ironpush._protocol.message_url.
    assert delivery.subscriber_message_url == message_url(
        FAKE_IRONMQ, "test", "orders", "m1", "billing", delivery.reservation_id
    )


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


# --------------------------------------------------------------------------- the sync twin


def test_sync_simulator_runs_sync_tests_with_acks_and_dedupe(router: PushRouter) -> None:
    app = Starlette(routes=[Mount("/ironmq", app=router)])
    with SyncPushSimulator(app, router=router, mount="/ironmq") as sim:
        assert sim.push("/orders", {"defer": False}).status_code == 200
        deferred = sim.push("/orders", {"defer": True})
        assert deferred.status_code == 202
        [ack] = sim.wait_for_acks(1)
        assert (ack.message_id, ack.subscriber_name) == (deferred.message_id, "billing")
        assert sim.redeliver(deferred).json() == {"status": "duplicate"}
        assert sim.acks == [ack]


def test_sync_simulator_times_out_and_refuses_use_outside_with(router: PushRouter) -> None:
    sim = SyncPushSimulator(router)
    with pytest.raises(RuntimeError, match="inside `with"):
        sim.push("/orders", {})
    with sim:
        sim.push("/orders", {})
        with pytest.raises(TimeoutError):
            sim.wait_for_acks(1, timeout=0.05)


# --------------------------------------------------------------------------- the plugin


def run_pytest(
    tmp_path: Path, *, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """A child pytest run in ``tmp_path``, as a user would start it (no IRONPUSH_SECRET_KEYS)."""
    clean = {k: v for k, v in os.environ.items() if k not in ("IRONPUSH_SECRET_KEYS",)}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**clean, "HOME": str(tmp_path), **(env or {})},
        check=False,
    )


SERVICE = """
from starlette.applications import Starlette
from starlette.routing import Mount
from ironpush import PushRouter

router = PushRouter()  # keys from IRONPUSH_SECRET_KEYS: the plugin provides one in tests
seen = []


@router.route("/jobs", queue="jobs", subscriber="worker")
def jobs(msg):
    seen.append(msg.text)


app = Starlette(routes=[Mount("/ironmq", app=router)], lifespan=router.lifespan)
"""


def test_plugin_gives_a_signing_key_before_the_users_app_is_imported(tmp_path: Path) -> None:
    (tmp_path / "service.py").write_text(SERVICE)
    (tmp_path / "test_service.py").write_text(
        textwrap.dedent(
            """
            import os
            from ironpush.testing import SyncPushSimulator
            from service import app, router, seen

            def test_a_sync_handler_with_no_setup():
                with SyncPushSimulator(app, router=router, mount="/ironmq") as sim:
                    assert sim.push("/jobs", "hello").status_code == 200
                assert seen == ["hello"]
                assert len(os.environ["IRONPUSH_SECRET_KEYS"]) >= 32
            """
        )
    )
    result = run_pytest(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


def test_plugin_keeps_a_configured_key_and_can_be_turned_off(tmp_path: Path) -> None:
    (tmp_path / "test_keys.py").write_text(
        "import os\n\n"
        "def test_key():\n"
        "    assert os.environ['IRONPUSH_SECRET_KEYS'] == 'mine-0123456789abcdef-0123456789ab'\n"
    )
    kept = run_pytest(tmp_path, env={"IRONPUSH_SECRET_KEYS": "mine-0123456789abcdef-0123456789ab"})
    assert kept.returncode == 0, kept.stdout + kept.stderr

    (tmp_path / "test_keys.py").unlink()
    (tmp_path / "service.py").write_text(SERVICE)
    (tmp_path / "test_off.py").write_text("import service\n\ndef test_never_runs():\n    pass\n")
    (tmp_path / "pytest.ini").write_text("[pytest]\nironpush_secret_keys = off\n")
    off = run_pytest(tmp_path)
    assert off.returncode != 0
    assert "no secret keys configured" in off.stdout


def test_ironmq_devserver_is_emptied_before_each_test(tmp_path: Path) -> None:
    (tmp_path / "test_order.py").write_text(
        textwrap.dedent(
            """
            def test_first(ironmq_devserver, ironmq_devserver_session):
                assert ironmq_devserver is ironmq_devserver_session
                with ironmq_devserver.client() as mq:
                    mq.queue("left-behind").post("x")
                    assert mq.queues() == ["left-behind"]

            def test_second_sees_an_empty_server(ironmq_devserver):
                with ironmq_devserver.client() as mq:
                    assert mq.queues() == []
            """
        )
    )
    result = run_pytest(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout
