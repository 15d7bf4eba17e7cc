"""Running the framework recipes as written: their docstring steps, real servers, one dev server.

A recipe's module docstring has several literal blocks (``...::`` paragraphs): set-up, one
block per way to serve it, then the steps every way shares. :class:`Recipe` runs a chosen
sequence of them in one :class:`docsteps.ShellSession`, as a reader types them, with the
liberties of ``tests/test_examples.py``: documented ports become free ones (8080 is the
module's in-process dev server, which stands for the ``ironpush dev`` step; 8000 and 8001 the
services), the working directory is a
temporary one — a copy of the example's directory for the project-shaped examples (Django,
Flask), so that their databases live there — and ``pip install`` steps are checked against
the environment instead of run. ``SHOP_INVOICE_SECONDS`` makes each invoice job take 2 s, so
that a job is still running when the drain test stops the server.

After the steps the recipe's promises are checked (:meth:`Recipe.check_promises`): the
``Defer`` job's push was answered 202 and acknowledged, a replay of the same message (the dev
server pushes it again with the same id) is answered 200 from the store without the handler,
and SIGTERM while a job runs lets it finish and acknowledge before the server exits.
"""

from __future__ import annotations

import ast
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
from docsteps import DEV_PORT, SERVICE_PORT, ShellSession, free_ports, parse_steps
from support import wait_until

from ironpush.devserver import DevServer

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
SIDECAR_PORT = 8001  # the documented port of a sidecar next to a WSGI server
JOB_SECONDS = "2"
#: The port a server listens on when its command line has no ``--port`` (documented defaults).
DEFAULT_PORTS = {
    "ironpush dev": DEV_PORT,
    "ironpush serve": SERVICE_PORT,
    "gunicorn": SERVICE_PORT,
    "hypercorn": SERVICE_PORT,
}


def literal_blocks(doc: str) -> list[str]:
    """Every literal block of a docstring (the indented lines after a line ending in ``::``)."""
    blocks: list[str] = []
    lines = doc.splitlines()
    for i, line in enumerate(lines):
        if not line.rstrip().endswith("::"):
            continue
        block: list[str] = []
        for inner in lines[i + 1 :]:
            if inner.strip() and not inner.startswith("    "):
                break
            block.append(inner[4:])
        blocks.append("\n".join(block).strip("\n"))
    return blocks


def docstring_blocks(path: Path) -> list[str]:
    doc = ast.get_docstring(ast.parse(path.read_text()))
    assert doc, f"{path} has no docstring"
    return literal_blocks(doc)


def clean_env(home: Path) -> dict[str, str]:
    """A new terminal: no IronMQ settings or keys, the repository importable, our scripts first."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("IRON", "DJANGO_")) and k != "PYTHONPATH"
    }
    return env | {
        "HOME": str(home),
        "PYTHONPATH": str(ROOT),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        "SHOP_INVOICE_SECONDS": JOB_SECONDS,
    }


@dataclass
class Recipe:
    """One way to serve one example, run in ``shell`` against ``dev``.

    ``server`` is a fragment of the command line of the process that holds the router (the
    one SIGTERM drains); ``subscriber`` the example's subscriber name.
    """

    shell: ShellSession
    dev: DevServer
    server: str
    subscriber: str
    queue: str = "orders"

    def run(self, blocks: Sequence[str]) -> list[str]:
        """Run the blocks in order; the output of each foreground step. ``ironpush dev`` is
        the module's dev server, already running on the port the shell maps 8080 to."""
        outputs: list[str] = []
        for block in blocks:
            for step in parse_steps(block):
                if step.code.startswith("ironpush dev"):
                    continue
                output = self.shell.run(step)
                if output is not None:
                    outputs.append(output)
        return outputs

    # ------------------------------------------------------------------ what the dev server saw

    def answers(self, message_id: str) -> list[int | None]:
        return [d.get("status_code") for d in self.dev.deliveries(message_id=message_id)]

    def status(self, message_id: str) -> str | None:
        with self.dev.client() as mq:
            statuses = mq.queue(self.queue).get_message_push_statuses(message_id)
        return next((s.status for s in statuses if s.subscriber_name == self.subscriber), None)

    def report(self, message_id: str) -> str:
        return f"deliveries: {self.dev.deliveries(message_id=message_id)}\n{self.shell.logs()}"

    # ------------------------------------------------------------------ the promises

    def check_promises(self, message_id: str) -> None:
        """The deferred push acked, its replay answered from the store, the drain at SIGTERM."""
        self.check_deferred_and_acked(message_id)
        self.check_duplicate_answered_from_the_store(message_id)
        self.check_drain_on_sigterm()
        assert "Traceback" not in self.shell.logs(), self.shell.logs()

    def check_deferred_and_acked(self, message_id: str) -> None:
        wait_until(
            lambda: self.status(message_id) == "deleted",
            30,
            f"{message_id} to be acknowledged",
            report=lambda: self.report(message_id),
        )
        assert self.answers(message_id)[0] == 202, self.report(message_id)

    def check_duplicate_answered_from_the_store(self, message_id: str) -> None:
        replayed = httpx.post(
            f"{self.dev.url}/_dev/replay",
            json={
                "project": self.dev.project_id,
                "queue": self.queue,
                "message_id": message_id,
                "subscribers": [self.subscriber],
            },
            timeout=10,
        )
        assert replayed.status_code == 200, replayed.text
        assert replayed.json()["how"] == "same message", replayed.text
        # A handler run would have deferred again (202): the store answered 200 instead (with
        # several sidecar workers, whichever worker the replay reached).
        wait_until(
            lambda: self.answers(message_id) == [202, 200],
            30,
            "the replay to be answered 200",
            report=lambda: self.report(message_id),
        )

    def check_drain_on_sigterm(self) -> None:
        with self.dev.client() as mq:
            [message_id] = mq.queue(self.queue).post('{"id": 99, "total": 1}')
        wait_until(
            lambda: self.answers(message_id) == [202],
            30,
            "the second order's push to be deferred",
            report=lambda: self.report(message_id),
        )
        # Its invoice job runs for 2 s: it is not acknowledged yet when the server is stopped.
        assert self.status(message_id) != "deleted", self.report(message_id)
        proc = self.process()
        os.kill(proc.pid, signal.SIGTERM)
        try:
            code = proc.wait(timeout=60)
        except subprocess.TimeoutExpired as exc:
            raise AssertionError(f"the server did not stop:\n{self.shell.logs()}") from exc
        # uvicorn re-raises the signal once it has stopped gracefully: -SIGTERM is a clean exit.
        assert code in (0, -signal.SIGTERM), self.shell.logs()
        # Nothing serves the router any more: the ack came from the draining process.
        assert self.status(message_id) == "deleted", self.report(message_id)

    # ------------------------------------------------------------------ the service

    def process(self) -> subprocess.Popen[bytes]:
        [proc] = [p for code, p, _ in self.shell.background if self.server in code]
        return proc


def working_copy(example: str, tmp_path: Path) -> Path:
    """A copy of ``examples/<example>`` (a project-shaped example) to run its steps in."""
    copy = tmp_path / example
    shutil.copytree(
        EXAMPLES / example,
        copy,
        ignore=shutil.ignore_patterns("__pycache__", "*.db", "*.sqlite3"),
    )
    return copy


@contextlib.contextmanager
def open_shell(cwd: Path, home: Path, dev: DevServer) -> Iterator[ShellSession]:
    """A :class:`ShellSession` in ``cwd``: 8080 is ``dev``, 8000 and 8001 free ports."""
    service, sidecar = free_ports(2)
    ports = {DEV_PORT: dev.port, SERVICE_PORT: service, SIDECAR_PORT: sidecar}
    with ShellSession(cwd, clean_env(home), ports=ports, defaults=DEFAULT_PORTS) as shell:
        yield shell


def message_id_of(post_output: str) -> str:
    """The id ``ironpush post`` printed (one message)."""
    [message_id] = re.findall(r"\d{6,}", post_output)
    return message_id
