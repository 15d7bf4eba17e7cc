"""Run the log tests' service (:mod:`log_service`) in a real server process and push to it.

:class:`Service` is one process group (``ironpush serve`` and its workers, or plain uvicorn)
with its stdout and stderr in files; :func:`direct_push` posts one push on a new connection
(so that the kernel spreads them over the workers); :func:`run_script` runs a script in a
fresh interpreter.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from log_service import KEYS, TOKEN, router
from process_group import output, stop_group
from support import build_push, free_port, wait_until

from ironpush._signing import push_secret

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
QUEUES = ("logs-ok", "logs-tight", "logs-external", "logs-job", "logs-boom")


@dataclass
class Service:
    proc: subprocess.Popen[bytes]
    port: int
    out: Path
    err: Path
    tokens: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}/ironmq"

    def text(self) -> str:
        return output(self.out, self.err)

    def stop(self) -> None:
        stop_group(self.proc)

    def secrets(self) -> list[str]:
        """Every secret the run used: the IronMQ token, the keys, the push secrets and the
        ack tokens the service handed out."""
        tokens = self.tokens.read_text().split() if self.tokens.exists() else []
        pushes = [push_secret(queue, "svc", KEYS) for queue in QUEUES]
        return [TOKEN, *KEYS, *pushes, *tokens]


def start(tmp: Path, command: list[str], *, dev_port: int, store: str | None = None) -> Service:
    """Start ``command`` (its argv after the interpreter) serving ``log_service:app``."""
    port = free_port()
    out, err, tokens = tmp / "service.out", tmp / "service.err", tmp / "tokens.txt"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE), str(ROOT)]),
        "IRONMQ_EMULATOR_HOST": f"127.0.0.1:{dev_port}",
        "IRON_TOKEN": TOKEN,
        "IRON_PROJECT_ID": "dev",  # the dev server's (DevServer().project_id)
        "LOG_TEST_TOKENS": str(tokens),
    }
    env.pop("IRONPUSH_STORE", None)
    if store is not None:
        env["IRONPUSH_STORE"] = store
    proc = subprocess.Popen(
        [sys.executable, *command, "--port", str(port)],
        cwd=tmp,
        env=env,
        stdout=out.open("wb"),
        stderr=err.open("wb"),
        start_new_session=True,
    )
    service = Service(proc, port, out, err, tokens)

    def answers() -> bool:
        if proc.poll() is not None:
            return True
        try:
            return httpx.get(service.base + "/_health/live", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    wait_until(answers, 60, "the service to answer", report=service.text)
    assert proc.poll() is None, service.text()
    return service


def direct_push(service: Service, path: str, *, secret_in: str = "header") -> str:
    """One push to ``path`` on a new connection; its message id."""
    headers, body, query = build_push(router, path, b'{"n": 1}', secret_in=secret_in)
    url = service.base + path + (f"?{query}" if query else "")
    with httpx.Client() as client:
        answer = client.post(url, headers=headers, content=body, timeout=30)
    assert answer.status_code in (200, 202), answer.text
    return headers["Iron-Message-Id"]


def run_script(script: str) -> subprocess.CompletedProcess[str]:
    """``python -c SCRIPT`` (dedented) in this folder, ironpush importable; it must exit 0."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        cwd=HERE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line of ``text`` as JSON (a line that is not one fails the test)."""
    found = []
    for line in text.splitlines():
        if line.strip():
            try:
                found.append(json.loads(line))
            except ValueError as exc:
                raise AssertionError(f"not a JSON line: {line!r}") from exc
    return found
