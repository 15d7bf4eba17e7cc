"""``ironpush serve --workers N``: shared stores only, and no orphan workers after kill -9.

Every test runs the real command in a subprocess (uvicorn's supervisor and its spawned
workers) and talks to it over real sockets.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from serve_app import router
from serve_process import HERE, ROOT, alive, children, run_serve
from support import build_push, free_port, wait_until


def test_several_workers_with_the_memory_store_refuse_to_start_and_name_the_fix() -> None:
    port = free_port()
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "ironpush", "serve", "serve_app:app"),
            *("--workers", "2", "--port", str(port)),
        ],
        cwd=HERE,
        env={
            k: v
            for k, v in {**os.environ, "PYTHONPATH": str(ROOT)}.items()
            if k != "IRONPUSH_STORE"
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 1
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith(
        "error: --workers 2: a PushRouter of serve_app:app keeps its claims in the memory store"
    )
    for fix in ("--store sqlite:///", "--store redis://", "--allow-unshared-store"):
        assert fix in line
    with socket.socket() as sock:  # nothing was left listening
        sock.bind(("127.0.0.1", port))


def _push_status(url: str, message_id: str) -> str:
    headers, body, _ = build_push(router, "/ok", b"x", message_id=message_id)
    # A new connection each time, so the kernel spreads them over the workers.
    with httpx.Client() as client:
        response = client.post(url, headers=headers, content=body)
    assert response.status_code == 200, response.text
    # The handler's run answers 200 (with or without a body); a redelivery says "duplicate".
    return "duplicate" if response.content and response.json()["status"] == "duplicate" else "ran"


@pytest.mark.parametrize("how", ["--store", "IRONPUSH_STORE"])
def test_several_workers_share_the_store_given_by_store_or_ironpush_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    spec = f"sqlite:///{tmp_path / 'store.db'}"
    args = ["--workers", "2"]
    if how == "--store":
        args += ["--store", spec]
    else:
        monkeypatch.setenv("IRONPUSH_STORE", spec)
    served = run_serve(tmp_path, *args)
    try:
        url = served.url("/ironmq/ok")
        statuses = [_push_status(url, "m-shared") for _ in range(12)]
        # Whichever worker each redelivery reached, the shared store knew it was handled.
        assert statuses == ["ran"] + ["duplicate"] * 11
        assert len([pid for pid in children(served.proc.pid) if alive(pid)]) >= 2
    finally:
        served.stop()


def test_allow_unshared_store_starts_several_workers_with_the_memory_store(
    tmp_path: Path,
) -> None:
    served = run_serve(tmp_path, "--workers", "2", "--allow-unshared-store")
    try:
        assert _push_status(served.url("/ironmq/ok"), "m-unshared") == "ran"
    finally:
        served.stop()


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        for child in children(todo.pop()):
            found.append(child)
            todo.append(child)
    return found


def test_kill_9_of_the_master_ends_its_workers_and_the_port_can_be_bound_again(
    tmp_path: Path,
) -> None:
    served = run_serve(tmp_path, "--workers", "2", "--allow-unshared-store")
    workers: list[int] = []
    try:
        workers = wait_until(
            lambda: len(found := _descendants(served.proc.pid)) >= 3 and found,  # 2 + tracker
            30,
            "the two workers to run",
            report=served.logs,
        )
        os.kill(served.proc.pid, signal.SIGKILL)
        served.proc.wait(timeout=30)
        wait_until(
            lambda: not any(alive(pid) for pid in workers),
            60,
            "the orphaned workers to exit",
            report=lambda: f"alive: {[p for p in workers if alive(p)]}\n{served.logs()}",
        )
        assert "the serve master (pid" in served.logs() or "Shutting down" in served.logs()
        again = run_serve(tmp_path, "--workers", "2", "--allow-unshared-store", port=served.port)
        try:
            assert again.healthy()
        finally:
            again.stop()
    finally:
        if served.proc.poll() is None:
            served.stop()
        for pid in workers:  # a failed test must not leave orphans behind
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
