"""Closed pipes: ``ironpush queues | head -1`` ends quietly, as command line tools do.

When the reader of stdout goes away (``head`` has its line, ``less`` was quit), the next write
raises :class:`BrokenPipeError`. The CLI then exits at once with :data:`EXIT_CLOSED_PIPE`
(141 = 128 + SIGPIPE, the status a shell reports for ``cat`` or ``grep`` stopped the same way,
so ``set -o pipefail`` scripts see what they see with any other tool) and prints nothing:
stdout is first pointed at ``/dev/null`` so that Python's last flush cannot complain (the
recipe of Python's :mod:`signal` documentation)::

    except BrokenPipeError:
        if output_closed():
            raise closed_pipe_exit() from None

A command that waits between writes (``ironpush tail`` between two events) would notice only
at its next write, which may be hours away: :class:`ReaderWatch` notices at once.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import stat
import sys
import threading
from collections.abc import Iterator

import click

#: The exit status after the reader of stdout went away.
EXIT_CLOSED_PIPE = 141
# poll() is POSIX; without it (Windows) a broken pipe is taken to be stdout's, as in Python's
# recipe, and `tail` notices a gone reader at its next write only.
_HAS_POLL = hasattr(select, "poll")
_GONE = getattr(select, "POLLERR", 0) | getattr(select, "POLLHUP", 0)


def _fileno(stream: object) -> int | None:
    try:
        return int(stream.fileno())  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):  # replaced (click's runner) or closed
        return None


def pipe_reader_gone(fd: int) -> bool:
    """Whether ``fd`` is a pipe or socket whose reading end is closed (never blocks)."""
    if not _HAS_POLL:
        return True
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    return any(revents & _GONE for _, revents in poller.poll(0))


def output_closed() -> bool:
    """Whether stdout's or stderr's reader went away (a broken pipe is about them)."""
    fds = [_fileno(sys.stdout), _fileno(sys.stderr)]
    return any(fd is not None and pipe_reader_gone(fd) for fd in fds)


def closed_pipe_exit() -> click.exceptions.Exit:
    """Silence stdout and stderr and return the exit to raise (status 141)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr):
        fd = _fileno(stream)
        if fd is not None and pipe_reader_gone(fd):
            os.dup2(devnull, fd)  # the final flush of what is buffered goes nowhere, quietly
    os.close(devnull)
    return click.exceptions.Exit(EXIT_CLOSED_PIPE)


class ReaderWatch:
    """Notices at once when the reader of stdout goes away, while a command waits on a socket.

    A thread sleeps in ``poll()`` on stdout (a pipe reports POLLERR when its last reader
    closes). Then :attr:`gone` is set and the socket given to :meth:`attach` is shut down, so
    that a read blocked on it returns at once; the command checks :attr:`gone` and ends::

        with ReaderWatch.for_stdout() as watch:
            watch.attach(sock)
            ...               # a blocked recv on sock returns when stdout's reader leaves
            if watch.gone: raise closed_pipe_exit()
    """

    def __init__(self, fd: int | None) -> None:
        self.fd = fd
        self._gone = threading.Event()
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None

    @classmethod
    @contextlib.contextmanager
    def for_stdout(cls) -> Iterator[ReaderWatch]:
        """Watch stdout when it is a pipe (a terminal or a file has no reader to lose)."""
        fd = _fileno(sys.stdout)
        piped = _HAS_POLL and fd is not None and stat.S_ISFIFO(os.fstat(fd).st_mode)
        yield cls(fd if piped else None).start()

    def start(self) -> ReaderWatch:
        """Start watching (a daemon thread: it never holds the process); returns ``self``."""
        if self.fd is not None:
            threading.Thread(target=self._wait, name="ironpush-reader-watch", daemon=True).start()
        return self

    @property
    def gone(self) -> bool:
        return self._gone.is_set()

    def attach(self, sock: socket.socket | None) -> None:
        """The socket to shut down when the reader leaves (the current connection's)."""
        with self._lock:
            self._sock = sock
            if self.gone:
                self._shutdown()

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``, less if the reader leaves meanwhile; whether it left."""
        return self._gone.wait(seconds)

    def _wait(self) -> None:
        assert self.fd is not None
        poller = select.poll()
        poller.register(self.fd, 0)  # no event asked: poll() returns only on POLLERR/POLLHUP
        while not any(revents & _GONE for _, revents in poller.poll()):
            pass  # cannot happen with an empty mask; kept for spurious wake-ups
        with self._lock:
            self._gone.set()
            self._shutdown()

    def _shutdown(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):  # already closed by the command
                self._sock.shutdown(socket.SHUT_RDWR)
