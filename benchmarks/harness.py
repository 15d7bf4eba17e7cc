"""The alternating-slot benchmark harness (how every server benchmark here measures).

A loaded 2-core machine drifts by more than the differences we measure, and a fresh server per
round is too noisy to mean anything. So every contestant's server runs at once (each an uvicorn
subprocess, idle while not measured, pinned to one CPU with ``taskset`` and the load generator
to the other), and ``wrk`` measures them in short alternating slots (about 2 s, 16-20 cycles,
the order rotated each cycle). A contestant's figure is its rate divided by the reference's
rate *in the same cycle*: the median of those per-cycle ratios with the interquartile range.
The second figure is the server's CPU time per request, read from ``/proc/<pid>/stat`` around
each slot (the process and its children, every thread included).

**A throughput ratio means something only when both servers were saturated.** Two half-idle
servers answer as fast as the load generator asks, whatever each costs, so their ratio is
near 1. Each slot therefore records its server's **utilisation**: CPU seconds over the slot's
seconds, in cores (the server is pinned to one). A slot is *saturated* at ``SATURATED``
(0.9) or more, and a ratio is taken only over the cycles in which both servers were
saturated; too few such cycles and the ratio is reported as "not saturated" (with the CPU
ratio beside it, which holds either way: CPU µs per request of the reference over the
contestant's). A contestant that needs an engine (PostgreSQL, a private Redis) has its engine
processes counted with it and pinned to the servers' CPU (:class:`PostgresBackends`,
:class:`EngineProcess`): the server and its engine share one core, and the load generator
has the other.

**A slot's work ends before the next slot starts.** A receiver can answer faster than it
finishes what each answer owes (a ``BackgroundTask`` acking each 202 with httpx): after its
slot it would go on working on the servers' core while the next contestants are measured, and
keep them from saturating it. So after each slot the harness waits until the contestant's
server and engine are idle (:func:`settle`), and their CPU per request counts that work too;
the utilisation is the slot's alone.

Needs ``wrk`` (Debian/Ubuntu: ``apt-get install -y wrk``); the benchmarks never run in CI.

::

    specs = [ServerSpec("bare", "benchmarks.receiver_apps:bare"),
             ServerSpec("router", "benchmarks.receiver_apps:router")]
    with Servers(specs, cpus=servers_cpu) as servers:
        slots = alternate([Contestant(name, servers[name], Load("/orders", script))
                           for name in ("bare", "router")], cycles=16, slot=2.0, cpus=load_cpu)
    print(summarize(per_cycle_ratios(slots, "router", "bare")))
    print(Verdict.of(slots, "router", "bare"))   # saturated-only ratio, CPU ratio, utilisation
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, TypeVar

import httpx

from benchmarks.engines import EngineProcess, PostgresBackends

ROOT = Path(__file__).resolve().parent.parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SATURATED = 0.9  # a slot's utilisation (cores) from which its server counts as saturated
IDLE = 0.1  # of a core: below it, a server has finished what its slot left (settle)
IDLE_PERIOD = 0.2  # seconds over which IDLE is read
MIN_SATURATED_SHARE = 0.5  # of the cycles: fewer and a ratio is "not saturated"


# --------------------------------------------------------------------------- statistics


@dataclass(frozen=True, slots=True)
class Summary:
    """Median and interquartile range of a list of values."""

    median: float
    q1: float
    q3: float
    n: int

    def __str__(self) -> str:
        return f"{self.median:.2f}x (IQR {self.q1:.2f}-{self.q3:.2f})"


def summarize(values: Sequence[float]) -> Summary:
    """Median and quartiles (``statistics.quantiles``, inclusive method)."""
    if not values:
        return Summary(float("nan"), float("nan"), float("nan"), 0)
    if len(values) == 1:
        return Summary(values[0], values[0], values[0], 1)
    q1, median, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return Summary(median, q1, q3, len(values))


def rotated(items: Sequence[str], cycle: int) -> list[str]:
    """The measuring order of one cycle: each cycle starts one contestant later."""
    k = cycle % len(items)
    return [*items[k:], *items[:k]]


# --------------------------------------------------------------------------- CPU pinning


def cpu_plan() -> tuple[str | None, str | None]:
    """(servers' CPU list, load generator's CPU list) for ``taskset``, or Nones when the
    machine has one CPU or no ``taskset``: servers on every CPU but the last, load on the last."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2 or shutil.which("taskset") is None:
        return None, None
    return ",".join(map(str, cpus[:-1])), str(cpus[-1])


def pinned(command: list[str], cpus: str | None) -> list[str]:
    return ["taskset", "-c", cpus, *command] if cpus else command


def cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` and its live descendants (uvicorn workers), all threads."""
    total = 0.0
    for one in [pid, *_descendants(pid)]:
        try:
            fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return total


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (FileNotFoundError, ProcessLookupError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        out += kids
        todo += kids
    return out


# --------------------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass(frozen=True, slots=True)
class ServerSpec:
    """One uvicorn server: ``app`` is its import string (``benchmarks.receiver_apps:bare``)."""

    name: str
    app: str
    env: Mapping[str, str] = field(default_factory=dict)
    workers: int = 1
    port: int = 0  # 0: a free port
    factory: bool = True  # ``app`` names a function that builds the app (uvicorn --factory)
    cpus: str | None = None  # its own CPU list for ``taskset``; None: the Servers' CPUs


def fake_ironmq(port: int, cpus: str | None) -> ServerSpec:
    """The fake IronMQ the deferred contestants ack to (``receiver_apps.fake_ironmq``), pinned
    to ``cpus``: the load generator's. It and ``wrk`` are the two halves of IronMQ (the
    pusher, the ack endpoint), which in production runs on other hosts: on the servers' core
    its CPU per ack (~50 µs) kept a deferred receiver from saturating it (0.81 of a core at
    best, the fake taking the rest)."""
    return ServerSpec("fake_ironmq", "benchmarks.receiver_apps:fake_ironmq", port=port, cpus=cpus)


@dataclass
class RunningServer:
    spec: ServerSpec
    port: int
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cpu(self) -> float:
        return cpu_seconds(self.proc.pid)


class Servers:
    """Start every server at once, wait until each answers HTTP, stop them all on exit."""

    def __init__(
        self, specs: Sequence[ServerSpec], *, cpus: str | None = None, quiet: bool = True
    ) -> None:
        self.specs = list(specs)
        self.cpus = cpus
        self.quiet = quiet
        self.running: dict[str, RunningServer] = {}

    def __getitem__(self, name: str) -> RunningServer:
        return self.running[name]

    def __enter__(self) -> Servers:
        try:
            for spec in self.specs:
                self.running[spec.name] = self._start(spec)
            for server in self.running.values():
                _wait_ready(server)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _start(self, spec: ServerSpec) -> RunningServer:
        port = spec.port or free_port()
        command = [
            sys.executable,
            "-m",
            "uvicorn",
            spec.app,
            "--app-dir",
            str(ROOT),
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ]
        if spec.factory:
            command.append("--factory")
        if spec.workers > 1:
            command += ["--workers", str(spec.workers)]
        env = {**os.environ, **spec.env, "PYTHONPATH": str(ROOT)}
        # The servers' output is dropped: the router logs a line per push by default, which
        # here would flood the benchmark's own output (each line still costs its server the
        # formatting and the write). A server that does not start is named by _wait_ready.
        out = subprocess.DEVNULL if self.quiet else None
        proc = subprocess.Popen(
            pinned(command, spec.cpus or self.cpus), env=env, cwd=ROOT, stdout=out, stderr=out
        )
        return RunningServer(spec, port, proc)

    def stop(self) -> None:
        for server in self.running.values():
            if server.proc.poll() is None:
                server.proc.send_signal(signal.SIGTERM)
        for server in self.running.values():
            try:
                server.proc.wait(15)
            except subprocess.TimeoutExpired:
                server.proc.kill()
                server.proc.wait(5)
        self.running.clear()


def _wait_ready(server: RunningServer, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if server.proc.poll() is not None:
            raise RuntimeError(
                f"server {server.spec.name} exited with {server.proc.returncode} (its output "
                f"is dropped: run uvicorn {server.spec.app} --factory by hand to see why)"
            )
        try:
            httpx.get(server.url + "/", timeout=2)  # any answer: it is serving
            return
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"server {server.spec.name} did not start") from None
            time.sleep(0.1)


# --------------------------------------------------------------------------- load


@dataclass(frozen=True, slots=True)
class Load:
    """What ``wrk`` sends: a Lua script (its ``init(args)`` gets a per-slot unique prefix)."""

    path: str
    script: str
    connections: int = 32


@dataclass(frozen=True, slots=True)
class WrkResult:
    requests: int
    non_2xx: int
    socket_errors: int
    seconds: float


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def run_wrk(url: str, load: Load, *, duration: float, prefix: str, cpus: str | None) -> WrkResult:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(load.script)
    try:
        command = [
            "wrk",
            "-t1",
            f"-c{load.connections}",
            f"-d{max(1, round(duration))}s",
            "-s",
            script.name,
            url + load.path,
            "--",
            prefix,
        ]
        out = subprocess.run(
            pinned(command, cpus), capture_output=True, text=True, check=True
        ).stdout
    finally:
        os.unlink(script.name)
    total = re.search(r"(\d+) requests in ([\d.]+)(m?s)", out)
    if total is None:
        raise RuntimeError(f"cannot read wrk's output:\n{out}")
    seconds = float(total.group(2)) / (1000 if total.group(3) == "ms" else 1)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return WrkResult(
        requests=int(total.group(1)),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(g) for g in errors.groups()) if errors else 0,
        seconds=seconds,
    )


# --------------------------------------------------------------------------- alternation


@dataclass(frozen=True, slots=True)
class Contestant:
    name: str
    server: RunningServer
    load: Load
    engine: EngineProcess | PostgresBackends | None = None


@dataclass(frozen=True, slots=True)
class Slot:
    """One contestant measured in one cycle. ``cpu_seconds`` and ``engine_cpu_seconds`` (its
    engine's share) run from the slot's start until the work the slot left was done
    (:func:`settle`); ``busy_cpu_seconds`` is both during the slot alone."""

    name: str
    cycle: int
    requests: int
    non_2xx: int
    socket_errors: int
    seconds: float
    cpu_seconds: float
    engine_cpu_seconds: float = 0.0
    busy_cpu_seconds: float = 0.0
    settle_seconds: float = 0.0

    @property
    def rate_2xx(self) -> float:
        return (self.requests - self.non_2xx) / self.seconds if self.seconds else 0.0

    @property
    def cpu_us_per_request(self) -> float:
        return self.cpu_seconds / self.requests * 1e6 if self.requests else float("nan")

    @property
    def engine_us_per_request(self) -> float:
        return self.engine_cpu_seconds / self.requests * 1e6 if self.requests else float("nan")

    @property
    def total_us_per_request(self) -> float:
        """Server and engine CPU per request: what the contestant costs its core."""
        return self.cpu_us_per_request + (
            self.engine_us_per_request if self.engine_cpu_seconds else 0.0
        )

    @property
    def utilisation(self) -> float:
        """Server + engine CPU during the slot over the slot's time, in cores."""
        return self.busy_cpu_seconds / self.seconds if self.seconds else 0.0

    @property
    def saturated(self) -> bool:
        return self.utilisation >= SATURATED


def contestant_cpu(contestant: Contestant) -> tuple[float, dict[int, float]]:
    """The contestant's server CPU seconds, and its engine's by process (none without one)."""
    engine = contestant.engine
    return contestant.server.cpu(), ({p: cpu_seconds(p) for p in engine.pids()} if engine else {})


def settle(contestant: Contestant, *, deadline: float = 120.0) -> float:
    """Wait until the contestant's server and engine are idle (at most ``IDLE`` of a core over
    ``IDLE_PERIOD``); the seconds waited. A slot can leave work behind: answered pushes whose
    acks are still to be sent (a ``BackgroundTask`` per 202 piles up behind the answers), which
    would otherwise run on the servers' core during the next contestants' slots and keep them
    from saturating it (seen: 0.48 of a core for the three slots after such a receiver's)."""
    began = time.monotonic()
    last = sum_cpu(contestant)
    while True:
        time.sleep(IDLE_PERIOD)  # a poll: /proc counts in 10 ms ticks, so no shorter period
        now = sum_cpu(contestant)
        if now - last <= IDLE * IDLE_PERIOD:
            return time.monotonic() - began
        if time.monotonic() - began > deadline:
            raise RuntimeError(f"{contestant.name} still busy {deadline:g} s after its slot")
        last = now


def sum_cpu(contestant: Contestant) -> float:
    server, engine = contestant_cpu(contestant)
    return server + sum(engine.values())


def measure(contestant: Contestant, *, cycle: int, duration: float, cpus: str | None) -> Slot:
    before, engine_before = contestant_cpu(contestant)
    prefix = f"{contestant.name}-{cycle}-{time.monotonic_ns()}"
    result = run_wrk(
        contestant.server.url, contestant.load, duration=duration, prefix=prefix, cpus=cpus
    )
    during = sum_cpu(contestant) - before - sum(engine_before.values())
    waited = settle(contestant)
    after, engine_after = contestant_cpu(contestant)
    # A backend opened during the slot counts whole; one that ended is lost (rare: the stores
    # keep their connections).
    engine_used = sum(v - engine_before.get(p, 0.0) for p, v in engine_after.items())
    return Slot(
        contestant.name,
        cycle,
        result.requests,
        result.non_2xx,
        result.socket_errors,
        result.seconds,
        after - before,
        max(0.0, engine_used),
        max(0.0, during),
        waited,
    )


def alternate(
    contestants: Sequence[Contestant],
    *,
    cycles: int = 16,
    slot: float = 2.0,
    warmup: float = 1.0,
    cpus: str | None = None,
    progress: bool = True,
) -> list[Slot]:
    """Measure every contestant once per cycle, in an order rotated each cycle.

    Each contestant is first warmed up once for ``warmup`` seconds: those slots are returned
    too, with ``cycle == -1`` (the statistics leave them out). Returns every slot, in the
    order measured.
    """
    by_name = {c.name: c for c in contestants}
    names = list(by_name)
    slots = [measure(by_name[n], cycle=-1, duration=warmup, cpus=cpus) for n in names]
    for cycle in range(cycles):
        for name in rotated(names, cycle):
            slots.append(measure(by_name[name], cycle=cycle, duration=slot, cpus=cpus))
        if progress:
            rates = {s.name: s.rate_2xx for s in slots if s.cycle == cycle}
            shown = " ".join(f"{n}={rates[n]:.0f}" for n in names)
            print(f"cycle {cycle + 1}/{cycles}: {shown}", file=sys.stderr, flush=True)
    return slots


def per_cycle_ratios(slots: Sequence[Slot], name: str, reference: str) -> list[float]:
    """``name``'s 2xx rate over ``reference``'s, one value per cycle both were measured in."""
    rates: dict[tuple[str, int], float] = {(s.name, s.cycle): s.rate_2xx for s in slots}
    cycles = sorted({s.cycle for s in slots if s.cycle >= 0})  # warm-ups left out
    return [
        rates[(name, c)] / rates[(reference, c)]
        for c in cycles
        if (name, c) in rates and rates.get((reference, c))
    ]


def dump_slots(slots: Sequence[Slot]) -> list[dict[str, float | int | str]]:
    return [{**asdict(s), "rate_2xx": s.rate_2xx, "utilisation": s.utilisation} for s in slots]


# --------------------------------------------------------------------------- a benchmark's run


class _Row(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def reference(self) -> str | None: ...


RowT = TypeVar("RowT", bound=_Row)


def bench_parser(description: str, *, connections: int) -> argparse.ArgumentParser:
    """The command line every receiver benchmark takes (slots, ``--only``, callgrind, ``--write``).

    ::

        args = bench_parser(__doc__.split("\n\n")[0], connections=64).parse_args()
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--cycles", type=int, default=16)
    parser.add_argument("--slot", type=float, default=2.0)
    parser.add_argument("--connections", type=int, default=connections)
    parser.add_argument("--only", nargs="*", help="contestants to run (with their references)")
    parser.add_argument("--pushes", type=int, default=2000, help="pushes counted by callgrind")
    parser.add_argument("--no-instructions", action="store_true", help="skip callgrind")
    parser.add_argument("--write", action="store_true", help="record in benchmarks/README.md")
    return parser


def preflight(name: str, args: argparse.Namespace) -> None:
    """Exit with the reason when ``wrk`` (or callgrind, unless skipped) cannot run here."""
    from benchmarks.instructions import available

    if not wrk_available():
        sys.exit(f"{name} needs wrk: apt-get install -y wrk")
    if not args.no_instructions and (why := available()):
        sys.exit(f"{name}: {why}, or run with --no-instructions")


def chosen(
    rows: Sequence[RowT],
    only: Iterable[str] | None,
    *,
    anchor: str,
    ahead: Iterable[tuple[str, str]],
) -> list[RowT]:
    """The rows ``--only`` names, with the anchor, their goals' references and hand-rolled pairs.

    ::

        rows = chosen(ROWS, ["router"], anchor="bare", ahead=[("router", "fastapi")])
    """
    if not only:
        return list(rows)
    wanted = {anchor, *only}
    wanted |= {r.reference for r in rows if r.name in wanted and r.reference}
    wanted |= {b for a, b in ahead if a in wanted}
    return [r for r in rows if r.name in wanted]


@dataclass(frozen=True, slots=True)
class RunPlan:
    """Where a run's processes go (:func:`cpu_plan`) and the machine's load before it.

    ::

        plan = RunPlan.now()
        slots = alternate(contestants, cycles=16, slot=2.0, cpus=plan.load_cpu)
        settings = plan.settings(args, body_bytes=1024, command="python -m ... --write")
    """

    server_cpus: str | None
    load_cpu: str | None
    load_before: str

    @classmethod
    def now(cls) -> RunPlan:
        server_cpus, load_cpu = cpu_plan()
        return cls(server_cpus, load_cpu, f"{os.getloadavg()[0]:.2f}")

    def settings(
        self, args: argparse.Namespace, *, body_bytes: int, command: str
    ) -> dict[str, Any]:
        """What a run's table says it measured (the instructions' line is filled in later)."""
        return {
            "machine": machine(),
            "cycles": args.cycles,
            "slot": args.slot,
            "connections": args.connections,
            "body_bytes": body_bytes,
            "server_cpus": self.server_cpus or "any",
            "load_cpu": self.load_cpu or "any",
            "load_before": self.load_before,
            "command": command,
            "instructions": "skipped",
        }


def report(
    table: str,
    *,
    write: bool,
    results: Path,
    readme: Path,
    marker: str,
    record: Mapping[str, object],
) -> None:
    """Print the table; with ``--write`` also keep ``record`` in ``results`` and the table
    between the README's markers."""
    print(table)
    if write:
        write_json(results, dict(record))
        write_between_markers(readme, marker, table)
        print(f"written: {results.relative_to(ROOT)}, {readme.relative_to(ROOT)}")


# --------------------------------------------------------------------------- recording


def machine() -> str:
    """A one-line description of the machine and software measured on."""
    import platform

    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} CPUs ({cpu or platform.machine()}), Python "
        f"{platform.python_version()}, {time.strftime('%Y-%m-%d')}"
    )


def write_between_markers(path: Path, marker: str, text: str) -> None:
    """Replace what lies between ``<!-- marker:begin -->`` and ``<!-- marker:end -->``."""
    begin, end = f"<!-- {marker}:begin -->", f"<!-- {marker}:end -->"
    content = path.read_text()
    if begin not in content or end not in content:
        raise RuntimeError(f"{path} has no {begin} ... {end} markers")
    head, rest = content.split(begin, 1)
    _, tail = rest.split(end, 1)
    path.write_text(f"{head}{begin}\n{text.strip()}\n{end}{tail}")


def write_json(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
