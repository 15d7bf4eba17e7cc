"""What one alternating-slot run says: ratios that cannot flatter, side by side.

For each contestant against a reference (the anchor, or a goal's reference), from the slots of
one run (:mod:`benchmarks.harness`) and the instruction counts of the same run
(:mod:`benchmarks.instructions`):

- the **throughput ratio over the cycles in which both servers were saturated** (utilisation
  at least ``harness.SATURATED`` of a core, engine included), "not saturated" when fewer than
  half of the cycles were: two half-idle servers answer as fast as ``wrk`` asks;
- the **CPU ratio**: the reference's CPU µs per request (server + engine) over the
  contestant's, per cycle (valid saturated or not);
- the **instructions ratio**: the reference's instructions per push over the contestant's.

Each ratio reads the same way: above 1, the contestant does more with the same CPU::

    verdict = Verdict.of(slots, "router", "bare")
    print(verdict.ratio_cell(), verdict.cpu_ratio)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from benchmarks.harness import MIN_SATURATED_SHARE, Slot, Summary, summarize


def per_cycle_cpu_ratios(slots: Sequence[Slot], name: str, reference: str) -> list[float]:
    """``reference``'s CPU µs per request (server + engine) over ``name``'s, one value per
    cycle: above 1, ``name`` costs less per request (read like a throughput ratio)."""
    cost = {(s.name, s.cycle): s.total_us_per_request for s in slots if s.cycle >= 0}
    cycles = sorted({c for _, c in cost})
    return [
        cost[(reference, c)] / cost[(name, c)]
        for c in cycles
        if cost.get((name, c)) and (reference, c) in cost
    ]


def saturated_ratios(slots: Sequence[Slot], name: str, reference: str) -> tuple[list[float], int]:
    """``name``'s 2xx rate over ``reference``'s in the cycles where both servers were
    saturated, and how many cycles both were measured in."""
    by: dict[tuple[str, int], Slot] = {(s.name, s.cycle): s for s in slots if s.cycle >= 0}
    cycles = sorted({c for n, c in by if n == name and (reference, c) in by})
    ratios = [
        by[(name, c)].rate_2xx / by[(reference, c)].rate_2xx
        for c in cycles
        if by[(name, c)].saturated and by[(reference, c)].saturated and by[(reference, c)].rate_2xx
    ]
    return ratios, len(cycles)


@dataclass(frozen=True, slots=True)
class Verdict:
    """How ``name`` compares with ``reference`` in one run: the throughput ratio over the
    cycles where both were saturated (``valid`` only when at least half of the cycles were),
    the CPU-per-request ratio (every cycle), and each one's median utilisation."""

    name: str
    reference: str
    ratio: Summary
    saturated_cycles: int
    cycles: int
    cpu_ratio: Summary
    utilisation: float
    reference_utilisation: float

    @classmethod
    def of(cls, slots: Sequence[Slot], name: str, reference: str) -> Verdict:
        ratios, cycles = saturated_ratios(slots, name, reference)
        return cls(
            name,
            reference,
            summarize(ratios),
            len(ratios),
            cycles,
            summarize(per_cycle_cpu_ratios(slots, name, reference)),
            median_utilisation(slots, name),
            median_utilisation(slots, reference),
        )

    @property
    def valid(self) -> bool:
        return self.saturated_cycles >= max(1, MIN_SATURATED_SHARE * self.cycles)

    def ratio_cell(self) -> str:
        """The ratio, or "not saturated" with how many cycles were."""
        if self.valid:
            return f"{self.ratio} [{self.saturated_cycles}/{self.cycles} cycles]"
        return f"not saturated [{self.saturated_cycles}/{self.cycles} cycles]"


def median_utilisation(slots: Sequence[Slot], name: str) -> float:
    return summarize([s.utilisation for s in slots if s.name == name and s.cycle >= 0]).median


def saturation_cell(slots: Sequence[Slot], name: str) -> str:
    """``0.97 (16/16)``: median utilisation in cores, and the slots at ``SATURATED`` or more."""
    mine = [s for s in slots if s.name == name and s.cycle >= 0]
    busy = sum(1 for s in mine if s.saturated)
    return f"{median_utilisation(slots, name):.2f} ({busy}/{len(mine)})"


def instructions_ratio(counts: Mapping[str, float], name: str, reference: str) -> float | None:
    """``reference``'s instructions per push over ``name``'s (None when either is missing)."""
    if name in counts and reference in counts and counts[name]:
        return counts[reference] / counts[name]
    return None


def _x(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}x"


def _count(counts: Mapping[str, float], name: str) -> str:
    return f"{counts[name]:,.0f}" if name in counts else "—"


def figures_table(
    rows: Sequence[tuple[str, str]],
    slots: Sequence[Slot],
    anchor: str,
    counts: Mapping[str, float],
    *,
    engine: bool = False,
) -> list[str]:
    """The run's main table: one line per ``(name, label)``, every ratio against ``anchor``."""
    engine_head = " engine CPU µs/req |" if engine else ""
    lines = [
        f"| path | 2xx req/s | utilisation, cores (saturated slots) | vs {anchor}, saturated "
        f"cycles (median, IQR) | server CPU µs/req |{engine_head} vs {anchor} by CPU/req "
        f"| instructions/push | vs {anchor} by instructions | non-2xx |",
        "| --- " * (9 + engine) + "|",
    ]
    for name, label in rows:
        mine = [s for s in slots if s.name == name and s.cycle >= 0]
        requests = sum(s.requests for s in mine)
        non_2xx = sum(s.non_2xx for s in mine) / requests if requests else 0.0
        rate = summarize([s.rate_2xx for s in mine]).median
        cpu = summarize([s.cpu_us_per_request for s in mine]).median
        verdict = Verdict.of(slots, name, anchor)
        ratio = "—" if name == anchor else verdict.ratio_cell()
        by_cpu = "—" if name == anchor else str(verdict.cpu_ratio)
        engine_cell = ""
        if engine:
            used = [s.engine_us_per_request for s in mine if s.engine_cpu_seconds]
            engine_cell = f" {summarize(used).median:.0f} |" if used else " — |"
        lines.append(
            f"| {label} | {rate:,.0f} | {saturation_cell(slots, name)} | {ratio} | {cpu:.0f} |"
            f"{engine_cell} {by_cpu} | {_count(counts, name)} "
            f"| {_x(instructions_ratio(counts, name, anchor)) if name != anchor else '—'} "
            f"| {non_2xx:.1%} |"
        )
    return lines


def goals_table(
    goals: Sequence[tuple[str, str, float | None]],
    slots: Sequence[Slot],
    counts: Mapping[str, float],
    *,
    ahead: Sequence[tuple[str, str]] = (),
) -> list[str]:
    """Each goal ``(name, reference, at least)`` by the three ratios (``at least`` None: a
    comparison shown, no goal); each pair of ``ahead`` ``(ironpush, hand-rolled)`` by the
    same ratios (how far ahead ironpush is). A goal is met when every figure there is (a
    "not saturated" throughput ratio does not count) meets it, and the contestant answered
    only 2xx."""
    lines = [
        "| contestant | vs | goal | throughput, saturated cycles | by CPU/req | by instructions "
        "| verdict |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, reference, goal in goals:
        verdict = Verdict.of(slots, name, reference)
        by_instructions = instructions_ratio(counts, name, reference)
        figures = [verdict.cpu_ratio.median]
        figures += [verdict.ratio.median] if verdict.valid else []
        figures += [by_instructions] if by_instructions is not None else []
        clean = not any(s.non_2xx for s in slots if s.name == name and s.cycle >= 0)
        if goal is None:
            wanted, said = "—", "—"
        else:
            met = clean and all(f >= goal for f in figures)
            wanted = f"≥ {goal:.2f}x"
            said = f"{'**met**' if met else '**not met**'}{'' if clean else ' (non-2xx)'}"
        lines.append(
            f"| {name} | {reference} | {wanted} | {verdict.ratio_cell()} "
            f"| {verdict.cpu_ratio} | {_x(by_instructions)} | {said} |"
        )
    for name, anchor in ahead:
        verdict = Verdict.of(slots, name, anchor)
        lines.append(
            f"| {name} | {anchor} (hand-rolled) | ahead | {verdict.ratio_cell()} "
            f"| {verdict.cpu_ratio} | {_x(instructions_ratio(counts, name, anchor))} | — |"
        )
    return lines
