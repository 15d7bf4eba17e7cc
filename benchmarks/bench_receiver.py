"""Benchmark: the receiver's paths against bare Starlette, raw ASGI and FastAPI, same run.

Every server is up at once (``benchmarks/receiver_apps.py``, one uvicorn worker each, pinned
apart from ``wrk``), measured in alternating slots (``benchmarks/harness.py``). Each request is
a push as IronMQ sends it (headers from ``ironpush._protocol.build_push_headers``, a unique
``Iron-Message-Id`` per request so dedupe never short-circuits, the route's push secret, a
1 KB JSON body). Figures: 2xx rate relative to the bare Starlette endpoint in the same cycle
(median of per-cycle ratios, IQR), each goal's ratio to its own reference, server CPU per
request.

Run from the repository root (needs ``wrk``: ``apt-get install -y wrk``)::

    python -m benchmarks.bench_receiver            # print the table
    python -m benchmarks.bench_receiver --write    # and record it in benchmarks/README.md

Not part of CI.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from benchmarks.harness import (
    ROOT,
    Contestant,
    Load,
    Servers,
    ServerSpec,
    Slot,
    alternate,
    cpu_plan,
    dump_slots,
    free_port,
    machine,
    per_cycle_ratios,
    summarize,
    write_between_markers,
    write_json,
    wrk_available,
)
from benchmarks.receiver_apps import QUEUE, SECRET, SUBSCRIBER
from ironpush._protocol import Delivery, build_push_headers, message_url
from ironpush._signing import DEFAULT_SECRET_HEADER

ANCHOR = "bare"
README = ROOT / "benchmarks" / "README.md"
RESULTS = ROOT / "benchmarks" / "results" / "receiver.json"
MARKER = "bench_receiver"


@dataclass(frozen=True, slots=True)
class Row:
    name: str
    label: str
    path: str
    reference: str | None = None  # the goal's reference contestant
    goal: float | None = None


ROWS = [
    Row("bare", "bare Starlette `Route`, empty 200 (the anchor)", "/orders"),
    Row("bare_json", 'Starlette `Route` answering `{"status":"acked"}`', "/orders"),
    Row("raw", "raw ASGI, empty 200", "/orders"),
    Row("fastapi", "FastAPI path operation, empty 200", "/orders"),
    Row("router", "`PushRouter` quick 200 (verify + memory dedupe, `json=True`)", "/orders",
        "bare", 1.0),
    Row("mounted", 'the same route under `Mount("/ironmq", router)`', "/ironmq/orders",
        "bare", 0.9),
    Row("mounted_fast", "the same route via `PushMount(app, router=router, path=\"/ironmq\")`",
        "/ironmq/orders", "bare", 0.9),
    Row("mounted_middleware", "the same via `app.add_middleware(PushMount, ...)`",
        "/ironmq/orders", "bare", 0.9),
    Row("defer_external", "`Defer()` (external worker) → 202", "/orders", "router", 0.9),
    Row("defer_job", "`Defer(job)`, no-op job, fast fake IronMQ, defaults", "/orders",
        "router", 0.5),
    Row("sqlite", "SQLite store, quick 200", "/orders", "router", 0.5),
]  # fmt: skip


# --------------------------------------------------------------------------- the load


def json_body(size: int = 1024) -> str:
    """A JSON order of exactly ``size`` bytes."""
    order: dict[str, Any] = {
        "order": 12345,
        "customer": {"id": "c-778", "email": "ada@example.com"},
        "items": [{"sku": f"sku-{i}", "qty": i, "price": 9.5 + i} for i in range(8)],
        "note": "",
    }
    text = json.dumps(order)
    order["note"] = "x" * (size - len(text))
    text = json.dumps(order)
    assert len(text) == size
    return text


def lua(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def push_script(*, body: str) -> str:
    """A wrk script posting pushes with a unique message and reservation id per request."""
    url = message_url("http://127.0.0.1:8080", "dev", QUEUE, "__ID__", SUBSCRIBER, "__RES__")
    template = build_push_headers(
        Delivery("__ID__", "__RES__", SUBSCRIBER, url),
        subscriber_headers={DEFAULT_SECRET_HEADER: SECRET},
    )
    static = ", ".join(f"[{lua(k)}] = {lua(v)}" for k, v in template.items() if "__" not in v)
    dynamic = ", ".join(f"{{{lua(k)}, {lua(v)}}}" for k, v in template.items() if "__" in v)
    return f"""
local counter = 0
local prefix = "p"
local static = {{{static}}}
local dynamic = {{{dynamic}}}
local body = {lua(body)}
function init(args)
  if args[1] then prefix = args[1] end
end
function request()
  counter = counter + 1
  local id = prefix .. "-" .. counter
  local res = "r" .. counter
  local headers = {{}}
  for k, v in pairs(static) do headers[k] = v end
  for _, pair in ipairs(dynamic) do
    headers[pair[1]] = (pair[2]:gsub("__ID__", id):gsub("__RES__", res))
  end
  return wrk.format("POST", nil, headers, body)
end
"""


# --------------------------------------------------------------------------- the run


def specs(sqlite_path: str, fake_port: int) -> list[ServerSpec]:
    env = {"IRONMQ_EMULATOR_HOST": f"127.0.0.1:{fake_port}"}
    out = [ServerSpec("fake_ironmq", "benchmarks.receiver_apps:fake_ironmq", port=fake_port)]
    for row in ROWS:
        extra = {"BENCH_SQLITE_PATH": sqlite_path} if row.name == "sqlite" else {}
        out.append(ServerSpec(row.name, f"benchmarks.receiver_apps:{row.name}", {**env, **extra}))
    return out


def wait_for_acks(url: str, expected: int, timeout: float = 60.0) -> int:
    """DELETEs the fake IronMQ received, once they reach ``expected`` (or at the deadline)."""
    deadline = time.monotonic() + timeout
    while True:
        count = int(httpx.get(url + "/_count").text)
        if count >= expected or time.monotonic() > deadline:
            return count
        time.sleep(0.2)


def result_rows(slots: list[Slot]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for row in ROWS:
        mine = [s for s in slots if s.name == row.name and s.cycle >= 0]
        requests = sum(s.requests for s in mine)
        entry: dict[str, Any] = {
            "label": row.label,
            "rate_2xx": summarize([s.rate_2xx for s in mine]).median,
            "vs_anchor": summarize(per_cycle_ratios(slots, row.name, ANCHOR)),
            "non_2xx_share": sum(s.non_2xx for s in mine) / requests if requests else 0.0,
            "socket_errors": sum(s.socket_errors for s in mine),
            "cpu_us_per_request": summarize([s.cpu_us_per_request for s in mine]).median,
        }
        if row.reference and row.goal:
            ratio = summarize(per_cycle_ratios(slots, row.name, row.reference))
            entry.update(reference=row.reference, goal=row.goal, vs_reference=ratio)
            entry["met"] = ratio.median >= row.goal and entry["non_2xx_share"] == 0
        out[row.name] = entry
    return out


def markdown(results: dict[str, dict[str, Any]], settings: dict[str, Any]) -> str:
    lines = [
        f"{settings['machine']}; {settings['cycles']} cycles x {settings['slot']:g} s slots, "
        f"`wrk -t1 -c{settings['connections']}`, 1 uvicorn worker each, "
        f"{settings['body_bytes']} B JSON body, CPUs: servers {settings['server_cpus']}, "
        f"wrk {settings['load_cpu']}. Command: `{settings['command']}`.",
        "",
        "| path | 2xx req/s | vs bare Starlette (median, IQR) | goal | measured vs goal's "
        "reference | non-2xx | server CPU µs/req |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results.values():
        goal = measured = "—"
        if "goal" in r:
            goal = f"≥ {r['goal']:.1f}x {r['reference']}"
            measured = f"{r['vs_reference']} {'**met**' if r['met'] else '**not met**'}"
        lines.append(
            f"| {r['label']} | {r['rate_2xx']:,.0f} | {r['vs_anchor']} | {goal} | {measured} "
            f"| {r['non_2xx_share']:.1%} | {r['cpu_us_per_request']:.0f} |"
        )
    if "acks" in settings:
        sent, confirmed = settings["acks"]
        lines += [
            "",
            f"`Defer(job)`: the fake IronMQ received {confirmed:,} acks for the {sent:,} 202s "
            f"wrk counted ({'every 202 acked' if confirmed >= sent else '**acks missing**'}; "
            "wrk does not count the answers still in flight when a slot ends).",
        ]
    if settings.get("failed"):
        lines += ["", f"Not measured (did not start): {', '.join(settings['failed'])}."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=16)
    parser.add_argument("--slot", type=float, default=2.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--only", nargs="*", help="contestants to run (with their references)")
    parser.add_argument("--write", action="store_true", help="record in benchmarks/README.md")
    args = parser.parse_args()
    if not wrk_available():
        sys.exit("bench_receiver needs wrk: apt-get install -y wrk")
    global ROWS
    if args.only:  # with the anchor and the goals' references
        wanted = {ANCHOR, *args.only}
        wanted |= {r.reference for r in ROWS if r.name in wanted and r.reference}
        ROWS = [r for r in ROWS if r.name in wanted]
    server_cpus, load_cpu = cpu_plan()
    body = json_body()
    script = push_script(body=body)
    fake_port = free_port()
    with (
        tempfile.TemporaryDirectory() as tmp,
        Servers(specs(str(Path(tmp) / "bench.db"), fake_port), cpus=server_cpus) as servers,
    ):
        contestants = [
            Contestant(r.name, servers[r.name], Load(r.path, script, args.connections))
            for r in ROWS
        ]
        slots = alternate(contestants, cycles=args.cycles, slot=args.slot, cpus=load_cpu)
        settings: dict[str, Any] = {
            "machine": machine(),
            "cycles": args.cycles,
            "slot": args.slot,
            "connections": args.connections,
            "body_bytes": len(body),
            "server_cpus": server_cpus or "any",
            "load_cpu": load_cpu or "any",
            "command": "python -m benchmarks.bench_receiver --write",
        }
        if any(r.name == "defer_job" for r in ROWS):
            # Every 202 must end in one ack (warm-up slots included: they were answered too).
            expected = sum(s.requests - s.non_2xx for s in slots if s.name == "defer_job")
            settings["acks"] = (expected, wait_for_acks(servers["fake_ironmq"].url, expected))
    results = result_rows(slots)
    table = markdown(results, settings)
    print(table)
    if args.write:
        write_json(RESULTS, {"settings": settings, "results": _jsonable(results),
                             "slots": dump_slots(slots)})  # fmt: skip
        write_between_markers(README, MARKER, table)
        print(f"written: {RESULTS.relative_to(ROOT)}, {README.relative_to(ROOT)}")


def _jsonable(results: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    def plain(value: Any) -> Any:
        if hasattr(value, "median"):
            return {"median": value.median, "q1": value.q1, "q3": value.q3, "n": value.n}
        return value

    return {name: {k: plain(v) for k, v in r.items()} for name, r in results.items()}


if __name__ == "__main__":
    main()
