"""The fallback's delivery line (nothing configured logging) is written without a LogRecord
when only ironpush's fallback handler would show it; it is the same text, and anything of
the application's on the way (a filter, a record factory, a root handler) gets the record."""

from __future__ import annotations

import io
import logging
import re
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from log_kit import run_script

from ironpush._logfields import DATEFMT, FORMAT, FallbackHandler, TextFormatter, sole_fallback
from ironpush.receiver._push_log import duration_text


@pytest.mark.parametrize("created", [1_700_000_000.0, 1_700_000_000.0009, 1_700_000_059.9994])
@pytest.mark.parametrize("level", [logging.INFO, logging.WARNING, logging.ERROR, 25])
def test_the_line_is_what_the_formatter_makes_of_the_record(created: float, level: int) -> None:
    record = logging.LogRecord("ironpush.receiver", level, __file__, 1, "push %s ok", ("m1",), None)
    record.created = created
    record.msecs = int((created - int(created)) * 1000) + 0.0
    text = TextFormatter()
    expected = logging.Formatter(FORMAT, DATEFMT).format(record)
    assert text.format(record) == expected
    assert text.line(created, level, "ironpush.receiver", "push m1 ok") == expected


SCRIPT = """
import asyncio, logging
from ironpush import PushMessage, PushRouter
from ironpush.testing import PushSimulator

router = PushRouter(secret_keys=["k" * 32])
seen = []

@router.route("/ok", queue="q", subscriber="s")
async def ok(msg: PushMessage) -> None:
    return None

def keep(record):
    seen.append(("filter", record.getMessage().split()[1], record.outcome, record.status))
    return True

default_factory = logging.getLogRecordFactory()

def factory(*args, **kwargs):
    record = default_factory(*args, **kwargs)
    seen.append(("factory", record.getMessage().split()[1]))
    return record

async def main() -> None:
    async with PushSimulator(router) as sim:
        await sim.push("/ok", "one", message_id="m-direct")   # only the fallback: direct
        [fallback] = logging.getLogger("ironpush").handlers
        fallback.addFilter(keep)
        await sim.push("/ok", "two", message_id="m-filtered")  # the filter gets the record
        fallback.removeFilter(keep)
        logging.setLogRecordFactory(factory)
        await sim.push("/ok", "three", message_id="m-factory")  # so does a record factory
        logging.setLogRecordFactory(default_factory)
        await sim.push("/ok", "four", message_id="m-again")   # direct again
    print(seen)

asyncio.run(main())
"""
LINE = re.compile(
    r"^\d\d:\d\d:\d\d\.\d{3} INFO    ironpush\.receiver: push (m-[a-z]+) queue=q subscriber=s "
    r"outcome=acked status=200 duration_ms=\d+\.\d$"
)


def test_the_line_is_the_same_whether_a_record_is_made_or_not() -> None:
    proc = run_script(SCRIPT)
    deliveries = [x for x in proc.stderr.splitlines() if "queue=q subscriber=s" in x]
    found = [LINE.match(x) for x in deliveries]
    assert all(found), proc.stderr
    assert [m.group(1) for m in found if m] == ["m-direct", "m-filtered", "m-factory", "m-again"]
    seen = proc.stdout.strip().splitlines()[-1]
    assert seen == str([("filter", "m-filtered", "acked", 200), ("factory", "m-factory")]), (
        proc.stdout
    )


DEFERRED_SCRIPT = """
import asyncio, logging
import anyio
from ironpush import Defer, PushMessage, PushRouter
from ironpush.testing import PushSimulator

router = PushRouter(secret_keys=["k" * 32])

async def job() -> None:
    return None

@router.route("/later", queue="q", subscriber="s")
async def later(msg: PushMessage) -> Defer:
    return Defer(job)

def keep(record):
    return True

async def push(sim, message_id, acks):
    await sim.push("/later", "x", message_id=message_id, reservation_id="r-" + message_id)
    # Counted as acked in the same step that writes the ack's line.
    with anyio.fail_after(10):
        while router.counters.totals["acked"] < acks:
            await anyio.wait_all_tasks_blocked()

async def main() -> None:
    async with PushSimulator(router) as sim:
        await push(sim, "m-direct", 1)                  # only the fallback: both lines direct
        [fallback] = logging.getLogger("ironpush").handlers
        fallback.addFilter(keep)
        await push(sim, "m-filtered", 2)                # the filter gets both records
        fallback.removeFilter(keep)
        logging.addLevelName(logging.INFO, "NOTE")      # the parts made before follow it
        await push(sim, "m-renamed", 3)
    print("done")

asyncio.run(main())
"""
DEFERRED_LINE = re.compile(
    r"^\d\d:\d\d:\d\d\.\d{3} (INFO|NOTE)    ironpush\.receiver: push (m-[a-z]+) queue=q "
    r"subscriber=s outcome=deferred status=202 duration_ms=\d+\.\d$"
)
ACK_LINE = re.compile(
    r"^\d\d:\d\d:\d\d\.\d{3} (INFO|NOTE)    ironpush\.receiver\.outbox: ack (m-[a-z]+) "
    r"queue=q reservation=r-(m-[a-z]+) result=acked$"
)


def test_a_deferred_push_and_its_ack_log_the_same_lines_with_or_without_a_record() -> None:
    """The 202 line and the outbox's ack line, written from parts made once (per route and
    outcome, per queue and result): the same text as their records', and the level's name
    of the moment."""
    proc = run_script(DEFERRED_SCRIPT)
    lines = proc.stderr.splitlines()
    pushes = [m.groups() for x in lines if (m := DEFERRED_LINE.match(x))]
    acks = [m.groups() for x in lines if (m := ACK_LINE.match(x))]
    assert pushes == [("INFO", "m-direct"), ("INFO", "m-filtered"), ("NOTE", "m-renamed")], (
        proc.stderr
    )
    names = ["m-direct", "m-filtered", "m-renamed"]
    assert acks == [
        (level, name, name) for level, name in zip(["INFO", "INFO", "NOTE"], names, strict=True)
    ], proc.stderr


@pytest.fixture
def fallback(monkeypatch: pytest.MonkeyPatch) -> Iterator[FallbackHandler]:
    """ironpush's fallback handler alone, as with nothing configured; restored after. (The
    root's handlers are pytest's during the test: each test sets them aside itself.)"""
    ironpush, child = logging.getLogger("ironpush"), logging.getLogger("ironpush.receiver")
    handler = FallbackHandler()
    monkeypatch.setattr(ironpush, "handlers", [handler])
    monkeypatch.setattr(child, "handlers", [])
    level = ironpush.level
    ironpush.setLevel(logging.INFO)
    yield handler
    ironpush.setLevel(level)


def test_the_direct_line_is_checked_again_on_every_call(
    fallback: FallbackHandler, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(logging.root, "handlers", [])
    child = logging.getLogger("ironpush.receiver")
    assert sole_fallback(child, logging.INFO) is fallback
    other = logging.StreamHandler(io.StringIO())
    for add, undo in (
        (lambda: child.addHandler(other), lambda: child.removeHandler(other)),
        (lambda: logging.root.addHandler(other), lambda: logging.root.removeHandler(other)),
        (lambda: fallback.addFilter(len), lambda: fallback.removeFilter(len)),
        (lambda: child.addFilter(len), lambda: child.removeFilter(len)),
        (lambda: fallback.setLevel(logging.ERROR), lambda: fallback.setLevel(logging.NOTSET)),
        (lambda: setattr(child, "propagate", False), lambda: setattr(child, "propagate", True)),
        (
            lambda: fallback.setFormatter(logging.Formatter()),
            lambda: fallback.setFormatter(fallback.text),
        ),
    ):
        add()
        assert sole_fallback(child, logging.INFO) is None
        undo()
        assert sole_fallback(child, logging.INFO) is fallback


def test_the_direct_line_follows_a_renamed_level_and_flushes_a_buffered_stream(
    fallback: FallbackHandler, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = io.BytesIO()
    buffered = io.TextIOWrapper(io.BufferedWriter(raw), encoding="utf-8")  # neither flag set
    monkeypatch.setattr(sys, "stderr", buffered)
    assert fallback.write_line(logging.INFO, "ironpush.receiver", "push m1 ok")
    assert raw.getvalue().decode().endswith(" INFO    ironpush.receiver: push m1 ok\n")
    monkeypatch.setitem(logging._levelToName, logging.INFO, "NOTE")
    assert fallback.write_line(logging.INFO, "ironpush.receiver", "push m2 ok")
    assert raw.getvalue().decode().endswith(" NOTE    ironpush.receiver: push m2 ok\n")


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        *((0.0, "0.0"), (0.04, "0.0"), (0.06, "0.1"), (0.25, "0.2"), (0.35, "0.4")),
        *((99.94, "99.9"), (99.96, "100.0"), (1234.56, "1234.6"), (100_000.0, "100000.0")),
    ],
)
def test_the_lines_duration_is_to_a_tenth_halves_to_even(ms: float, text: str) -> None:
    assert duration_text(ms) == text


def test_the_duration_table_and_the_format_agree() -> None:
    # The table (under 100 ms) and the format past it make the same text of the same tenths.
    for tenths in range(0, 1100):
        for ms in (tenths / 10, tenths / 10 + 0.0499, tenths / 10 - 0.0499):
            if ms >= 0:
                assert duration_text(ms) == f"{round(ms * 10) / 10:.1f}", ms


class CountingStream(io.StringIO):
    """A stream that counts its ``write`` calls (each one system call on a real stderr)."""

    writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def test_lines_written_at_once_are_the_lines_written_one_by_one(
    fallback: FallbackHandler, monkeypatch: pytest.MonkeyPatch
) -> None:
    stream = CountingStream()
    monkeypatch.setattr(sys, "stderr", stream)
    head = fallback.head(logging.INFO, "ironpush.receiver.outbox")
    assert fallback.write_lines([f"{head}ack m1 x", f"{head}ack m2 y"])
    assert stream.writes == 1
    for message in ("ack m1 x", "ack m2 y"):
        assert fallback.write_line(logging.INFO, "ironpush.receiver.outbox", message)
    assert stream.writes == 3
    lines = stream.getvalue().splitlines()
    assert [line[12:] for line in lines[:2]] == [line[12:] for line in lines[2:]]  # but the time
    assert lines[0][12:] == " INFO    ironpush.receiver.outbox: ack m1 x"


@pytest.mark.anyio
@pytest.mark.parametrize("direct", [True, False], ids=["direct", "records"])
async def test_a_chunks_acks_are_logged_in_one_write_each_its_own_line(
    fallback: FallbackHandler, monkeypatch: pytest.MonkeyPatch, direct: bool
) -> None:
    """Eight acks of one chunk, one of them late: seven "acked" lines in one write (when the
    fallback alone shows them; a record each otherwise), the late one's WARNING apart."""
    from ironpush._errors import NotFound
    from ironpush._protocol import Delivery
    from ironpush.receiver._metrics import Counters
    from ironpush.receiver._outbox import AckOutbox, OutboxSettings
    from ironpush.receiver.stores import MemoryStore

    class Client:
        async def acknowledge_all(self, acks: list[tuple[str, Delivery]]) -> list[Exception | None]:
            return [NotFound(404, "gone") if d.message_id == "m2" else None for _, d in acks]

    async def client() -> Any:
        return Client()

    monkeypatch.setattr(logging.root, "handlers", [])
    stream = CountingStream()
    monkeypatch.setattr(sys, "stderr", stream)
    if not direct:
        fallback.addFilter(lambda record: True)  # anything of the app's: records
    box = AckOutbox(MemoryStore(), client, Counters(), OutboxSettings(concurrency=32))
    for i in range(8):
        await box.queue_ack("q", Delivery(f"m{i}", reservation_id=f"r{i}", subscriber_name="s"))
    await box.drain_due()
    lines = stream.getvalue().splitlines()
    acked = [m.group(1) for line in lines if (m := CHUNK_LINE.match(line))]
    assert acked == [f"m{i}" for i in range(8) if i != 2], stream.getvalue()
    [late] = [line for line in lines if "result=late" in line]
    assert " WARNING ironpush.receiver.outbox: ack m2 " in late
    assert late.endswith("reservation=r2 result=late (the reservation expired (404))")
    assert stream.writes == (2 if direct else 8)


CHUNK_LINE = re.compile(
    r"^\d\d:\d\d:\d\d\.\d{3} INFO    ironpush\.receiver\.outbox: ack (m\d) queue=q "
    r"reservation=r\d result=acked$"
)
