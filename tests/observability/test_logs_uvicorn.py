"""Under plain uvicorn (the Django/FastAPI deployment: no ``ironpush serve``) the receiver's line
per delivery shows, though nothing configured the root logger; and once the application
configures logging itself, its handlers show the lines, once each.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from log_kit import direct_push, run_script, start
from log_service import TOKEN
from support import wait_until

from ironpush.devserver import DevServer


@pytest.fixture
def dev() -> Iterator[DevServer]:
    with DevServer(token=TOKEN) as server:
        yield server


def test_plain_uvicorn_shows_the_line_per_delivery(dev: DevServer, tmp_path: Path) -> None:
    service = start(tmp_path, ["-m", "uvicorn", "log_service:app"], dev_port=dev.port)
    try:
        message_id = direct_push(service, "/ok")
        line = f"push {message_id} queue=logs-ok subscriber=svc outcome=acked status=200"
        wait_until(lambda: line in service.text(), 30, "the delivery line", report=service.text)
    finally:
        service.stop()
    err = service.err.read_text()
    [delivery] = [x for x in err.splitlines() if line in x]
    assert " INFO    ironpush.receiver: push " in delivery  # the CLI's format, logger named
    assert err.count("PushRouter started on its first push") == 1
    assert "Uvicorn running on" in err  # uvicorn's own lines are as they were
    for secret in service.secrets():
        assert secret not in service.text()


SCRIPT = """
import asyncio, logging
from ironpush import PushMessage, PushRouter
from ironpush.testing import PushSimulator

router = PushRouter(secret_keys=["k" * 32])

@router.route("/ok", queue="q", subscriber="s")
def ok(msg: PushMessage) -> None:
    return None

async def main() -> None:
    async with PushSimulator(router) as sim:
        await sim.push("/ok", "one")   # nothing configured logging: the fallback shows it
        logging.basicConfig(level=logging.INFO, format="ROOT %(name)s %(message)s")
        await sim.push("/ok", "two")   # now the application's handler shows it, alone

asyncio.run(main())
"""


def test_the_fallback_steps_aside_once_the_application_configures_logging() -> None:
    proc = run_script(SCRIPT)
    deliveries = [x for x in proc.stderr.splitlines() if "queue=q subscriber=s" in x]
    assert len(deliveries) == 2, proc.stderr
    assert " INFO    ironpush.receiver: push " in deliveries[0]
    assert deliveries[1].startswith("ROOT ironpush.receiver push ")
