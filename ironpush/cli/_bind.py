"""A port that cannot be bound: one line saying which port, why, and what to pass instead.

``ironpush dev --port 8080`` while another server holds 8080 used to print Python's
``[Errno 98] Address already in use``; now::

    error: port 8080 on 127.0.0.1 is already in use (another `ironpush dev`?) — pass
    another --port, or --port 0 for a free one

It is an environment problem, not a usage mistake (the same command works once the port is
free), so the exit status is 1.
"""

from __future__ import annotations

import errno

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
