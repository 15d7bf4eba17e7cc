"""Benchmark: the receiver's paths against bare Starlette, raw ASGI and FastAPI, same run.

Every server is up at once (``benchmarks/receiver_apps.py``, one uvicorn worker each, pinned
apart from ``wrk``), measured in alternating slots (``benchmarks/harness.py``). Each request is
a push as IronMQ sends it (headers from ``ironpush._protocol.build_push_headers``, a unique
``Iron-Message-Id`` per request so dedupe never short-circuits, the route's push secret, a
1 KB JSON body). For each path, side by side (``benchmarks/verdicts.py``): the 2xx rate and
its ratio to the bare Starlette endpoint over the cycles where both servers were saturated
("not saturated" otherwise), each server's utilisation, the CPU µs per request and its ratio,
and the instructions per push in-process counted by callgrind
(``benchmarks/instructions.py``); then each goal's ratios to its own reference and the
hand-rolled anchor (FastAPI, a dict, a ``BackgroundTask`` acking with httpx).

Run from the repository root (needs ``wrk``: ``apt-get install -y wrk``; ``valgrind`` and a C
compiler for the instruction counts, or ``--no-instructions``)::

    python -m benchmarks.bench_receiver            # print the table
    python -m benchmarks.bench_receiver --write    # and record it in benchmarks/README.md

Not part of CI.
"""

from __future__ import annotations

import json
import os
import shlex
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
    RunPlan,
    Servers,
    ServerSpec,
    Slot,
    alternate,
    bench_parser,
    chosen,
    dump_slots,
    fake_ironmq,
    free_port,
    preflight,
    report,
)
from benchmarks.instructions import Target
from benchmarks.instructions import count as count_instructions
from benchmarks.receiver_apps import QUEUE, SECRET, SUBSCRIBER
from benchmarks.verdicts import figures_table, goals_table
from ironpush._protocol import Delivery, build_push_headers, message_url
from ironpush._signing import DEFAULT_SECRET_HEADER

ANCHOR = "bare"
# Connections of the one wrk thread: enough that each server is saturated in its slot (32
# left the quick path's server near 0.9 of its core, the others below it).
CONNECTIONS = 64
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
    Row("handrolled_defer", "hand-rolled: FastAPI, dict dedupe, `BackgroundTask` acking with "
        "httpx (202)", "/orders"),
    Row("sqlite", "SQLite store, quick 200", "/orders", "router", 0.5),
]  # fmt: skip

#: Pairs (ironpush, what a user would write instead) whose ratio must stay well above 1.
AHEAD = [("router", "fastapi"), ("defer_job", "handrolled_defer")]
#: The contestants whose 202s owe an ack to the fake IronMQ.
DEFERRED = {"defer_job", "handrolled_defer"}


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
    """A wrk script posting pushes with a unique message and reservation id per request.

    The request is formatted once (``wrk.format`` in ``init``) with placeholders, cut at them,
    and each request is the pieces joined around its ids: formatting every request in Lua
    (a headers table and two ``gsub`` per request) kept the one wrk thread below what a bare
    server answers, so no server could be saturated."""
    url = message_url("http://127.0.0.1:8080", "dev", QUEUE, "__ID__", SUBSCRIBER, "__RES__")
    template = build_push_headers(
        Delivery("__ID__", "__RES__", SUBSCRIBER, url),
        subscriber_headers={DEFAULT_SECRET_HEADER: SECRET},
    )
    headers = ", ".join(f"[{lua(k)}] = {lua(v)}" for k, v in template.items())
    return f"""
local counter = 0
local prefix = "p"
local pieces, slots = {{}}, {{}}
function init(args)
  if args[1] then prefix = args[1] end
  local text = wrk.format("POST", nil, {{{headers}}}, {lua(body)})
  local at = 1
  while true do
    local s, e, name = text:find("__(%u+)__", at)
    if not s then break end
    pieces[#pieces + 1] = text:sub(at, s - 1)
    slots[#slots + 1] = name
    at = e + 1
  end
  pieces[#pieces + 1] = text:sub(at)
end
function request()
  counter = counter + 1
  local values = {{ID = prefix .. "-" .. counter, RES = "r" .. counter}}
  local out = {{}}
  for i = 1, #slots do
    out[#out + 1] = pieces[i]
    out[#out + 1] = values[slots[i]]
  end
  out[#out + 1] = pieces[#pieces]
  return table.concat(out)
end
"""


# --------------------------------------------------------------------------- the run


def specs(sqlite_path: str, fake_port: int, load_cpu: str | None) -> list[ServerSpec]:
    env = {"IRONMQ_EMULATOR_HOST": f"127.0.0.1:{fake_port}"}
    out = [fake_ironmq(fake_port, load_cpu)]
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


def instruction_targets(sqlite_path: str, fake_port: int) -> list[Target]:
    env = {"IRONMQ_EMULATOR_HOST": f"127.0.0.1:{fake_port}", "BENCH_SQLITE_PATH": sqlite_path}
    return [
        Target(r.name, f"benchmarks.receiver_apps:{r.name}", r.path, env, r.name in DEFERRED)
        for r in ROWS
    ]


def markdown(slots: list[Slot], counts: dict[str, float], settings: dict[str, Any]) -> str:
    lines = [
        f"{settings['machine']}; {settings['cycles']} cycles x {settings['slot']:g} s slots, "
        f"`wrk -t1 -c{settings['connections']}`, 1 uvicorn worker each, "
        f"{settings['body_bytes']} B JSON body, CPUs: servers {settings['server_cpus']}, "
        f"wrk {settings['load_cpu']}; load average {settings['load_before']} before the run, "
        f"{settings['load_after']} after. Instructions: callgrind, in-process, "
        f"{settings['instructions']}. Command: `{settings['command']}`.",
        "",
        *figures_table([(r.name, r.label) for r in ROWS], slots, ANCHOR, counts),
        "",
        "Goals (issue 12) and the hand-rolled anchors, each ratio against the goal's reference:",
        "",
        *goals_table(
            [(r.name, r.reference, r.goal) for r in ROWS if r.reference and r.goal],
            slots,
            counts,
            ahead=[(a, b) for a, b in AHEAD if any(r.name == a for r in ROWS)
                   and any(r.name == b for r in ROWS)],
        ),
    ]  # fmt: skip
    if "acks" in settings:
        sent, confirmed = settings["acks"]
        lines += [
            "",
            f"`Defer(job)` and the hand-rolled `BackgroundTask`: the fake IronMQ received "
            f"{confirmed:,} acks for the {sent:,} 202s wrk counted "
            f"({'every 202 acked' if confirmed >= sent else '**acks missing**'}; wrk does not "
            "count the answers still in flight when a slot ends).",
        ]
    return "\n".join(lines)


def main() -> None:
    args = bench_parser(__doc__.split("\n\n")[0], connections=CONNECTIONS).parse_args()
    preflight("bench_receiver", args)
    global ROWS
    ROWS = chosen(ROWS, args.only, anchor=ANCHOR, ahead=AHEAD)
    plan = RunPlan.now()
    body = json_body()
    script = push_script(body=body)
    fake_port = free_port()
    counts: dict[str, float] = {}
    with (
        tempfile.TemporaryDirectory() as tmp,
        Servers(
            specs(str(Path(tmp) / "bench.db"), fake_port, plan.load_cpu), cpus=plan.server_cpus
        ) as servers,
    ):
        contestants = [
            Contestant(r.name, servers[r.name], Load(r.path, script, args.connections))
            for r in ROWS
        ]
        slots = alternate(contestants, cycles=args.cycles, slot=args.slot, cpus=plan.load_cpu)
        command = shlex.join(["python", "-m", "benchmarks.bench_receiver", *sys.argv[1:]])
        settings = plan.settings(args, body_bytes=len(body), command=command)
        deferred = [r.name for r in ROWS if r.name in DEFERRED]
        if deferred:
            # Every 202 must end in one ack (warm-up slots included: they were answered too).
            expected = sum(s.requests - s.non_2xx for s in slots if s.name in deferred)
            settings["acks"] = (expected, wait_for_acks(servers["fake_ironmq"].url, expected))
        settings["load_after"] = f"{os.getloadavg()[0]:.2f}"
        if not args.no_instructions:
            counts = count_instructions(
                instruction_targets(str(Path(tmp) / "callgrind.db"), fake_port),
                pushes=args.pushes,
            )
            settings["instructions"] = f"{args.pushes:,} pushes, 32 in flight"
    record = {"settings": settings, "instructions": counts, "slots": dump_slots(slots)}
    table = markdown(slots, counts, settings)
    report(table, write=args.write, results=RESULTS, readme=README, marker=MARKER, record=record)


if __name__ == "__main__":
    main()
