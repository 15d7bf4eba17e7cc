"""``python -m ironpush.devserver``: the same as ``ironpush dev``, errors in the same style."""

from __future__ import annotations

import sys

import click

from ..cli._dev import dev_command
from ..cli._rendering import as_cli_error

PROG = "python -m ironpush.devserver"


def main(args: list[str] | None = None) -> int:
    """Run ``ironpush dev``; a mistake or a busy port is one ``error: …`` line (not click's)."""
    try:
        code = dev_command.main(args, prog_name=PROG, standalone_mode=False)
    except click.ClickException as exc:
        error = as_cli_error(exc, None, as_json=False)
        error.show()
        return error.exit_code
    except click.Abort:
        click.echo("aborted", err=True)
        return 1
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
