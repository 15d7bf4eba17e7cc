"""``ironpush.django``: the management command's failures, and ORM connections in handlers.

Run in the example project (a copy, so its database lives in the test's directory), in a
subprocess: Django's settings and app registry are process-wide.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from framework_kit import clean_env, working_copy

from ironpush.django import managed_connections

pytestmark = pytest.mark.slow

CONNECTIONS = """
import threading

import django

django.setup()
from django.db import connection

from ironpush.django import managed_connections


def handler() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return connection.connection is not None  # open while it runs


def in_a_worker_thread(func) -> tuple[bool, bool]:
    # ironpush runs sync handlers and jobs in worker threads; Django's connections are per thread
    seen = []
    thread = threading.Thread(target=lambda: seen.append((func(), connection.connection is None)))
    thread.start()
    thread.join()
    return seen[0]


print(in_a_worker_thread(handler), in_a_worker_thread(managed_connections(handler)))
"""


def run(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = clean_env(project) | {"DJANGO_SETTINGS_MODULE": "shop.settings"}
    return subprocess.run(
        [sys.executable, *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_managed_connections_closes_the_threads_connection_after_the_call(
    tmp_path: Path,
) -> None:
    project = working_copy("django_project", tmp_path)
    (project / "connections.py").write_text(CONNECTIONS)
    proc = run(project, "connections.py")
    assert proc.returncode == 0, proc.stderr
    # Left alone, the thread keeps its connection; wrapped, it is closed as after a request.
    assert proc.stdout.strip() == "(True, False) (True, True)"


def test_managed_connections_refuses_async_functions() -> None:
    async def handler() -> None:
        return None

    with pytest.raises(TypeError, match="sync_to_async"):
        managed_connections(handler)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--router", "nosuch:router"), "CommandError: cannot import 'nosuch'"),
        (("--router", "shop.models:Order"), "CommandError: shop.models:Order is a ModelBase"),
    ],
)
def test_the_subscribe_command_fails_in_one_line(
    args: tuple[str, ...], message: str, tmp_path: Path
) -> None:
    project = working_copy("django_project", tmp_path)
    base = ("--base-url", "http://127.0.0.1:8000/ironmq")
    proc = run(project, "manage.py", "ironpush_subscribe", *base, *args)
    assert proc.returncode == 1
    assert proc.stderr.startswith(message), proc.stderr
    assert "Traceback" not in proc.stderr
