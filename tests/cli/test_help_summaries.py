"""``ironpush --help`` lists every command with the whole first sentence of its help: wrapped
to the terminal, never cut mid-sentence ("…; the...")."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import click
import pytest

from ironpush.cli import main


def first_sentence(command: click.Command) -> str:
    """What the docstring's first sentence says, written out in full."""
    text = " ".join((command.help or "").partition("\n\n")[0].split())
    match = re.match(r"(.+?\.)(?:\s+[^a-z]|$)", text)  # click's rule: "e.g. one" goes on
    return command.short_help or (match.group(1) if match else text)


def listed_summaries(width: int) -> dict[str, str]:
    """The Commands section of ``ironpush --help`` at ``width`` columns: name → summary."""
    proc = subprocess.run(
        [sys.executable, "-m", "ironpush", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": str(width)},
        check=True,
    )
    section = proc.stdout.split("\nCommands:\n", 1)[1].split("\n\n", 1)[0]
    summaries: dict[str, str] = {}
    name = ""
    for line in section.splitlines():
        if line[2:3] != " ":  # "  name   summary…" starts a row; deeper lines continue it
            name, _, text = line.strip().partition(" ")
            summaries[name] = text.strip()
        else:
            summaries[name] += " " + line.strip()
    return summaries


@pytest.mark.parametrize("width", [80, 60, 120])
def test_no_summary_is_cut_at_any_width(width: int) -> None:
    summaries = listed_summaries(width)

    assert set(summaries) == {n for n, c in main.commands.items() if not c.hidden}
    for name, summary in summaries.items():
        assert not summary.endswith("..."), (name, summary)
        assert summary == first_sentence(main.commands[name]), name
