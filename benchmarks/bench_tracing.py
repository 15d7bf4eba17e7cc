"""What tracing costs a push: the quick push path (memory store, a handler answering 200) with
the OpenTelemetry API absent, installed with ``PushRouter(tracing=False)``, installed with
tracing on but **no SDK** (the default for a library's users), and with an SDK recording
every span (to a processor that drops them).

Each variant is its own process (the API's presence is decided at import). Two figures:

1. **CPU µs per push**: the four processes stay up and are measured in short alternating slots
   (``--rounds`` cycles of ``--pushes`` pushes, the order rotated each cycle), each driving
   the router in-process as ``inprocess_receiver`` does (fake ``receive``/``send``; thread CPU
   time). Printed: the median µs/push and the median per-cycle ratio to ``off`` with its IQR.
2. **Instructions per push**: each variant once more under
   ``valgrind --tool=callgrind --instr-atstart=no --collect-atstart=no``; a tiny C shim
   (``callgrind.h``'s client requests, built with ``cc`` at run time) turns instrumentation and
   collection on around the measured loop only, after a warm-up. Counts do not move with the
   machine's load.

Every push carries a ``traceparent`` header, as a traced producer's do; the per-delivery log
lines are off (``ironpush`` logger at WARNING), and the heap is collected and frozen before
each measured loop (a full collection's cost grows with what a variant imported). Run from the
repository root::

    python -m benchmarks.bench_tracing [--rounds 16] [--pushes 2000] [--no-callgrind]

Not part of CI; needs ``valgrind`` and a C compiler for the instruction counts.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import gc
import logging
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

VARIANTS = ["absent", "off", "no-sdk", "sdk"]
REFERENCE = "off"
TRACEPARENT = (b"traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
ROOT = Path(__file__).resolve().parent.parent
SHIM = r"""
#include <valgrind/callgrind.h>
void measure_start(void) { CALLGRIND_START_INSTRUMENTATION; CALLGRIND_TOGGLE_COLLECT; }
void measure_stop(void) { CALLGRIND_TOGGLE_COLLECT; CALLGRIND_STOP_INSTRUMENTATION; }
"""


# --- one variant (a worker process) ------------------------------------------------------------


class _NoOpenTelemetry:
    """A meta path finder that makes ``import opentelemetry`` fail (the API absent)."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name == "opentelemetry" or name.startswith("opentelemetry."):
            raise ImportError(f"No module named {name!r}")


def build(variant: str) -> Any:
    """The router of ``variant`` (call before anything imports ironpush)."""
    if variant == "absent":
        sys.meta_path.insert(0, _NoOpenTelemetry())
    if variant == "sdk":
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter

        class Drop(SpanExporter):
            def export(self, spans: Any) -> Any:
                from opentelemetry.sdk.trace.export import SpanExportResult

                return SpanExportResult.SUCCESS

        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(Drop()))
        trace.set_tracer_provider(provider)
    from benchmarks import receiver_apps
    from ironpush import _tracing

    # The per-delivery log lines are not what is measured (and would be written here): off.
    logging.getLogger("ironpush").setLevel(logging.WARNING)

    if _tracing.AVAILABLE is (variant == "absent"):
        raise SystemExit(f"{variant}: the OpenTelemetry API is not as this variant needs")
    if (_tracing.tracer() is None) is (variant == "sdk"):
        raise SystemExit(f"{variant}: an SDK is configured where none should be, or not")
    return receiver_apps._router(tracing=variant != "off")


def _scopes(pushes: int) -> list[dict[str, Any]]:
    from benchmarks.inprocess_receiver import push_headers

    return [
        {
            "type": "http",
            "method": "POST",
            "path": "/orders",
            "root_path": "",
            "query_string": b"",
            "headers": [*push_headers(), TRACEPARENT],
        }
        for _ in range(pushes)
    ]


async def _drive(app: Any, scopes: list[dict[str, Any]]) -> float:
    """Thread CPU µs per push for ``scopes``."""
    from benchmarks.inprocess_receiver import BODY

    message = {"type": "http.request", "body": BODY, "more_body": False}

    async def receive() -> dict[str, Any]:
        return message

    async def send(event: dict[str, Any]) -> None:
        return None

    started = time.thread_time()
    for scope in scopes:
        await app(scope, receive, send)
    return (time.thread_time() - started) / len(scopes) * 1e6


def _settle_heap() -> None:
    """Collect, then freeze what is alive: a full collection's cost grows with everything a
    variant imported (the API, the SDK), and one landing in a measured loop would be counted
    as per-push cost. The pushes' own garbage is collected as usual."""
    gc.collect()
    gc.freeze()


def worker(variant: str) -> None:
    """Serve rounds on stdin (``N`` pushes each), answer µs/push on stdout."""
    app = build(variant)

    async def serve() -> None:
        await app.startup()
        await _drive(app, _scopes(500))  # warm up
        _settle_heap()
        for line in sys.stdin:
            pushes = int(line)
            scopes = _scopes(pushes)
            print(f"{await _drive(app, scopes):.4f}", flush=True)

    asyncio.run(serve())


def callgrind_worker(variant: str, pushes: int, shim: str) -> None:
    """The measured loop between the shim's client requests (run under callgrind)."""
    app = build(variant)
    measure = ctypes.CDLL(shim)

    async def run() -> None:
        await app.startup()
        await _drive(app, _scopes(1000))  # warm up: caches, lazy imports
        scopes = _scopes(pushes)
        _settle_heap()
        message_loop = _drive(app, scopes)
        measure.measure_start()
        await message_loop
        measure.measure_stop()

    asyncio.run(run())


# --- the driver ----------------------------------------------------------------------------


def alternate(rounds: int, pushes: int) -> dict[str, list[float]]:
    procs = {
        v: subprocess.Popen(
            [sys.executable, "-m", "benchmarks.bench_tracing", "--worker", v],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for v in VARIANTS
    }
    times: dict[str, list[float]] = {v: [] for v in VARIANTS}
    try:
        for r in range(rounds):
            k = r % len(VARIANTS)
            for v in VARIANTS[k:] + VARIANTS[:k]:
                proc = procs[v]
                assert proc.stdin is not None
                assert proc.stdout is not None
                proc.stdin.write(f"{pushes}\n")
                proc.stdin.flush()
                times[v].append(float(proc.stdout.readline()))
    finally:
        for proc in procs.values():
            if proc.stdin is not None:
                proc.stdin.close()
            proc.wait(timeout=60)
    return times


def instructions(pushes: int) -> dict[str, float]:
    counts = {}
    with tempfile.TemporaryDirectory() as tmp:
        source, shim = Path(tmp, "shim.c"), Path(tmp, "shim.so")
        source.write_text(SHIM)
        subprocess.run(["cc", "-O2", "-shared", "-fPIC", "-o", shim, source], check=True)
        for v in VARIANTS:
            out = Path(tmp, f"callgrind.{v}")
            subprocess.run(
                [
                    *("valgrind", "--tool=callgrind", "--instr-atstart=no"),
                    *("--collect-atstart=no", f"--callgrind-out-file={out}"),
                    *(sys.executable, "-m", "benchmarks.bench_tracing", "--callgrind", v),
                    *("--pushes", str(pushes), "--shim", str(shim)),
                ],
                cwd=ROOT,
                check=True,
                capture_output=True,
                env={**os.environ, "PYTHONMALLOC": "malloc"},
            )
            # "totals:" (the collected events); "summary:" is 0 with --collect-atstart=no
            found = re.search(r"^totals: (\d+)", out.read_text(), flags=re.M)
            assert found is not None, f"no totals in {out}"
            counts[v] = int(found.group(1)) / pushes
    return counts


def _quartiles(values: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(values, n=4)
    return q[0], q[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=16)
    parser.add_argument("--pushes", type=int, default=2000)
    parser.add_argument("--no-callgrind", action="store_true")
    parser.add_argument("--worker", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--callgrind", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--shim", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker)
        return
    if args.callgrind:
        callgrind_worker(args.callgrind, args.pushes, args.shim)
        return
    times = alternate(args.rounds, args.pushes)
    print(f"CPU µs per push ({args.rounds} alternating rounds of {args.pushes} pushes)")
    for v in VARIANTS:
        ratios = [t / o for t, o in zip(times[v], times[REFERENCE], strict=True)]
        low, high = _quartiles(ratios)
        print(
            f"  {v:8s} {statistics.median(times[v]):7.2f} µs   /{REFERENCE} "
            f"{statistics.median(ratios):.3f} (IQR {low:.3f}-{high:.3f})"
        )
    if args.no_callgrind:
        return
    counts = instructions(args.pushes)
    print(f"instructions per push (callgrind, {args.pushes} pushes after a warm-up)")
    for v in VARIANTS:
        print(f"  {v:8s} {counts[v]:10.0f}   /{REFERENCE} {counts[v] / counts[REFERENCE]:.4f}")


if __name__ == "__main__":
    main()
