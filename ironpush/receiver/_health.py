"""What the health endpoints judge by: liveness (the process serves) and readiness (it can take
pushes now), and the levels that keep *slow* apart from *down*.

``GET /_health/live`` judges nothing but the process: if the event loop answers, it is 200
(a slow or stopped store never fails it, so an orchestrator does not restart a process that a
dependency holds up). ``GET /_health/ready`` (and ``GET /_health``, its old name) gathers
:class:`Check`\\ s, each at one **level**:

- ``"ok"``;
- ``"degraded"``: slow but working (a store probe slower than ``Health.slow``, or a reason a
  source reports at this level): still **200**, with the reason;
- ``"failing"``: it cannot take pushes now (the store's probe failed or took longer than the
  store's own timeout, most recent pushes were refused with 503, or a source says so): **503**.

The checks: ``store`` (:class:`StoreProbe`: ``check()`` and ``depth()`` under one deadline,
shared by concurrent callers, plus the store's own :class:`Reporter` reasons), ``pushes`` (the
:class:`RefusalWindow`) and ``runtime`` (the :class:`Reporter` reasons of the router's
background machinery). Any store or runtime part reports reasons by having ``problems()``::

    class MyStore(MemoryStore):
        def problems(self) -> list[tuple[str, str]]:
            return [("failing", "keys were evicted")] if self.evicted else []
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

from .._errors import StoreUnavailable
from .stores._base import Store

Level = Literal["ok", "degraded", "failing"]
LEVELS: tuple[Level, ...] = ("ok", "degraded", "failing")  # in order of gravity

#: Fewer verified pushes than this in the window say nothing about health.
MIN_PUSHES = 10
#: The probe's deadline beyond the store's own timeout: the store's error (which says why)
#: arrives first; the deadline only bounds a store that does not bound its own calls.
PROBE_MARGIN = 0.5
#: The probe's deadline for a store without a ``timeout`` (memory, custom stores).
DEFAULT_PROBE_TIMEOUT = 2.0


@runtime_checkable
class Reporter(Protocol):
    """A store or runtime part that knows of problems health should show.

    ``problems()`` returns ``(level, reason)`` pairs (tuples, or named tuples such as
    :class:`~ironpush.receiver.stores.StoreProblem`), ``level`` being ``"degraded"`` (200,
    with the reason) or ``"failing"`` (503; any other level, e.g. a store's ``"refused"``,
    counts as failing); it may be a coroutine. A store's is read inside the
    store probe (under its deadline); keep it cheap: report what a watcher already knows.
    """

    def problems(
        self,
    ) -> Iterable[tuple[str, str]] | Awaitable[Iterable[tuple[str, str]]]: ...


@dataclass(frozen=True, slots=True)
class Check:
    """One line of the readiness verdict: its level, why, and how long it took (seconds)."""

    level: Level
    reasons: tuple[str, ...] = ()
    duration: float = 0.0

    def as_json(self) -> dict[str, object]:
        shown: dict[str, object] = {"status": self.level, "duration": round(self.duration, 4)}
        if self.reasons:
            shown["reasons"] = list(self.reasons)
        return shown


def worst(levels: Iterable[Level]) -> Level:
    """The gravest of ``levels`` (``"ok"`` for none)."""
    return max(levels, key=LEVELS.index, default="ok")


def readiness_json(checks: Mapping[str, Check], *, draining: bool = False) -> dict[str, object]:
    """The JSON of ``/_health/ready``: ``status``, ``reasons`` (gravest first), ``checks``.

    ``status`` is the gravest check's level, or ``"draining"`` (still 200) when the router is
    shutting down and nothing fails; ``reason`` repeats the reasons as one line (the field
    ``/_health`` always had).
    """
    level = worst(check.level for check in checks.values())
    ordered = sorted(checks.values(), key=lambda c: -LEVELS.index(c.level))
    reasons = [reason for check in ordered if check.level != "ok" for reason in check.reasons]
    status = "draining" if draining and level != "failing" else level
    if status == "draining":
        reasons.append("shutting down: new deferred work gets 503")
    payload: dict[str, object] = {
        "status": status,
        "reasons": reasons,
        "checks": {name: check.as_json() for name, check in checks.items()},
    }
    if reasons:
        payload["reason"] = "; ".join(reasons)
    return payload


async def problems_of(source: object) -> list[tuple[Level, str]]:
    """The ``(level, reason)`` pairs of a :class:`Reporter` (none for anything else).

    A level other than ``"degraded"``/``"failing"`` counts as failing (the source meant a
    problem); a ``problems()`` that raises is reported as degraded with its error type.
    """
    if not isinstance(source, Reporter):
        return []
    try:
        found = source.problems()
        if inspect.isawaitable(found):
            found = await found
        pairs = [(str(level), str(reason)) for level, reason in found]
    except Exception as exc:  # a reporter's bug must not take readiness down with it
        name = type(source).__name__
        return [("degraded", f"{name}.problems() failed: {type(exc).__name__}")]
    return [(_level(level), reason) for level, reason in pairs]


def _level(text: str) -> Level:
    return "degraded" if text == "degraded" else "failing"


async def check_of(*sources: object) -> Check:
    """The :class:`Check` of what ``sources`` report (``ok`` when nothing), timed."""
    started = time.perf_counter()
    found = [pair for source in sources for pair in await problems_of(source)]
    duration = time.perf_counter() - started
    return Check(worst(level for level, _ in found), tuple(r for _, r in found), duration)


class RefusalWindow:
    """Pushes and 503 refusals per second, over the last ``span`` seconds (a ring of slots)::

    window = RefusalWindow()
    window.record(time.perf_counter(), refused=True)
    window.verdict(time.perf_counter(), threshold=0.9)  # "12 of the last 12 pushes ..." or None
    """

    __slots__ = ("_pushes", "_refused", "_seconds", "span")

    def __init__(self, span: int = 30) -> None:
        self.span = span
        self._seconds = [-1] * span
        self._pushes = [0] * span
        self._refused = [0] * span

    def record(self, now: float, refused: bool) -> None:
        """Count one verified push answered at ``now`` (``time.perf_counter()`` seconds)."""
        second = now.__trunc__()  # int(now) (now >= 0), without int()'s type call: per push
        i = second % self.span
        if self._seconds[i] != second:
            self._seconds[i], self._pushes[i], self._refused[i] = second, 0, 0
        self._pushes[i] += 1
        if refused:
            self._refused[i] += 1

    def counts(self, now: float) -> tuple[int, int]:
        """(pushes, refused) in the window that ends at ``now``."""
        oldest = int(now) - self.span
        pushes = refused = 0
        for i, second in enumerate(self._seconds):
            if second > oldest:
                pushes += self._pushes[i]
                refused += self._refused[i]
        return pushes, refused

    def verdict(self, now: float, *, threshold: float) -> str | None:
        """Why health fails (more than ``threshold`` of the recent pushes refused), or None."""
        pushes, refused = self.counts(now)
        if pushes < MIN_PUSHES or refused <= threshold * pushes:
            return None
        return f"{refused} of the last {pushes} pushes were refused with 503 (last {self.span}s)"

    def check(self, *, threshold: float) -> Check:
        """The ``pushes`` check: failing past ``threshold``, else ok."""
        why = self.verdict(time.perf_counter(), threshold=threshold)
        return Check("failing", (why,)) if why else Check("ok")


def engine_of(store: Store) -> object:
    """The store that does the work: the null store (deduplication off) keeps its outbox in
    another store, which is the one to judge."""
    return getattr(store, "outbox", store) if store.kind == "null" else store


def store_timeout(store: Store) -> float | None:
    """The store's own bound on one call (``timeout``; SQLite's ``check_timeout``), if any."""
    engine = engine_of(store)
    for name in ("timeout", "check_timeout"):
        value = getattr(engine, name, None)
        if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
            return float(value)
    return None


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """What one store probe found: the ``store`` check, and the outbox depth when it answered."""

    check: Check
    depth: int | None


class StoreProbe:
    """``store.check()`` and ``store.depth()`` (and the store's ``problems()``), under one
    deadline that matches the store's own timeout.

    ``timeout`` None means the store's own timeout plus :data:`PROBE_MARGIN` (every store call
    is bounded by it, so a probe fails exactly when a push would get 503), or
    :data:`DEFAULT_PROBE_TIMEOUT` for a store without one. A probe that answers but took longer
    than ``slow`` seconds is *degraded*. Concurrent callers share the probe in flight and its
    deadline (counted from the probe's start), so a store that hangs costs one pending probe,
    not one per health request, and every caller answers within the deadline.
    """

    def __init__(self, store: Store, *, timeout: float | None, slow: float) -> None:
        self.store = store
        known = store_timeout(store)
        default = DEFAULT_PROBE_TIMEOUT if known is None else known + PROBE_MARGIN
        self.timeout = default if timeout is None else timeout
        self.slow = slow
        self._task: asyncio.Task[tuple[int, list[tuple[Level, str]], float]] | None = None
        self._started = 0.0

    async def run(self) -> ProbeResult:
        """Probe (or join the probe in flight); never raises, never outlives the deadline."""
        loop = asyncio.get_running_loop()
        task = self._task
        if task is None or task.done() or task.get_loop() is not loop:
            self._started = loop.time()
            task = self._task = loop.create_task(self._probe())
            task.add_done_callback(_retrieve)  # a probe that fails after its deadline is not lost
        started = self._started
        kind = self.store.kind
        try:
            async with asyncio.timeout_at(started + self.timeout):
                depth, problems, duration = await asyncio.shield(task)
        except TimeoutError:
            return _failed(f"store {kind} did not answer within {self.timeout:g} s", started)
        except StoreUnavailable as exc:
            return _failed(_unavailable(kind, exc), started)
        except Exception as exc:  # the message of a foreign error may carry a DSN: the type only
            return _failed(f"store {kind} failed: {type(exc).__name__}", started)
        if duration > self.slow:
            slow = f"store {kind} answered in {duration:.2f} s (slow: over {self.slow:g} s)"
            problems = [("degraded", slow), *problems]
        level = worst(level for level, _ in problems)
        return ProbeResult(Check(level, tuple(r for _, r in problems), duration), depth)

    def cancel(self) -> None:
        """Cancel a probe still in flight on this event loop (at shutdown)."""
        task, self._task = self._task, None
        if task is not None and not task.done() and task.get_loop() is asyncio.get_running_loop():
            task.cancel()

    async def _probe(self) -> tuple[int, list[tuple[Level, str]], float]:
        loop = asyncio.get_running_loop()
        started = loop.time()
        # Side by side: one round trip of the store's latency, not two.
        _, depth = await asyncio.gather(self.store.check(), self.store.depth())
        duration = loop.time() - started
        return depth, await problems_of(engine_of(self.store)), duration


def _failed(why: str, started: float) -> ProbeResult:
    took = asyncio.get_running_loop().time() - started
    return ProbeResult(Check("failing", (why,), took), None)


def _unavailable(kind: str, exc: StoreUnavailable) -> str:
    text = str(exc)
    return text if kind in text else f"store {kind} unavailable: {text}"


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()
