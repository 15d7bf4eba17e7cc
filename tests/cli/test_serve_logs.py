"""``ironpush serve``'s logs: no push secret in the access log, no flood of tracebacks."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from serve_app import router
from serve_process import run_serve
from support import build_push, wait_until

from ironpush._signing import push_secret
from ironpush.cli._serve_logging import AccessLogRedactor, RepeatLimiter, redact_path
from ironpush.devserver import DevServer


@pytest.fixture(scope="module")
def dev() -> Iterator[DevServer]:
    with DevServer() as server:
        yield server


def test_the_access_log_masks_the_push_secret_of_a_real_push_in_the_query(
    tmp_path: Path, dev: DevServer
) -> None:
    served = run_serve(tmp_path, "--log-level", "info")
    try:
        [sub] = [
            s
            for s in router.subscriptions(served.url("/ironmq"), secret_in="query")
            if s.subscriber.url.split("?")[0].endswith("/ok")
        ]
        with dev.client() as mq:
            mq.create_queue(sub.queue, type="multicast", subscribers=[sub.subscriber])
            mq.queue(sub.queue).post("hello")
        wait_until(
            lambda: (
                '"POST /ironmq/ok?ironpush_secret=' in served.logs() and " 200" in served.logs()
            ),
            30,
            "the pushed request in the access log",
            report=served.logs,
        )
    finally:
        served.stop()
    secret = push_secret(sub.queue, "svc", router.keys)
    logs = served.logs()
    assert secret not in logs
    assert f"ironpush_secret={secret[:4]}***" in logs  # masked, still recognisable


def test_a_repeated_error_logs_one_traceback_and_every_delivery_line(tmp_path: Path) -> None:
    served = run_serve(tmp_path, "--log-repeat-interval", "3600")
    try:
        with httpx.Client() as client:
            for n in range(25):
                headers, body, _ = build_push(router, "/boom", b"x", message_id=f"boom-{n}")
                response = client.post(served.url("/ironmq/boom"), headers=headers, content=body)
                assert response.status_code == 500
        wait_until(
            lambda: served.logs().count("outcome=error") == 25,
            30,
            "the 25 delivery lines",
            report=served.logs,
        )
    finally:
        served.stop()
    logs = served.logs()
    assert logs.count("Traceback (most recent call last)") == 1
    assert logs.count("RuntimeError: planned failure") == 1


# --------------------------------------------------------------------------- the filters


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _record(msg: str, *args: object, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise RuntimeError("store down")
        except RuntimeError:
            exc_info = sys.exc_info()
    return logging.LogRecord("ironpush.receiver", logging.ERROR, __file__, 1, msg, args, exc_info)


def test_repeat_limiter_passes_the_first_then_one_count_per_interval() -> None:
    clock = Clock()
    limiter = RepeatLimiter(60, clock=clock)
    first = _record("store failed for message %s", "m0", exc=True)
    assert limiter.filter(first)
    assert first.exc_info is not None  # with its traceback
    passed = []
    for n in range(1, 100):
        clock.now += 1
        record = _record("store failed for message %s", f"m{n}", exc=True)
        if limiter.filter(record):
            passed.append(record)
    [summary] = passed  # at t+60: one line for the 59 dropped before it
    assert summary.exc_info is None
    assert summary.getMessage() == (
        "store failed for message m60 [and 59 more like this in the last 60 s; "
        "traceback logged with the first]"
    )
    assert limiter.filter(_record("another message %s", "x"))  # other templates pass
    clock.now += 3600  # quiet for longer than an interval after the count: a new run
    assert limiter.filter(_record("store failed for message %s", "late", exc=True))


def test_repeat_limiter_leaves_info_lines_alone() -> None:
    limiter = RepeatLimiter(60, clock=Clock())
    record = logging.LogRecord(
        "ironpush.receiver", logging.INFO, __file__, 1, "push %s", ("m",), None
    )
    assert all(limiter.filter(record) for _ in range(100))


def test_access_log_redactor_masks_sensitive_and_named_query_parameters() -> None:
    assert redact_path("/ironmq/ok?ironpush_secret=WyJhYmMiXQ.sig.abc&x=1") == (
        "/ironmq/ok?ironpush_secret=WyJh***&x=1"
    )
    assert redact_path("/ironmq/ok?x=1") == "/ironmq/ok?x=1"
    redactor = AccessLogRedactor(["sig"])
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5", "POST", "/hook?sig=abcdefghijklmnopqrst", "1.1", 200),
        None,
    )
    assert redactor.filter(record)
    assert record.getMessage() == '127.0.0.1:5 - "POST /hook?sig=abcd*** HTTP/1.1" 200'
