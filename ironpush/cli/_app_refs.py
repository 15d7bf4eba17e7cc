"""``MODULE:APP`` references: the one loader every command uses, and one line when it fails.

``ironpush serve MODULE:APP``, ``subscribe --app MODULE:ROUTER`` and ``listen --app
MODULE:ROUTER`` all load through :func:`load_ref` (the serve workers through
:func:`import_ref`), so a reference that does not import gets the same line, hint and exit
status whichever command was given. What went wrong decides what helps, so
:func:`app_ref_error` tells three cases apart:

- the module is not found (from this directory, with this ``sys.path``): a usage error
  (exit 2) pointing at the working directory and ``PYTHONPATH``;
- the module exists but has no such attribute: a usage error listing the module's attributes
  that look like apps (``try MODULE:app``);
- the module was found but its own import failed (a package it needs is not installed, an
  error in its code): exit 1, the error as Python gave it (and which Python lacks the package)::

    app, module = load_ref("myservice.app:app")   # or raises the CLI's one line
"""

from __future__ import annotations

import inspect
import os
import sys
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import click

from .._errors import ConfigError
from .._refs import import_ref
from ._rendering import CliError, CliUsageError

_SHOWN = 5  # app-looking attributes named in a hint


def load_ref(
    ref: str,
    *,
    param: str = "MODULE:APP",
    metavar: str = "MODULE:APP",
    example: str = "myservice.app:app",
) -> tuple[Any, ModuleType]:
    """Import ``ref`` for a command: the object and its module, or the CLI's one-line error.

    A reference without a module and an attribute is a usage error naming ``param`` (the
    argument or option it came from), ``metavar`` and ``example``; one that does not import
    is :func:`app_ref_error`'s line.
    """
    module_name, sep, attribute = ref.partition(":")
    if not (module_name and sep and attribute):
        raise click.BadParameter(
            f"expected {metavar}, e.g. {example}, got {ref!r}", param_hint=param
        )
    try:
        return import_ref(ref)
    except ConfigError as exc:
        raise app_ref_error(ref, exc) from exc


def app_ref_error(ref: str, exc: ConfigError) -> CliError:
    """The CLI error for a ``MODULE:APP`` that did not load (``exc`` from the loader)."""
    module_name, _, attribute = ref.partition(":")
    module = sys.modules.get(module_name)
    if module is not None:
        return _missing_attribute(ref, module, attribute)
    missing = _missing_module(exc)
    if missing is not None and _is_module_or_parent(missing, module_name):
        where = os.getcwd()
        return CliUsageError(
            f"no module named {missing!r} (for {ref}) from {where}",
            hint="run from the directory that contains it, or add that directory to "
            "PYTHONPATH (e.g. PYTHONPATH=src)",
        )
    if missing is not None:  # the module imports a package this environment lacks
        return CliError(
            str(exc), hint=f"install {missing!r} into the environment of {sys.executable}"
        )
    return CliError(str(exc))  # the module's own code failed: Python's words say why


def _missing_attribute(ref: str, module: ModuleType, attribute: str) -> CliUsageError:
    name = module.__name__
    found = list(app_like_attributes(module))
    if found:
        shown = ", ".join(found[:_SHOWN]) + (", …" if len(found) > _SHOWN else "")
        hint = f"apps in {name}: {shown} (e.g. `{name}:{found[0]}`)"
    else:
        hint = f"{name} defines no app at module level (e.g. app = Starlette(...))"
    return CliUsageError(f"{name!r} has no attribute {attribute!r} (for {ref})", hint=hint)


def _missing_module(exc: BaseException) -> str | None:
    """The name of the module Python could not find, from the chain of ``exc``."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ModuleNotFoundError) and current.name:
            return current.name
        current = current.__cause__ or current.__context__
    return None


def _is_module_or_parent(missing: str, module_name: str) -> bool:
    return module_name == missing or module_name.startswith(missing + ".")


def app_like_attributes(module: ModuleType) -> Iterator[str]:
    """Names of the module's attributes that look like an app ``serve`` can run::

    list(app_like_attributes(myservice.app))  # ['app', 'router']
    """
    for name, value in vars(module).items():
        if not name.startswith("_") and _looks_like_app(value):
            yield name


def _looks_like_app(value: Any) -> bool:
    if inspect.isclass(value) or inspect.ismodule(value) or not callable(value):
        return False
    if inspect.isroutine(value):  # a bare ASGI (scope, receive, send) or WSGI function
        asgi = inspect.iscoroutinefunction(value) and len(_parameters(value)) == 3
        return asgi or _parameters(value)[:2] == _WSGI
    # An ASGI app object (Starlette, FastAPI, PushRouter…) or a WSGI one (Flask, Django's).
    asgi = inspect.iscoroutinefunction(type(value).__call__)
    return asgi or _parameters(value)[:2] == _WSGI or callable(getattr(value, "wsgi_app", None))


_WSGI = ["environ", "start_response"]


def _parameters(value: Any) -> list[str]:
    try:
        return list(inspect.signature(value).parameters)
    except (TypeError, ValueError):  # a builtin without a signature
        return []
