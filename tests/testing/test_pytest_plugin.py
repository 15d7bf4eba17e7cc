"""ironpush.testing as a pytest plugin.

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
