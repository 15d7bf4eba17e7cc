"""The quick path against bare Starlette, by instructions per push (issue 23, point 5).

Every variant is counted by ``benchmarks/instructions.py`` (callgrind, in-process, client
requests around the measured pushes only: the count does not move with the machine's load):
the pushes of ``bench_receiver`` (``build_push_headers``, a unique message id each, the push
secret, a 1 KB JSON body) through a fake ASGI ``receive``/``send``, ``--concurrency`` in
flight, after a warm-up, with the heap frozen. The variants:

- ``bare``: a Starlette ``Route`` reading the body and answering an empty 200 (the anchor);
- ``raw``: a raw ASGI app doing the same (the driver's own share is below it);
- ``router_logged``: ``PushRouter`` with **the defaults a user gets**: verification with a
  secret, the memory store's dedupe, ``json=True``, the latency histograms on, tracing on with
  the OpenTelemetry API importable and no SDK, and the per-delivery INFO line written to stderr
  by the fallback handler (nothing configured logging, as under plain uvicorn);
- ``router``: the same with the ``ironpush`` logger at WARNING (no delivery line: what an
  application that configured logging at WARNING gets, and the method of ``bench_tracing``);
- ``router_nometrics`` / ``router_nometrics_logged``: ``PushRouter(metrics=False)``;
- ``--ablations``: the quiet router without one feature each, and the defaults without the
  ``speedups`` extra (``json.loads`` instead of orjson: a plain ``pip install ironpush``).

Each line prints instructions per push and ``bare / variant`` (the goal: ≥ 0.85, stretch 1.0).
``--profile VARIANT`` prints a cProfile of one variant's loop instead (where the rest goes).
Run from the repository root (needs ``valgrind`` and a C compiler)::

    python -m benchmarks.bench_quick_path [--pushes 2000] [--concurrency 32] [--write]
    python -m benchmarks.bench_quick_path --profile router

``--write`` records the table in ``benchmarks/README.md`` (between the
``bench_quick_path`` markers). Not part of CI.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import datetime
import gc
import logging
import os
import platform
import pstats
import re
import sys
from pathlib import Path
from typing import Any

from benchmarks import receiver_apps
from benchmarks.instructions import Driver, Lifespan, Target, available, count

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "benchmarks" / "README.md"
MODULE = "benchmarks.bench_quick_path"
VARIANTS = {
    "bare": ("benchmarks.receiver_apps:bare", "bare Starlette `Route`, empty 200 (the anchor)"),
    "raw": ("benchmarks.receiver_apps:raw", "raw ASGI, empty 200"),
    "router_logged": (
        f"{MODULE}:router_logged",
        "`PushRouter` quick 200, **the defaults** (metrics on, tracing API without SDK, "
        "verify, memory dedupe, `json=True`, the INFO line per delivery to stderr)",
    ),
    "router": (f"{MODULE}:router", "the same, `ironpush` logger at WARNING (no delivery line)"),
    "router_nometrics_logged": (
        f"{MODULE}:router_nometrics_logged",
        "`PushRouter(metrics=False)`, the delivery line on",
    ),
    "router_nometrics": (
        f"{MODULE}:router_nometrics",
        "`PushRouter(metrics=False)`, no delivery line",
    ),
}
#: What single features cost (``--ablations``): the quiet router without one of them.
ABLATIONS = {
    "router_untraced": (f"{MODULE}:router_untraced", "the quiet router, `tracing=False`"),
    "router_nojson": (f"{MODULE}:router_nojson", "the quiet router, a route without `json=True`"),
    "router_unverified": (f"{MODULE}:router_unverified", "the quiet router, `verify=False`"),
    "router_logged_stdlib_json": (
        f"{MODULE}:router_logged_stdlib_json",
        "the defaults without the `speedups` extra (no orjson: the standard library's `json`)",
    ),
}
ANCHOR = "bare"


# --------------------------------------------------------------------------- the apps


def _quiet() -> None:
    logging.getLogger("ironpush").setLevel(logging.WARNING)


def router_logged() -> Any:
    # The router's start (lifespan) gives the ironpush logger its fallback handler at INFO,
    # as under plain uvicorn: one line per push to stderr (the worker's is a pipe).
    return receiver_apps._router()


def router() -> Any:
    _quiet()
    return receiver_apps._router()


def router_nometrics_logged() -> Any:
    return receiver_apps._router(metrics=False)


def router_nometrics() -> Any:
    _quiet()
    return receiver_apps._router(metrics=False)


def router_untraced() -> Any:
    _quiet()
    return receiver_apps._router(tracing=False)


def router_unverified() -> Any:
    from ironpush import PushRouter

    _quiet()
    app = PushRouter(verify=False)

    @app.route("/orders", queue=receiver_apps.QUEUE, subscriber=receiver_apps.SUBSCRIBER, json=True)
    async def orders(msg: Any) -> None:
        return None

    return app


def router_logged_stdlib_json() -> Any:
    # What `pip install ironpush` without [speedups] parses with: _json.loads falls back to
    # json.loads when orjson is absent (its module global, read on each call).
    from ironpush import _json

    _json._fast_loads = None
    return receiver_apps._router()


def router_nojson() -> Any:
    from ironpush import PushRouter

    _quiet()
    app = PushRouter(secret_keys=receiver_apps.KEYS)

    @app.route("/orders", queue=receiver_apps.QUEUE, subscriber=receiver_apps.SUBSCRIBER)
    async def orders(msg: Any) -> None:
        return None

    return app


# --------------------------------------------------------------------------- measuring


def measure(names: list[str], *, pushes: int, concurrency: int, warmup: int) -> dict[str, float]:
    targets = [Target(name, {**VARIANTS, **ABLATIONS}[name][0]) for name in names]
    return count(targets, pushes=pushes, concurrency=concurrency, warmup=warmup)


def table(counts: dict[str, float]) -> list[str]:
    anchor = counts.get(ANCHOR)
    rows = [
        "| variant | instructions per push | bare / this (goal ≥ 0.85, stretch 1.0) |",
        "| --- | ---: | ---: |",
    ]
    for name, per_push in counts.items():
        ratio = f"{anchor / per_push:.2f}" if anchor else "—"
        label = {**VARIANTS, **ABLATIONS}[name][1]
        rows.append(f"| {label} | {per_push:,.0f} | {ratio} |")
    return rows


def verdict(counts: dict[str, float]) -> str:
    """The goal's line: the defaults, and the same without the delivery line."""
    anchor = counts.get(ANCHOR)
    if not anchor:
        return "(no anchor counted: no verdict)"
    parts = []
    for name, what in (("router_logged", "the defaults"), ("router", "without the line")):
        if name in counts:
            ratio = anchor / counts[name]
            met = "**met**" if ratio >= 0.85 else "**not met**"
            parts.append(f"{what} {ratio:.3f}x ({met})")
    return "Goal ≥ 0.85x bare by instructions per push: " + "; ".join(parts) + "."


def write(rows: list[str], counts: dict[str, float], args: argparse.Namespace) -> None:
    text = README.read_text()
    begin, end = "<!-- bench_quick_path:begin -->", "<!-- bench_quick_path:end -->"
    if begin not in text or end not in text:
        sys.exit(f"bench_quick_path: {README} has no {begin} ... {end} section")
    cpu = _cpu_name()
    command = f"python -m benchmarks.bench_quick_path --pushes {args.pushes} --concurrency "
    command += f"{args.concurrency}{' --ablations' if args.ablations else ''} --write"
    head = (
        f"{os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}, "
        f"{datetime.date.today().isoformat()}; {args.pushes:,} pushes, {args.concurrency} in "
        f"flight, {args.warmup} warm-up. Command: `{command}`."
    )
    block = "\n".join([begin, head, "", *rows, "", verdict(counts), end])
    text = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: block, text, flags=re.S)
    README.write_text(text)


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


async def profile(name: str, pushes: int, concurrency: int) -> None:
    module, _, factory = {**VARIANTS, **ABLATIONS}[name][0].partition(":")
    app = getattr(__import__(module, fromlist=[factory]), factory)()
    lifespan = Lifespan(app)
    await lifespan.startup()
    driver = Driver(app, "/orders", concurrency)
    await driver.push_round(Driver.scopes("/orders", 500))
    scopes = Driver.scopes("/orders", pushes)
    gc.collect()
    gc.freeze()
    profiler = cProfile.Profile()
    profiler.enable()
    await driver.push_round(scopes)
    profiler.disable()
    await lifespan.shutdown()
    pstats.Stats(profiler).sort_stats("tottime").print_stats(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pushes", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=500)
    every = [*VARIANTS, *ABLATIONS]
    parser.add_argument("--only", nargs="*", choices=every, help="variants to count")
    parser.add_argument("--ablations", action="store_true", help="also what single features cost")
    parser.add_argument("--profile", metavar="VARIANT", choices=every)
    parser.add_argument("--write", action="store_true", help="record the table in the README")
    args = parser.parse_args()
    if args.profile:
        if args.profile.endswith("_logged"):
            sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - the lines, not the profile
        asyncio.run(profile(args.profile, max(args.pushes, 20_000), args.concurrency))
        return
    if why := available():
        sys.exit(f"bench_quick_path: {why}")
    names = args.only or [*VARIANTS, *(ABLATIONS if args.ablations else ())]
    counts = measure(names, pushes=args.pushes, concurrency=args.concurrency, warmup=args.warmup)
    rows = table(counts)
    print("\n".join(rows))
    if args.write:
        write(rows, counts, args)


if __name__ == "__main__":
    main()
