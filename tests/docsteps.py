"""Run documented shell steps literally: the README's ``sh`` blocks and the examples' steps.

A document's steps are what a reader types into one terminal, so they run in one
:class:`ShellSession`: each step in ``bash`` with ``set -e -a`` (so ``export`` and plain
assignments carry over to the next step, as in a terminal), in one working directory. The rules
that let a test run them as written:

- ``cmd &`` starts a background process (killed at the end); when it names a port
  (``--port N``, or the defaults of ``ironpush dev`` and ``ironpush serve``) the next step
  waits until that port accepts connections — what a reader does by eye.
- ``cmd   # -> EXPECTED`` must print EXPECTED (compared as JSON when both sides parse); the step
  is repeated until it does, within a deadline, because pushes arrive asynchronously.
- The documented ports 8080 (the dev server) and 8000 (the service) are replaced by the ports
  the test chose, so runs in parallel cannot collide.
- ``pip install`` steps are never run (tests do not touch the network): each requirement they
  name (``-e '.[fastapi]'``, ``'ironpush[redis]'``, ``.``) must already be satisfied by the
  environment — the extras' requirements are read from ironpush's own metadata — or the step
  fails with the missing requirement.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from support import wait_until

DEV_PORT = 8080  # the dev server's documented port
SERVICE_PORT = 8000  # the documented service port
EXPECT = "# ->"


@dataclass(frozen=True, slots=True)
class Step:
    """One logical command line: its code (comment removed), whether it ends with ``&``, and
    the output it is documented to print."""

    code: str
    background: bool = False
    expect: str | None = None


def split_comment(line: str) -> tuple[str, str]:
    """``(code, comment)``: the first ``#`` outside quotes that starts a word opens a comment."""
    quote: str | None = None
    for i, char in enumerate(line):
        if quote:
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip(), line[i:]
    return line.rstrip(), ""


def parse_steps(text: str) -> list[Step]:
    """The steps of a shell text: continuation lines joined, blank and comment lines dropped."""
    joined = re.sub(r"[ \t]*\\\n\s*", " ", text)
    steps = []
    for line in joined.splitlines():
        code, comment = split_comment(line.strip())
        if not code:
            continue
        expect = comment[len(EXPECT) :].strip() if comment.startswith(EXPECT) else None
        background = code.endswith("&") and not code.endswith("&&")
        steps.append(Step(code.removesuffix("&").rstrip(), background, expect))
    return steps


def literal_block(docstring: str) -> str:
    """The indented block after the first line ending in ``::`` of a docstring (dedented)."""
    lines = docstring.splitlines()
    start = next(i for i, line in enumerate(lines) if line.rstrip().endswith("::")) + 1
    block: list[str] = []
    for line in lines[start:]:
        if line.strip() and not line.startswith("    "):
            break
        block.append(line[4:])
    return "\n".join(block).strip("\n")


# --------------------------------------------------------------------------- pip install steps


def _installed(requirement: Requirement) -> bool:
    try:
        version = metadata.version(requirement.name)
    except metadata.PackageNotFoundError:
        return False
    return requirement.specifier.contains(version, prereleases=True)


def missing_requirements(code: str) -> list[str]:
    """What a ``pip install ...`` step would install that the environment lacks."""
    missing = []
    for word in shlex.split(code)[2:]:
        if word.startswith("-"):
            continue
        name, _, extras = word.partition("[")
        if name not in (".", "ironpush"):
            missing += [] if _installed(Requirement(word)) else [word]
            continue
        wanted = {e.strip() for e in extras.rstrip("]").split(",") if e.strip()}
        for text in metadata.requires("ironpush") or []:
            req = Requirement(text)
            in_scope = req.marker is None or any(
                req.marker.evaluate({"extra": extra}) for extra in wanted
            )
            if req.marker is not None and not wanted:
                in_scope = False
            if in_scope and not _installed(req):
                missing.append(str(req))
    return missing


# --------------------------------------------------------------------------- the session


def _port_named(code: str) -> int | None:
    found = re.search(r"--port[ =](\d+)", code)
    if found:
        return int(found.group(1))
    return None


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _same_output(actual: str, expected: str) -> bool:
    try:
        return bool(json.loads(actual) == json.loads(expected))
    except ValueError:
        return actual.strip() == expected.strip()


class ShellSession:
    """One terminal: a working directory, an environment that steps change, background jobs.

    ``ports`` maps documented ports to the ones to use (see the module docs)::

        with ShellSession(tmp_path, env, ports={8080: dev.port}) as shell:
            shell.run_text("ironpush queues")
    """

    def __init__(
        self,
        cwd: Path,
        env: Mapping[str, str],
        *,
        ports: Mapping[int, int],
        defaults: Mapping[str, int] | None = None,
        timeout: float = 60.0,
    ) -> None:
        self.cwd = cwd
        self.env = dict(env)
        self.ports = dict(ports)
        # The port a background command listens on when it does not say (documented defaults).
        self.defaults = dict(defaults or {"ironpush dev": DEV_PORT, "ironpush serve": SERVICE_PORT})
        self.timeout = timeout
        self.background: list[tuple[str, subprocess.Popen[bytes], Path]] = []
        self._env_file = cwd / ".docsteps-env"

    def __enter__(self) -> ShellSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def substitute(self, code: str) -> str:
        for documented, actual in self.ports.items():
            code = re.sub(rf"\b{documented}\b", str(actual), code)
        return code

    def run_text(self, text: str) -> list[str]:
        """Run every step of ``text``; the outputs of the foreground steps."""
        return [out for step in parse_steps(text) if (out := self.run(step)) is not None]

    def run(self, step: Step) -> str | None:
        code = self.substitute(step.code)
        if code.startswith("pip install"):
            missing = missing_requirements(code)
            assert not missing, f"`{step.code}` needs {missing}: install them (tests never do)"
            return None
        if step.background:
            self._start(code)
            return None
        if step.expect is None:
            return self._foreground(code)
        expected = self.substitute(step.expect)
        last: list[str] = []

        def matches() -> bool:
            last[:] = [self._foreground(code)]
            return _same_output(last[0], expected)

        wait_until(matches, self.timeout, f"`{code}` to print {expected}", report=lambda: last)
        return last[0]

    def _foreground(self, code: str) -> str:
        script = f"set -e -a\n{code}\nenv -0 > {shlex.quote(str(self._env_file))}\n"
        proc = subprocess.run(
            ["bash", "-c", script],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=self.timeout,
            check=False,
        )
        assert proc.returncode == 0, (
            f"`{code}` exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}\n{self.logs()}"
        )
        raw = self._env_file.read_bytes().decode()
        self.env = dict(item.split("=", 1) for item in raw.split("\0") if "=" in item)
        return proc.stdout

    def _start(self, code: str) -> None:
        log = self.cwd / f".docsteps-bg-{len(self.background)}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                ["bash", "-c", f"set -a\nexec {code}"],
                cwd=self.cwd,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stopped with its children
            )
        self.background.append((code, proc, log))
        port = _port_named(code)
        if port is None:
            port = next((self.ports.get(p, p) for c, p in self.defaults.items() if c in code), None)
        if port is not None:

            def ready() -> bool:
                assert proc.poll() is None, f"`{code}` exited:\n{log.read_text()}"
                return _accepts(port)

            wait_until(ready, self.timeout, f"`{code}` to listen on {port}")

    def output_of(self, fragment: str) -> str:
        """What the background command containing ``fragment`` printed so far."""
        for code, _, log in self.background:
            if fragment in code:
                return log.read_text()
        raise AssertionError(f"no background command with {fragment!r}")

    def logs(self) -> str:
        return "\n".join(f"--- {code}\n{log.read_text()}" for code, _, log in self.background)

    def close(self) -> None:
        for _, proc, _ in reversed(self.background):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        for _, proc, _ in self.background:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        self.background.clear()


def free_ports(count: int) -> Iterator[int]:
    """``count`` distinct TCP ports on 127.0.0.1 that were free a moment ago."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        yield from (s.getsockname()[1] for s in sockets)
    finally:
        for s in sockets:
            s.close()
