"""Without ``opentelemetry-api`` (no ``ironpush[otel]``), every module imports and the paths
that trace work the same: a fresh interpreter where ``import opentelemetry`` fails runs a
deferred push and its ack, a Celery hand-off and a post to a real dev server."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from ironpush.devserver import DevServer

ROOT = Path(__file__).resolve().parent.parent.parent
MODULES = sorted(
    ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
    for path in (ROOT / "ironpush").rglob("*.py")
)

SCRIPT = textwrap.dedent(
    """
    import importlib, sys

    class NoOpenTelemetry:
        def find_spec(self, name, path=None, target=None):
            if name == "opentelemetry" or name.startswith("opentelemetry."):
                raise ImportError(f"No module named {name!r} (blocked by the test)")
            return None

    sys.meta_path.insert(0, NoOpenTelemetry())
    MODULES = sys.argv[1].split(",")
    for name in MODULES:
        if name.startswith("ironpush.django") or name.endswith("__main__"):
            continue
        importlib.import_module(name)
    assert not any(m.startswith("opentelemetry") for m in sys.modules)

    from ironpush import Defer, IronMQ, PushRouter, _tracing
    from ironpush.testing import SyncPushSimulator

    assert _tracing.AVAILABLE is False and _tracing.tracer() is None

    def job():
        return None

    router = PushRouter(secret_keys=["no-otel-key-0123456789abcdef-0123456789"])
    router.add_route("/orders", lambda msg: Defer(job), queue="orders", subscriber="billing")
    router.add_route("/plain", lambda msg: None, queue="plain", subscriber="billing")
    with SyncPushSimulator(router) as sim:
        context = {"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"}
        assert sim.push("/orders", "x", headers=context).status_code == 202
        assert sim.push("/plain", "x").status_code == 200
        assert len(sim.wait_for_acks(1)) == 1

    with IronMQ() as mq:
        mq.queue(sys.argv[2]).post("hello")
        [stored] = mq.queue(sys.argv[2]).peek()
        assert not stored.raw.get("push_headers"), stored.raw
    print("ok")
    """
)


def test_every_module_imports_and_the_traced_paths_work_without_the_api(queue_name: str) -> None:
    with DevServer() as dev:
        env = {
            **os.environ,
            "IRONMQ_EMULATOR_HOST": dev.url,
            "PYTHONPATH": str(ROOT),
        }
        proc = subprocess.run(
            [sys.executable, "-c", SCRIPT, ",".join(MODULES), queue_name],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stdout.strip().endswith("ok")
