"""A port that cannot be bound: one line saying which port, why, and what to pass instead.

``ironpush dev --port 8080`` while another server holds 8080 used to print Python's
``[Errno 98] Address already in use``; now::

    error: port 8080 on 127.0.0.1 is already in use (another `ironpush dev`?) — pass
    another --port, or --port 0 for a free one

It is an environment problem, not a usage mistake (the same command works once the port is
free), so the exit status is 1. ``ironpush dev`` binds first and turns the failure into that line
(:func:`bind_error`); ``ironpush serve`` checks first (:func:`check_bindable`), because uvicorn
binds only after the app's start-up, so its failure came after its start-up lines, exit 3::

    check_bindable("127.0.0.1", 8000, holder="another server")  # raises the line above, or not
"""

from __future__ import annotations

import errno
import socket

from ._rendering import CliError

_FIX = "pass another --port, or --port 0 for a free one"


def bind_error(host: str, port: int, exc: OSError, *, holder: str = "a server") -> CliError:
    """The CLI error for ``exc`` raised binding ``host:port`` (``holder``: who likely has it)."""
    if exc.errno == errno.EADDRINUSE:
        return CliError(f"port {port} on {host} is already in use ({holder}?)", hint=_FIX)
    if exc.errno == errno.EACCES:
        return CliError(
            f"port {port} on {host} needs privileges (ports under 1024 are reserved)", hint=_FIX
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return CliError(
            f"{host} is not an address of this machine",
            hint="pass --host 127.0.0.1 (this machine only) or 0.0.0.0 (every interface)",
        )
    return CliError(f"cannot serve on {host}:{port}: {exc.strerror or exc}")


def check_bindable(host: str, port: int, *, holder: str = "a server") -> None:
    """Raise :func:`bind_error`'s line if ``host:port`` cannot be bound now (port 0 always can).

    Binds and closes a socket as uvicorn's own bind does (``SO_REUSEADDR``: a port left in
    TIME_WAIT is free; IPv6 when the host has a colon). A server that takes the port between
    this check and uvicorn's bind still gets uvicorn's error: the check is for the usual case,
    a port held since before the command started.
    """
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        raise bind_error(host, port, exc, holder=holder) from exc
