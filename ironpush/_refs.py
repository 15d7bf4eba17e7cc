"""``module:attribute`` references, imported one way for the library and the CLI.

``ironpush serve MODULE:APP``, ``subscribe --app``, ``listen --app`` and Django's
``manage.py ironpush_subscribe`` name an object by reference; :func:`import_ref` is the one
import they share (the CLI turns its error into one line with a hint: ``cli/_app_refs.py``)::

    router, module = import_ref("myservice.app:router")
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType
from typing import Any

from ._errors import ConfigError


def import_ref(ref: str) -> tuple[Any, ModuleType]:
    """Import ``module:attribute`` (dotted attributes allowed): the object and its module.

    The current directory imports, as with ``python -m`` and uvicorn. Raises
    :class:`~ironpush._errors.ConfigError` (the ``ImportError`` chained) for a module that does
    not import or a missing attribute.
    """
    module_name, _, attribute = ref.partition(":")
    if "" not in sys.path and "." not in sys.path:
        sys.path.insert(0, "")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"cannot import {module_name!r}: {exc}") from exc
    found: Any = module
    for part in attribute.split("."):
        try:
            found = getattr(found, part)
        except AttributeError as exc:
            raise ConfigError(f"{module_name!r} has no attribute {attribute!r}") from exc
    return found, module
