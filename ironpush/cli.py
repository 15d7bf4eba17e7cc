"""The ``ironpush`` command line (placeholder until the CLI issue lands)."""

from __future__ import annotations

import click

from . import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ironpush")
def main() -> None:
    """ironpush: IronMQ push queues for Python."""
