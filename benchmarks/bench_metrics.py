"""What the latency histograms cost a push: the quick push path (memory store, a handler
answering 200) with ``PushRouter(metrics=False)`` (**off**), with the histograms on (**on**,
the default: push, handler and store-operation histograms per push, served on ``/_metrics``),
and on with an OpenTelemetry SDK meter provider set (**otel-sdk**: each observation also
recorded through the metrics API).

Each variant is its own process; the measurement is ``bench_tracing``'s (the driver both share
is ``variant_processes``): (1) thread CPU µs per push in alternating slots (``--rounds`` cycles
of ``--pushes`` pushes, order rotated), the median and the median per-cycle ratio to ``off``
with its IQR; (2) instructions per push under ``valgrind --tool=callgrind --instr-atstart=no
--collect-atstart=no``, counted only around the measured loop through ``callgrind.h`` client
requests (a C shim built at run time). The per-delivery log lines are off and the heap is
frozen before each measured loop, as there.
Run from the repository root::

    python -m benchmarks.bench_metrics [--rounds 16] [--pushes 2000] [--no-callgrind]

Not part of CI; needs ``valgrind`` and a C compiler for the instruction counts.
"""

from __future__ import annotations

import logging
from typing import Any

from benchmarks.variant_processes import Bench, main


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


BENCH = Bench("benchmarks.bench_metrics", ["off", "on", "otel-sdk"], "off", build)


if __name__ == "__main__":
    main(BENCH, __doc__)
