"""``python -m ironpush.devserver``: the same as ``ironpush dev``."""

from __future__ import annotations

from ..cli.dev import dev_command

if __name__ == "__main__":
    dev_command(prog_name="python -m ironpush.devserver")
