"""Logging: the library configures nothing on import; the CLI once, warnings in the same format."""

from __future__ import annotations

import logging
import re
import subprocess
import sys

from click.testing import CliRunner

from ironpush.cli import _logs as logs

LINE = re.compile(r"^\d\d:\d\d:\d\d\.\d{3} (INFO|WARNING) +[\w.]+: ")


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )


def test_importing_ironpush_configures_no_logging() -> None:
    done = run_python(
        "import logging, ironpush, ironpush.cli, ironpush.devserver, ironpush.testing\n"
        "print(len(logging.getLogger().handlers), logging.getLogger('ironpush').level)"
    )
    assert done.stdout.split() == ["0", "0"]


def test_warnings_are_formatted_like_every_other_line() -> None:
    done = run_python(
        "import logging, warnings\n"
        "from ironpush.cli import _logs as logs\n"
        "logs.configure('info')\n"
        "logging.getLogger('ironpush.devserver').info('a line')\n"
        "logging.getLogger('httpx').info('not shown: other libraries stay at WARNING')\n"
        "warnings.warn('careful', UserWarning)\n"
    )
    lines = done.stderr.strip().splitlines()
    assert LINE.match(lines[0])
    assert lines[0].endswith("ironpush.devserver: a line")
    assert LINE.match(lines[1])
    assert " WARNING py.warnings: " in lines[1]
    assert "UserWarning: careful" in lines[1]
    assert "not shown" not in done.stderr
    assert "WARNING:py.warnings" not in done.stderr


def test_configure_installs_one_handler_and_later_calls_change_the_level() -> None:
    root = logging.getLogger()
    before = list(root.handlers)
    level = logging.getLogger("ironpush").level
    try:
        logs.configure("warning")
        logs.configure("debug")
        ours = [h for h in root.handlers if isinstance(h, logs.StderrHandler)]
        assert len(ours) == 1
        assert logging.getLogger("ironpush").level == logging.DEBUG
    finally:
        root.handlers[:] = before
        logging.getLogger("ironpush").setLevel(level)


def test_the_handler_writes_to_whatever_stderr_is_now() -> None:
    root = logging.getLogger()
    before = list(root.handlers)
    level = logging.getLogger("ironpush").level
    try:
        logs.configure("info")  # installed while sys.stderr is the real one
        with CliRunner().isolation() as (_, err, _):  # the runner swaps sys.stderr
            logging.getLogger("ironpush.devserver").info("seen by the runner")
            captured = err.getvalue().decode()
    finally:
        root.handlers[:] = before
        logging.getLogger("ironpush").setLevel(level)
    assert captured.rstrip().endswith("INFO    ironpush.devserver: seen by the runner")
