"""Click options built from value objects: each default, help and range written once.

A command that takes a group of settings declares it with :func:`options_from`: one option per
:func:`~ironpush._defaults.setting` field (``--max-head-bytes`` for ``max_head_bytes``), its
default, help and range read from the field, and the command receives one instance of the
group instead of one argument per option::

    @main.command()
    @options_from(HttpLimits, "limits")
    def serve(limits: HttpLimits) -> None: ...

A ``bool`` field becomes ``--name/--no-name``, a field with ``choices`` a
:class:`._choice.Choice` (a typo gets "Did you mean ...?"), an ``int`` or ``float`` field with
bounds a range (so a bad value is a usage error, exit 2).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import click

from .._defaults import Setting, settings_of
from ._choice import Choice

F = TypeVar("F", bound=Callable[..., Any])


def options_from(
    cls: type[Any],
    param: str,
    *,
    flags: Mapping[str, str] | None = None,
    defaults: Mapping[str, Any] | None = None,
) -> Callable[[F], F]:
    """Add one option per setting of ``cls``; the command gets ``param=cls(...)``.

    ``flags`` renames an option (``{"host": "--bind"}``); ``defaults`` overrides a default for
    this command only (the help still comes from the field).
    """
    fields = settings_of(cls)
    flags, defaults = flags or {}, defaults or {}

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def command(*args: Any, **kwargs: Any) -> Any:
            values = {name: kwargs.pop(name) for name, _, _ in fields}
            return func(*args, **{param: cls(**values)}, **kwargs)

        for name, default, meta in reversed(fields):
            flag = flags.get(name, "--" + name.replace("_", "-"))
            command = _option(flag, name, defaults.get(name, default), meta)(command)
        return command  # type: ignore[return-value]

    return decorate


def _option(flag: str, name: str, default: Any, meta: Setting) -> Callable[[F], F]:
    if isinstance(default, bool):
        negative = "--no-" + flag.removeprefix("--")
        return click.option(
            f"{flag}/{negative}", name, default=default, show_default=True, help=meta.help
        )
    return click.option(
        flag,
        name,
        default=default,
        show_default=True,
        type=click_type(default, meta),
        help=meta.help,
    )


def click_type(default: Any, meta: Setting) -> click.ParamType[Any] | type[Any]:
    """The click type that accepts exactly the values the setting accepts."""
    if meta.choices:
        return Choice(meta.choices)
    if isinstance(default, int):
        low = meta.ge if meta.gt is None else meta.gt + 1
        return click.IntRange(_int(low), _int(meta.le))
    if isinstance(default, float):
        low = meta.ge if meta.gt is None else meta.gt
        return click.FloatRange(low, meta.le, min_open=meta.gt is not None)
    return type(default)


def _int(value: float | None) -> int | None:
    return None if value is None else int(value)
