"""Options with a closed set of values: a typo is a usage error (exit 2) that names the fix.

:class:`Choice` is ``click.Choice`` plus the closest valid value, found with :mod:`difflib`
(click already does this for unknown commands and options)::

    @click.option("--outcome", type=Choice(OUTCOMES))
    # ironpush tail --outcome delivred
    # error: Invalid value for '--outcome': 'delivred' is not one of 'delivered', ….
    #        Did you mean 'delivered'? — see `ironpush tail --help`
"""

from __future__ import annotations

import difflib
from typing import Any

import click


class Choice(click.Choice):  # type: ignore[type-arg]  # generic only from click 8.2 on
    """``click.Choice`` whose refusal suggests the closest choice ("Did you mean …?")."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            return super().convert(value, param, ctx)
        except click.BadParameter as exc:
            close = suggestion(str(value), [str(choice) for choice in self.choices])
            if close is None:
                raise
            self.fail(f"{exc.message.rstrip('.')}. Did you mean {close!r}?", param, ctx)


def suggestion(value: str, choices: list[str]) -> str | None:
    """The choice ``value`` was most likely meant to be, if one is close enough::

    suggestion("delivred", ["delivered", "deferred"])  # 'delivered'
    """
    folded = {choice.lower(): choice for choice in choices}
    found = difflib.get_close_matches(value.lower(), list(folded), n=1, cutoff=0.6)
    return folded[found[0]] if found else None
