"""Jobs in flight: fill the deferred capacity with held jobs, check that the next pushes get
503, measure RSS at 0 and at full capacity and while held, release, check every ack."""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from .ack_sink import AckSink, LoadPusher
from .checks import AckCheck, check_acks, instances, push_template, receiver_env
from .process import CLEAN_EXITS, ReceiverProcess, mb, poll_until


@dataclass
class InflightCycle:
    pushed: int = 0
    by_status: dict[int, int] = field(default_factory=dict)
    overflow_by_status: dict[int, int] = field(default_factory=dict)
    inflight_seen: int = 0
    rss_full_kb: list[int] = field(default_factory=list)  # sampled while held
    rss_after_kb: int = 0
    tasks_held: int = 0
    threads_held: int = 0
    fill_seconds: float = 0.0
    ack_seconds: float = 0.0
    acks: AckCheck = field(default_factory=AckCheck)

    def summary(self) -> dict[str, Any]:
        held = self.rss_full_kb
        return {
            "pushed": self.pushed,
            "by_status": {str(k): v for k, v in sorted(self.by_status.items())},
            "overflow_by_status": {str(k): v for k, v in sorted(self.overflow_by_status.items())},
            "inflight_seen": self.inflight_seen,
            "fill_seconds": round(self.fill_seconds, 2),
            "ack_seconds": round(self.ack_seconds, 2),
            "rss_held_mb": {
                "first": mb(held[0]) if held else None,
                "last": mb(held[-1]) if held else None,
                "min": mb(min(held)) if held else None,
                "max": mb(max(held)) if held else None,
            },
            "rss_after_release_mb": mb(self.rss_after_kb),
            "tasks_held": self.tasks_held,
            "threads_held": self.threads_held,
            "acks": self.acks.summary(),
        }


@dataclass
class InflightResult:
    config: dict[str, Any]
    rss_zero_kb: int = 0
    rss_start_kb: int = 0
    stats_zero: dict[str, Any] = field(default_factory=dict)
    stats_end: dict[str, Any] = field(default_factory=dict)
    cycles: list[InflightCycle] = field(default_factory=list)
    hwm_kb: int = 0
    counters: dict[str, int] = field(default_factory=dict)
    exit_code: int | None = None
    log_problems: list[str] = field(default_factory=list)

    @property
    def per_job_kb(self) -> float:
        first = self.cycles[0] if self.cycles else None
        if first is None or not first.rss_full_kb:
            return 0.0
        return (statistics.fmean(first.rss_full_kb) - self.rss_zero_kb) / first.pushed

    def summary(self) -> dict[str, Any]:
        full = [statistics.fmean(c.rss_full_kb) for c in self.cycles if c.rss_full_kb]
        return {
            "config": self.config,
            "rss_mb": {
                "started": mb(self.rss_start_kb),
                "zero_in_flight": mb(self.rss_zero_kb),
                "full_per_cycle": [mb(x) for x in full],
                "after_release_per_cycle": [mb(c.rss_after_kb) for c in self.cycles],
                "peak_hwm": mb(self.hwm_kb),
                "held_spread_max": max(
                    (
                        mb(max(c.rss_full_kb) - min(c.rss_full_kb))
                        for c in self.cycles
                        if c.rss_full_kb
                    ),
                    default=0.0,
                ),
            },
            "per_job_kb": round(self.per_job_kb, 2),
            "cycles": [c.summary() for c in self.cycles],
            "receiver_counters": self.counters,
            "receiver_stats": {"zero": self.stats_zero, "end": self.stats_end},
            "exit_code": self.exit_code,
            "log_problems": self.log_problems[:5],
        }

    def problems(self, *, held_flat_mb: float = 5.0, cycle_growth_mb: float = 10.0) -> list[str]:
        out: list[str] = []
        jobs = int(self.config["jobs"])
        for n, cycle in enumerate(self.cycles, 1):
            if cycle.by_status != {202: jobs}:
                out.append(f"cycle {n}: {jobs} pushes under the cap got {cycle.by_status}")
            overflow = int(self.config["overflow"])
            if overflow and cycle.overflow_by_status != {503: overflow}:
                out.append(f"cycle {n}: pushes past the cap got {cycle.overflow_by_status}")
            if cycle.inflight_seen != jobs:
                out.append(f"cycle {n}: /_health showed {cycle.inflight_seen} jobs in flight")
            out += [f"cycle {n}: {p}" for p in cycle.acks.problems()]
            if cycle.rss_full_kb:
                spread = (max(cycle.rss_full_kb) - min(cycle.rss_full_kb)) / 1024
                if spread > held_flat_mb:
                    out.append(f"cycle {n}: RSS moved {spread:.1f} MB while the jobs were held")
        full = [statistics.fmean(c.rss_full_kb) for c in self.cycles if c.rss_full_kb]
        if len(full) > 1 and (max(full[1:]) - full[0]) / 1024 > cycle_growth_mb:
            out.append(f"RSS at full capacity grew across cycles: {[mb(x) for x in full]} MB")
        for name in ("late_acks", "ack_failures", "jobs_failed", "retried", "rejected"):
            if self.counters.get(name):
                out.append(f"router counter {name} = {self.counters[name]}")
        if self.exit_code not in CLEAN_EXITS:
            out.append(f"receiver exit code {self.exit_code}")
        if self.log_problems:
            out.append(f"receiver logged errors: {self.log_problems[:3]}")
        return out


async def _push_batch(
    port: int, template: Any, count: int, connections: int, *, retry: bool = False
) -> Any:

    pusher = LoadPusher(
        port,
        template,
        connections=min(connections, count),
        retry_delay=0.05 if retry else None,
        seed=next(instances),
    )
    pusher.limit_new(count)
    return await pusher.run()


async def run_inflight(
    *,
    jobs: int = 1000,
    overflow: int = 200,
    connections: int = 200,
    job_kind: str = "async",
    max_entries: int | None = None,
    hold_seconds: float = 10.0,
    cycles: int = 2,
    warmup: int = 100,
    body_size: int = 512,
    sample_interval: float = 0.25,
    timeout: float = 60.0,
    progress: Callable[[str], None] | None = None,
) -> InflightResult:
    """Hold ``jobs`` deferred jobs (= max_deferred) in flight, ``cycles`` times; measure."""

    say = progress or (lambda _: None)
    config = {
        "jobs": jobs,
        "overflow": overflow,
        "connections": connections,
        "job_kind": job_kind,
        "max_entries": max_entries,
        "hold_seconds": hold_seconds,
        "cycles": cycles,
        "warmup": warmup,
        "body_size": body_size,
    }
    result = InflightResult(config)
    sink = await AckSink().start()
    receiver = ReceiverProcess(
        receiver_env(
            sink.url,
            max_deferred=jobs,
            job_mode="hold",
            job_kind=job_kind,
            max_entries=max_entries,
        )
    )
    try:
        await receiver.start()
        result.rss_start_kb = receiver.rss_kb()
        template = push_template(receiver.port, body_size=body_size)

        async def acked(count: int) -> bool:
            health = await receiver.health()
            return (
                len(sink.by_message) >= count
                and health["inflight_jobs"] == 0
                and health["outbox_depth"] == 0
            )

        # Warm-up: exercise every code path once, so "0 in flight" is a warm process.
        stats = await _push_batch(receiver.port, template, warmup, connections)
        await receiver.release()
        await poll_until(partial(acked, warmup), timeout, "the warm-up acks")
        expected_acks = warmup
        result.rss_zero_kb = receiver.rss_kb()
        result.stats_zero = await receiver.stats()
        for n in range(1, cycles + 1):
            cycle = InflightCycle()
            started = time.monotonic()
            stats = await _push_batch(receiver.port, template, jobs, connections)
            cycle.fill_seconds = time.monotonic() - started
            cycle.pushed = stats.new_messages
            cycle.by_status = dict(stats.by_status)
            health = await receiver.health()
            cycle.inflight_seen = health["inflight_jobs"]
            answers = dict(stats.answers)
            if overflow:
                extra = await _push_batch(receiver.port, template, overflow, connections)
                cycle.overflow_by_status = dict(extra.by_status)
                answers.update(extra.answers)
            app_stats = await receiver.stats()
            cycle.tasks_held, cycle.threads_held = app_stats["tasks"], app_stats["threads"]
            say(
                f"cycle {n}: {cycle.inflight_seen} in flight after {cycle.fill_seconds:.2f} s, "
                f"rss={mb(receiver.rss_kb())} MB; holding {hold_seconds:g} s"
            )
            hold_end = time.monotonic() + hold_seconds
            while True:  # a measurement window, not a wait for an outcome
                cycle.rss_full_kb.append(receiver.rss_kb())
                if time.monotonic() >= hold_end:
                    break
                await asyncio.sleep(sample_interval)
            started = time.monotonic()
            await receiver.release()
            expected_acks += jobs
            with contextlib.suppress(TimeoutError):  # what is missing is reported as lost
                await poll_until(partial(acked, expected_acks), timeout, "the cycle's acks")
            cycle.ack_seconds = time.monotonic() - started
            cycle.rss_after_kb = receiver.rss_kb()
            cycle.acks = check_acks(answers, _SinkView(sink, answers))
            result.cycles.append(cycle)
            say(f"cycle {n}: acked in {cycle.ack_seconds:.2f} s: {cycle.acks.summary()}")
        result.hwm_kb = receiver.hwm_kb()
        result.stats_end = await receiver.stats()
        result.counters = dict((await receiver.health())["counters"])
    finally:
        result.exit_code = await receiver.stop()
        result.log_problems = receiver.log_problems()
        receiver.cleanup()
        sink.close()
    return result


class _SinkView:
    """The sink's acks restricted to some messages (one cycle's)."""

    def __init__(self, sink: Any, answers: dict[str, Any]) -> None:
        self.by_message = {m: a for m, a in sink.by_message.items() if m in answers}
        self.acks = [a for acks in self.by_message.values() for a in acks]
