"""Import a user's router for a command without letting the app's logging setup into the output.

Apps configure logging when they are imported (Litestar's constructor puts an INFO handler on
the root logger; Django's ``setup()`` applies ``LOGGING``; many call ``basicConfig``). A
command that imports an app only to read its routes (``subscribe --app``) must print the same
lines whatever the app does, not an httpx line per API call. So logging is put back exactly as
it was once the import is done: the root logger's handlers and level, every existing logger's
level, handlers, propagation and disabled flag, ``logging.disable``; loggers the import
created are reset. The router's own warnings at import (a tight retry budget) are left out:
the command reports them itself. The import is the CLI's one loader
(:func:`~ironpush.cli._app_refs.load_ref`, as ``ironpush serve``'s): a reference that does not
import gets the same line, hint and exit status in every command::

    router = load_router_quietly("myservice.app:router")
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from ..receiver._router import PushRouter
from ._app_refs import load_ref
from ._rendering import CliUsageError

_State = tuple[int, list[logging.Handler], bool, bool]


def load_router_quietly(ref: str, *, param: str = "--app") -> PushRouter:
    """The :class:`~ironpush.PushRouter` ``ref`` names (``param``: the option it came from),
    imported with logging kept as it was; the CLI's one-line error if it does not load or is
    not a router (a usage error, exit 2)."""
    with logging_kept():
        found, module = load_ref(
            ref, param=param, metavar="MODULE:ROUTER", example="myservice.app:router"
        )
    if isinstance(found, PushRouter):
        return found
    name = module.__name__
    routers = [attr for attr, value in vars(module).items() if isinstance(value, PushRouter)]
    hint = (
        f"routers in {name}: {', '.join(routers)} (e.g. `{name}:{routers[0]}`)"
        if routers
        else f"{name} defines no PushRouter at module level"
    )
    raise CliUsageError(f"{ref} is a {type(found).__name__}, not a PushRouter", hint=hint)


@contextlib.contextmanager
def logging_kept() -> Iterator[None]:
    """Undo every logging change made inside the block (see the module docstring)."""
    manager = logging.Logger.manager
    before = {name: _state(lg) for name, lg in _loggers()}
    root = logging.getLogger()
    root_before = _state(root)
    disabled_level = manager.disable
    receiver = logging.getLogger("ironpush.receiver")
    receiver.setLevel(logging.ERROR)  # its import-time warnings are in the command's report
    try:
        yield
    finally:
        _restore(root, root_before)
        for name, lg in _loggers():
            _restore(lg, before.get(name, (logging.NOTSET, [], True, False)))
        logging.disable(disabled_level)


def _loggers() -> list[tuple[str, logging.Logger]]:
    items = list(logging.Logger.manager.loggerDict.items())
    return [(name, lg) for name, lg in items if isinstance(lg, logging.Logger)]


def _state(lg: logging.Logger) -> _State:
    return lg.level, list(lg.handlers), lg.propagate, lg.disabled


def _restore(lg: logging.Logger, state: _State) -> None:
    level, handlers, lg.propagate, lg.disabled = state
    lg.handlers[:] = handlers
    lg.setLevel(level)  # through setLevel: it clears the loggers' cached levels
