"""What the latency histograms cost a push: the quick push path (memory store, a handler
answering 200) with ``PushRouter(metrics=False)`` (**off**), with the histograms on (**on**,
the default: push, handler and store-operation histograms per push, served on ``/_metrics``),
and on with an OpenTelemetry SDK meter provider set (**otel-sdk**: each observation also
recorded through the metrics API).

Each variant is its own process; the measurement is ``bench_tracing``'s: (1) thread CPU µs per
push in alternating slots (``--rounds`` cycles of ``--pushes`` pushes, order rotated), the
median and the median per-cycle ratio to ``off`` with its IQR; (2) instructions per push under
``valgrind --tool=callgrind --instr-atstart=no --collect-atstart=no``, counted only around the
measured loop through ``callgrind.h`` client requests (a C shim built at run time). The
per-delivery log lines are off and the heap is frozen before each measured loop, as there.
Run from the repository root::

    python -m benchmarks.bench_metrics [--rounds 16] [--pushes 2000] [--no-callgrind]

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

from benchmarks.bench_tracing import SHIM

VARIANTS = ["off", "on", "otel-sdk"]
REFERENCE = "off"
ROOT = Path(__file__).resolve().parent.parent


def build(variant: str) -> Any:
    """The router of ``variant``."""
    if variant == "otel-sdk":
        from opentelemetry.metrics import set_meter_provider
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader

        set_meter_provider(MeterProvider(metric_readers=[InMemoryMetricReader()]))
    from benchmarks import receiver_apps
    from ironpush.receiver import _otel_metrics

    logging.getLogger("ironpush").setLevel(logging.WARNING)  # the log lines are not measured
    if _otel_metrics.provider_set() is not (variant == "otel-sdk"):
        raise SystemExit(f"{variant}: a meter provider is set where none should be, or not")
    return receiver_apps._router(metrics=variant != "off")


def _scopes(pushes: int) -> list[dict[str, Any]]:
    from benchmarks.inprocess_receiver import push_headers

    return [
        {
            "type": "http",
            "method": "POST",
            "path": "/orders",
            "root_path": "",
            "query_string": b"",
            "headers": push_headers(),
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
            print(f"{await _drive(app, _scopes(int(line))):.4f}", flush=True)

    asyncio.run(serve())


def callgrind_worker(variant: str, pushes: int, shim: str) -> None:
    """The measured loop between the shim's client requests (run under callgrind)."""
    app = build(variant)
    measure = ctypes.CDLL(shim)

    async def run() -> None:
        await app.startup()
        await _drive(app, _scopes(1000))  # warm up: caches, lazy imports, every series made
        scopes = _scopes(pushes)
        _settle_heap()
        loop = _drive(app, scopes)
        measure.measure_start()
        await loop
        measure.measure_stop()

    asyncio.run(run())


def alternate(rounds: int, pushes: int) -> dict[str, list[float]]:
    procs = {
        v: subprocess.Popen(
            [sys.executable, "-m", "benchmarks.bench_metrics", "--worker", v],
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
                    *(sys.executable, "-m", "benchmarks.bench_metrics", "--callgrind", v),
                    *("--pushes", str(pushes), "--shim", str(shim)),
                ],
                cwd=ROOT,
                check=True,
                capture_output=True,
                env={**os.environ, "PYTHONMALLOC": "malloc"},
            )
            found = re.search(r"^totals: (\d+)", out.read_text(), flags=re.M)
            assert found is not None, f"no totals in {out}"
            counts[v] = int(found.group(1)) / pushes
    return counts


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
        q = statistics.quantiles(ratios, n=4)
        print(
            f"  {v:9s} {statistics.median(times[v]):7.2f} µs   /{REFERENCE} "
            f"{statistics.median(ratios):.3f} (IQR {q[0]:.3f}-{q[2]:.3f})"
        )
    if args.no_callgrind:
        return
    counts = instructions(args.pushes)
    print(f"instructions per push (callgrind, {args.pushes} pushes after a warm-up)")
    for v in VARIANTS:
        print(f"  {v:9s} {counts[v]:10.0f}   /{REFERENCE} {counts[v] / counts[REFERENCE]:.4f}")


if __name__ == "__main__":
    main()
