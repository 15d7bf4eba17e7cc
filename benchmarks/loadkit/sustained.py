"""Sustained load: ``connections`` connections push unique messages for ``duration`` seconds.

503'd pushes are pushed again after ``retry_delay`` with a new reservation, like IronMQ; a share
of 202'd ones are redelivered while their job may still run. Then the pushes left are finished
and every ack awaited, with the receiver's RSS and ``/_health`` sampled on the way.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ironpush.receiver._outbox import OutboxSettings

from .ack_sink import AckSink, LoadPusher
from .checks import BUSY_BODY, AckCheck, check_acks, instances, push_template, receiver_env
from .process import (
    CLEAN_EXITS,
    ReceiverProcess,
    Sample,
    Sampler,
    mb,
    percentile,
    poll_until,
    slope_mb_per_min,
)


@dataclass
class SustainedResult:
    config: dict[str, Any]
    load_seconds: float = 0.0
    drain_seconds: float = 0.0
    requests: int = 0
    load_requests: int = 0  # answered before the load stopped (the rest: finishing retries)
    load_accepted: int = 0
    by_status: dict[int, int] = field(default_factory=dict)
    connection_errors: int = 0
    bad_bodies: dict[str, int] = field(default_factory=dict)
    new_messages: int = 0
    retries: int = 0
    redeliveries: int = 0
    first_503_at: float | None = None
    accepted_before_first_503: int = 0
    latency_ms: dict[str, float] = field(default_factory=dict)
    acks: AckCheck = field(default_factory=AckCheck)
    counters: dict[str, int] = field(default_factory=dict)
    max_inflight: int = 0
    max_outbox: int = 0
    final_health: dict[str, Any] = field(default_factory=dict)
    stats_start: dict[str, Any] = field(default_factory=dict)
    stats_end: dict[str, Any] = field(default_factory=dict)
    rss: dict[str, float] = field(default_factory=dict)
    rss_parts_start: dict[str, float] = field(default_factory=dict)
    rss_parts_end: dict[str, float] = field(default_factory=dict)
    samples: list[Sample] = field(default_factory=list)
    exit_code: int | None = None
    log_problems: list[str] = field(default_factory=list)

    @property
    def outbox_bound(self) -> int:
        """Unsent acks stay under this: ``max_deferred`` of them refuse new jobs, the running
        jobs add at most ``max_deferred`` more, and the health gauge counts a batch's sent
        items until the whole batch is done."""
        return 2 * int(self.config["max_deferred"]) + OutboxSettings().batch

    @property
    def rate(self) -> float:
        return self.load_requests / self.load_seconds if self.load_seconds else 0.0

    @property
    def accepted_rate(self) -> float:
        return self.load_accepted / self.load_seconds if self.load_seconds else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "config": self.config,
            "load_seconds": round(self.load_seconds, 1),
            "drain_seconds": round(self.drain_seconds, 2),
            "requests": self.requests,
            "requests_per_s": round(self.rate),
            "accepted_202_per_s": round(self.accepted_rate),
            "by_status": {str(k): v for k, v in sorted(self.by_status.items())},
            "connection_errors": self.connection_errors,
            "new_messages": self.new_messages,
            "retries_after_503": self.retries,
            "redeliveries": self.redeliveries,
            "first_503_at_s": (None if self.first_503_at is None else round(self.first_503_at, 3)),
            "202_before_first_503": self.accepted_before_first_503,
            "latency_ms": self.latency_ms,
            "acks": self.acks.summary(),
            "max_inflight_sampled": self.max_inflight,
            "max_outbox_sampled": self.max_outbox,
            "receiver_counters": self.counters,
            "receiver_stats": {"start": self.stats_start, "end": self.stats_end},
            "rss_mb": self.rss,
            "rss_parts_mb": {"idle": self.rss_parts_start, "end": self.rss_parts_end},
            "exit_code": self.exit_code,
            "log_problems": self.log_problems[:5],
        }

    def problems(
        self, *, expect_503: bool = True, flat_mb: float = 10.0, growth_mb: float = 100.0
    ) -> list[str]:
        out: list[str] = []
        cap = int(self.config["max_deferred"])
        if self.connection_errors:
            out.append(f"{self.connection_errors} pushes got no answer")
        other = {s: n for s, n in self.by_status.items() if s not in (200, 202, 503)}
        if other:
            out.append(f"answers other than 200/202/503: {other}")
        if self.bad_bodies:
            out.append(f"503 answers that are not back-pressure: {self.bad_bodies}")
        if expect_503 and not self.by_status.get(503):
            out.append("no 503: the deferred cap was never reached")
        if self.max_inflight > cap:
            out.append(f"{self.max_inflight} jobs in flight > max_deferred {cap}")
        if self.max_outbox > self.outbox_bound:
            out.append(f"{self.max_outbox} unsent acks > {self.outbox_bound}: the outbox grows")
        out += self.acks.problems()
        c = self.counters
        if c.get("busy") != self.by_status.get(503, 0):
            out.append(f"router busy counter {c.get('busy')} != 503 answers")
        if c.get("received") != self.requests:
            out.append(f"router received {c.get('received')} != {self.requests} pushes")
        if c.get("acked") != self.acks.received:
            out.append(f"router acked {c.get('acked')} != {self.acks.received} acks received")
        for name in ("late_acks", "ack_failures", "jobs_failed", "retried", "rejected"):
            if c.get(name):
                out.append(f"router counter {name} = {c[name]}")
        health = self.final_health
        if health.get("inflight_jobs") or health.get("outbox_depth"):
            out.append(f"not drained: {health}")
        if self.rss.get("last_minus_middle_third", 0.0) > flat_mb:
            out.append(f"RSS not flat: +{self.rss['last_minus_middle_third']} MB last third")
        if self.rss.get("peak_minus_idle", 0.0) > growth_mb:
            out.append(f"RSS grew {self.rss['peak_minus_idle']} MB over the run")
        if self.exit_code not in CLEAN_EXITS:
            out.append(f"receiver exit code {self.exit_code}")
        if self.log_problems:
            out.append(f"receiver logged errors: {self.log_problems[:3]}")
        return out


async def run_sustained(
    *,
    duration: float = 30.0,
    connections: int = 200,
    max_deferred: int = 100,
    job_seconds: float = 0.2,
    job_kind: str = "async",
    store: str = "memory",
    max_entries: int | None = None,
    outbox_concurrency: int | None = None,
    ack_backend: str | None = None,
    retry_delay: float = 0.1,
    redeliver_ratio: float = 0.05,
    body_size: int = 512,
    sample_interval: float = 0.5,
    drain_timeout: float = 60.0,
    progress: Callable[[str], None] | None = None,
) -> SustainedResult:
    """Push for ``duration`` s, finish what is pending, wait for every ack; measure on the way."""

    config = {
        "duration": duration,
        "connections": connections,
        "max_deferred": max_deferred,
        "job_seconds": job_seconds,
        "job_kind": job_kind,
        "store": store,
        "max_entries": max_entries,
        "outbox_concurrency": outbox_concurrency,
        "ack_backend": ack_backend,
        "retry_delay": retry_delay,
        "redeliver_ratio": redeliver_ratio,
        "body_size": body_size,
    }
    result = SustainedResult(config)
    say = progress or (lambda _: None)
    sink = await AckSink().start()
    receiver = ReceiverProcess(
        receiver_env(
            sink.url,
            max_deferred=max_deferred,
            job_seconds=job_seconds,
            job_mode="sleep",
            job_kind=job_kind,
            store=store,
            max_entries=max_entries,
            outbox_concurrency=outbox_concurrency,
            ack_backend=ack_backend,
        )
    )
    try:
        await receiver.start()
        result.stats_start = await receiver.stats()
        idle_rss = receiver.rss_kb()
        idle_parts = receiver.rss_parts_mb()
        pusher = LoadPusher(
            receiver.port,
            push_template(receiver.port, body_size=body_size),
            connections=connections,
            retry_delay=retry_delay,
            redeliver_ratio=redeliver_ratio,
            redeliver_within=2 * job_seconds,
            seed=next(instances),
        )
        sampler = Sampler(receiver, sample_interval).start()
        say(f"pushing for {duration:g} s over {connections} connections (pid {receiver.pid})")
        run = asyncio.get_running_loop().create_task(pusher.run())
        load_end = time.monotonic() + duration
        while time.monotonic() < load_end and not run.done():
            await asyncio.sleep(min(1.0, max(0.0, load_end - time.monotonic())))
            s = sampler.samples[-1] if sampler.samples else None
            if s is not None:
                say(
                    f"  t={s.t:5.1f}s requests={pusher.stats.requests} "
                    f"by_status={dict(pusher.stats.by_status)} inflight={s.inflight} "
                    f"outbox={s.outbox} rss={mb(s.rss_kb)} MB acks={len(sink.acks)}"
                )
        pusher.stop_new()
        stopped = time.monotonic()
        load_samples = [s for s in sampler.samples if s.t <= duration]
        await asyncio.wait_for(run, drain_timeout)  # retries and redeliveries left
        stats = pusher.stats
        expected = sum(1 for p in stats.answers.values() if any(st == 202 for _, st in p))

        async def drained() -> bool:
            health = await receiver.health()
            done = health["inflight_jobs"] == 0 and health["outbox_depth"] == 0
            return done and len(sink.by_message) >= expected

        with contextlib.suppress(TimeoutError):  # what is missing is reported as lost
            await poll_until(drained, drain_timeout, "every ack", interval=0.05)
        result.drain_seconds = time.monotonic() - stopped
        await sampler.sample()
        await sampler.stop()
        result.final_health = await receiver.health()
        result.stats_end = await receiver.stats()
        result.rss = _rss_figures(idle_rss, load_samples, sampler.samples, receiver.hwm_kb())
        result.rss_parts_start = idle_parts
        result.rss_parts_end = receiver.rss_parts_mb()
        result.samples = sampler.samples
    finally:
        result.exit_code = await receiver.stop()
        result.log_problems = receiver.log_problems()
        receiver.cleanup()
        sink.close()
    stats = pusher.stats
    result.load_seconds = (stats.stopped_new_at or stopped) - stats.started
    result.requests = stats.requests
    result.load_requests = stats.requests_at_stop
    result.load_accepted = stats.accepted_at_stop
    result.by_status = dict(stats.by_status)
    result.connection_errors = stats.connection_errors
    result.bad_bodies = {
        f"{status} {body!r}": n
        for (status, body), n in stats.bodies.items()
        if status == 503 and body != BUSY_BODY
    }
    result.new_messages = stats.new_messages
    result.retries = stats.retries
    result.redeliveries = stats.redeliveries
    result.first_503_at = stats.first_503_at
    result.accepted_before_first_503 = stats.accepted_before_first_503
    result.latency_ms = {
        f"{status}_{name}": round(percentile(stats.latencies.get(status, []), q) * 1000, 2)
        for status in (202, 503)
        for name, q in (("p50", 0.5), ("p99", 0.99))
    }
    result.acks = check_acks(stats.answers, sink)
    result.counters = dict(result.final_health.get("counters", {}))
    result.max_inflight = max((s.inflight for s in result.samples), default=0)
    result.max_outbox = max((s.outbox for s in result.samples), default=0)
    return result


def _rss_figures(
    idle_kb: int, load: list[Sample], everything: list[Sample], hwm_kb: int
) -> dict[str, float]:
    third = len(load) // 3
    middle, last = load[third : 2 * third], load[2 * third :]
    figures = {
        "idle": mb(idle_kb),
        "peak_sampled": mb(max((s.rss_kb for s in everything), default=idle_kb)),
        "peak_hwm": mb(hwm_kb),
        "end": mb(everything[-1].rss_kb if everything else idle_kb),
        "slope_mb_per_min_last_two_thirds": slope_mb_per_min(load[third:]),
    }
    if middle and last:
        figures["middle_third_mean"] = mb(statistics.fmean(s.rss_kb for s in middle))
        figures["last_third_mean"] = mb(statistics.fmean(s.rss_kb for s in last))
        figures["last_minus_middle_third"] = round(
            figures["last_third_mean"] - figures["middle_third_mean"], 1
        )
    figures["peak_minus_idle"] = round(figures["peak_hwm"] - figures["idle"], 1)
    return figures
