"""What a router tells: one log line per delivery, health and metrics."""

from __future__ import annotations

import logging

import pytest

from ironpush._signing import push_secret
from ironpush.receiver._metrics import Tally
from ironpush.testing import PushSimulator

from .contract import KEYS, Calls

pytestmark = pytest.mark.anyio


# --- observability -----------------------------------------------------------------------------


async def test_one_log_line_per_delivery_without_secrets(
    sim: PushSimulator, calls: Calls, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="ironpush.receiver"):
        result = await sim.push("/plain", "external")
        await sim.redeliver(result)
    lines = [r for r in caplog.records if r.getMessage().startswith("push ")]
    assert len(lines) == 2
    assert lines[0].__dict__["outcome"] == "deferred"
    assert lines[1].__dict__["outcome"] == "in_progress"
    assert result.message_id in lines[0].getMessage()
    assert "queue=orders" in lines[0].getMessage()
    secret = push_secret("orders", "billing", KEYS)
    assert secret not in caplog.text
    assert calls.messages[0].ack_token not in caplog.text
    assert secret not in repr(sim.router)
    assert secret not in repr(calls.messages[0])


async def test_health_endpoint_reports_counters_and_gauges(sim: PushSimulator) -> None:
    await sim.push("/plain", "ack")
    await sim.push("/plain", "x", secret=None)
    health = (await sim.http.get("/_health")).json()
    assert health["status"] == "ok"
    assert health["routes"] == 2
    assert health["counters"]["received"] == 2
    assert health["counters"]["acked"] == 1
    assert health["counters"]["verification_failures"] == 1
    assert health["outbox_depth"] == 0
    assert health["inflight_jobs"] == 0


async def test_metrics_endpoint_serves_prometheus_text(sim: PushSimulator) -> None:
    await sim.push("/plain", "drop")
    answer = await sim.http.get("/_metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    assert "ironpush_dropped_total 1.0" in answer.text
    assert 'ironpush_pushes_total{outcome="dropped",queue="orders",subscriber="billing"} 1.0' in (
        answer.text
    )


async def test_metrics_without_prometheus_client_gives_a_pip_hint(
    sim: PushSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(__import__("sys").modules, "prometheus_client", None)
    answer = await sim.http.get("/_metrics")
    assert answer.status_code == 501
    assert "pip install 'ironpush[metrics]'" in answer.text


def test_a_tally_counts_from_zero_and_stays_a_plain_mapping() -> None:
    seen = Tally[str]()
    seen["acked"] += 1
    seen["acked"] += 1
    assert seen["dropped"] == 0  # never counted: 0, and not added by the read
    assert seen == {"acked": 2}
    assert type(seen).__mro__[1:] == (dict, object)  # not a Counter: plain item slots
