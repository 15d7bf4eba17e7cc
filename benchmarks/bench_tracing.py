"""What tracing costs a push: the quick push path (memory store, a handler answering 200) with
the OpenTelemetry API absent, installed with ``PushRouter(tracing=False)``, installed with
tracing on but **no SDK** (the default for a library's users), and with an SDK recording
every span (to a processor that drops them).

Each variant is its own process (the API's presence is decided at import); the driver is
``variant_processes``. Two figures:

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

import logging
import sys
from typing import Any

from benchmarks.variant_processes import Bench, main

TRACEPARENT = (b"traceparent", b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")


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


BENCH = Bench(
    "benchmarks.bench_tracing", ["absent", "off", "no-sdk", "sdk"], "off", build, [TRACEPARENT]
)


if __name__ == "__main__":
    main(BENCH, __doc__)
