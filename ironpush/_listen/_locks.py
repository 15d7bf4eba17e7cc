"""Which listeners of this machine are running: one lock file per listener.

A running listener holds an exclusive ``flock`` on ``<state dir>/<id>.lock`` (the state dir is
``$XDG_STATE_HOME/ironpush/listen``, by default ``~/.local/state/ironpush/listen``). The kernel
drops the lock when the process ends, however it ends (``kill -9`` included), so ``--cleanup``
tells a crashed listener from a running one by trying to take its lock; a pid could have been
reused, a lock cannot outlive its process::

    with ListenerLock("1a2b3c4d", {"queues": ["orders"]}):
        is_running("1a2b3c4d")   # True (from any process of this user)
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any


def state_dir() -> Path:
    """Where this user's listeners keep their lock files."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "ironpush" / "listen"


def _path(listener: str) -> Path:
    return state_dir() / f"{listener}.lock"


class ListenerLock:
    """The lock a running listener holds (``with`` it, or :meth:`acquire`/:meth:`release`)."""

    def __init__(self, listener: str, info: Mapping[str, Any]) -> None:
        self.listener = listener
        self.info = dict(info)
        self._file: IO[str] | None = None

    def acquire(self) -> ListenerLock:
        path = _path(self.listener)
        path.parent.mkdir(parents=True, exist_ok=True)
        file = path.open("a+")
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            file.close()
            raise
        file.seek(0)
        file.truncate()
        file.write(json.dumps({"pid": os.getpid(), **self.info}))
        file.flush()
        self._file = file
        return self

    def release(self) -> None:
        """Remove the lock file, then drop the lock."""
        if self._file is None:
            return
        with contextlib.suppress(FileNotFoundError):
            _path(self.listener).unlink()
        self._file.close()
        self._file = None

    def __enter__(self) -> ListenerLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def is_running(listener: str) -> bool:
    """Whether a process of this user holds the lock of ``listener`` (False: no lock file,
    or nobody holds it — the listener crashed or was killed)."""
    try:
        file = _path(listener).open()
    except OSError:
        return False
    with file:
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(file, fcntl.LOCK_UN)
        return False


def running_info(listener: str) -> dict[str, Any]:
    """What a running listener wrote in its lock file (``{}`` when unreadable)."""
    try:
        data = json.loads(_path(listener).read_text() or "{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def forget(listener: str) -> None:
    """Remove the lock file of a listener that is not running."""
    with contextlib.suppress(FileNotFoundError):
        _path(listener).unlink()
