"""One process per variant of the quick push path, measured two ways: the driver shared by
``bench_tracing`` and ``bench_metrics``.

A benchmark names its variants, the one the others are divided by, and ``build`` (the router
of a variant, called first thing in the variant's process: a variant may decide what can be
imported, so nothing here imports ``ironpush`` at module level). :func:`main` then runs, from
the benchmark's own ``python -m`` command line:

1. **CPU µs per push**: every variant's process stays up and is measured in short alternating
   slots (``--rounds`` cycles of ``--pushes`` pushes, the order rotated each cycle), each
   driving the router in-process as ``inprocess_receiver`` does (fake ``receive``/``send``;
   thread CPU time). Printed: the median µs/push and the median per-cycle ratio to the
   reference with its IQR.
2. **Instructions per push**: each variant once more under
   ``valgrind --tool=callgrind --instr-atstart=no --collect-atstart=no``; a tiny C shim
   (``callgrind.h``'s client requests, built with ``cc`` at run time) turns instrumentation and
   collection on around the measured loop only, after a warm-up.

Example (a benchmark module's whole ``main``)::

    BENCH = Bench("benchmarks.bench_metrics", ["off", "on"], "off", build)
    if __name__ == "__main__":
        main(BENCH, __doc__)
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import gc
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.instructions import ROOT, SHIM  # nothing of ironpush: safe before ``build``


@dataclass(frozen=True, slots=True)
class Bench:
    """A benchmark: its module (run as ``python -m``), variants, reference and router factory.

    ``headers`` are added to every push's own (a ``traceparent``, say).
    """

    module: str
    variants: Sequence[str]
    reference: str
    build: Callable[[str], Any]
    headers: Sequence[tuple[bytes, bytes]] = ()


def scopes(bench: Bench, pushes: int) -> list[dict[str, Any]]:
    """The pushes' ASGI scopes, built before a measured loop (not counted)."""
    from benchmarks.inprocess_receiver import push_headers

    return [
        {
            "type": "http",
            "method": "POST",
            "path": "/orders",
            "root_path": "",
            "query_string": b"",
            "headers": [*push_headers(), *bench.headers],
        }
        for _ in range(pushes)
    ]


async def drive(app: Any, pushes: list[dict[str, Any]]) -> float:
    """Thread CPU µs per push for the scopes ``pushes``."""
    from benchmarks.inprocess_receiver import BODY

    message = {"type": "http.request", "body": BODY, "more_body": False}

    async def receive() -> dict[str, Any]:
        return message

    async def send(event: dict[str, Any]) -> None:
        return None

    started = time.thread_time()
    for scope in pushes:
        await app(scope, receive, send)
    return (time.thread_time() - started) / len(pushes) * 1e6


def settle_heap() -> None:
    """Collect, then freeze what is alive: a full collection's cost grows with everything a
    variant imported (an API, an SDK), and one landing in a measured loop would be counted
    as per-push cost. The pushes' own garbage is collected as usual."""
    gc.collect()
    gc.freeze()


def worker(bench: Bench, variant: str) -> None:
    """Serve rounds on stdin (``N`` pushes each), answer µs/push on stdout."""
    app = bench.build(variant)

    async def serve() -> None:
        await app.startup()
        await drive(app, scopes(bench, 500))  # warm up
        settle_heap()
        for line in sys.stdin:
            pushes = scopes(bench, int(line))
            print(f"{await drive(app, pushes):.4f}", flush=True)

    asyncio.run(serve())


def callgrind_worker(bench: Bench, variant: str, pushes: int, shim: str) -> None:
    """The measured loop between the shim's client requests (run under callgrind)."""
    app = bench.build(variant)
    measure = ctypes.CDLL(shim)

    async def run() -> None:
        await app.startup()
        await drive(app, scopes(bench, 1000))  # warm up: caches, lazy imports, every series made
        measured = scopes(bench, pushes)
        settle_heap()
        loop = drive(app, measured)
        measure.measure_start()
        await loop
        measure.measure_stop()

    asyncio.run(run())


def alternate(bench: Bench, rounds: int, pushes: int) -> dict[str, list[float]]:
    """Each variant's µs/push per round, the variants' processes taking turns."""
    variants = list(bench.variants)
    procs = {
        v: subprocess.Popen(
            [sys.executable, "-m", bench.module, "--worker", v],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for v in variants
    }
    times: dict[str, list[float]] = {v: [] for v in variants}
    try:
        for r in range(rounds):
            k = r % len(variants)
            for v in variants[k:] + variants[:k]:
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


def instructions(bench: Bench, pushes: int) -> dict[str, float]:
    """Each variant's instructions per push, counted by callgrind around the measured loop."""
    counts = {}
    with tempfile.TemporaryDirectory() as tmp:
        source, shim = Path(tmp, "shim.c"), Path(tmp, "shim.so")
        source.write_text(SHIM)
        subprocess.run(["cc", "-O2", "-shared", "-fPIC", "-o", shim, source], check=True)
        for v in bench.variants:
            out = Path(tmp, f"callgrind.{v}")
            subprocess.run(
                [
                    *("valgrind", "--tool=callgrind", "--instr-atstart=no"),
                    *("--collect-atstart=no", f"--callgrind-out-file={out}"),
                    *(sys.executable, "-m", bench.module, "--callgrind", v),
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


def main(bench: Bench, doc: str | None) -> None:
    """The benchmark's command line: measure and print, or be one variant's worker."""
    variants, reference = list(bench.variants), bench.reference
    parser = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=16)
    parser.add_argument("--pushes", type=int, default=2000)
    parser.add_argument("--no-callgrind", action="store_true")
    parser.add_argument("--worker", choices=variants, help=argparse.SUPPRESS)
    parser.add_argument("--callgrind", choices=variants, help=argparse.SUPPRESS)
    parser.add_argument("--shim", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(bench, args.worker)
        return
    if args.callgrind:
        callgrind_worker(bench, args.callgrind, args.pushes, args.shim)
        return
    width = max(8, *(len(v) + 1 for v in variants))  # the names' column
    times = alternate(bench, args.rounds, args.pushes)
    print(f"CPU µs per push ({args.rounds} alternating rounds of {args.pushes} pushes)")
    for v in variants:
        ratios = [t / o for t, o in zip(times[v], times[reference], strict=True)]
        q = statistics.quantiles(ratios, n=4)
        print(
            f"  {v:{width}s} {statistics.median(times[v]):7.2f} µs   /{reference} "
            f"{statistics.median(ratios):.3f} (IQR {q[0]:.3f}-{q[2]:.3f})"
        )
    if args.no_callgrind:
        return
    counts = instructions(bench, args.pushes)
    print(f"instructions per push (callgrind, {args.pushes} pushes after a warm-up)")
    for v in variants:
        print(
            f"  {v:{width}s} {counts[v]:10.0f}   /{reference} {counts[v] / counts[reference]:.4f}"
        )
