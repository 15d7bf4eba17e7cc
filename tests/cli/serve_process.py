"""``ironpush serve`` as a real process for the serve tests: start, wait, inspect, stop."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx
from process_group import output, stop_group
from support import free_port, wait_until

HERE = Path(__file__).parent
ROOT = HERE.parent.parent


@dataclass
class Served:
    """A running ``ironpush serve serve_app:app`` (its own session: killpg reaches workers)."""

    proc: subprocess.Popen[bytes]
    port: int
    out: Path
    err: Path

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def healthy(self) -> bool:
        try:
            return httpx.get(self.url("/ironmq/_health"), timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def logs(self) -> str:
        return output(self.out, self.err)

    def stop(self) -> None:
        stop_group(self.proc)


def run_serve(
    tmp: Path,
    *args: str,
    port: int | None = None,
    wait: bool = True,
    pythonpath: tuple[Path, ...] = (),
) -> Served:
    """Start ``ironpush serve serve_app:app --port P ARGS`` in ``HERE``; wait for /_health.

    ``pythonpath`` comes first on the server's path (e.g. a ``sitecustomize`` that patches).
    """
    port = port or free_port()
    tag = f"{port}-{len(list(tmp.glob('*.out')))}"
    out, err = tmp / f"serve-{tag}.out", tmp / f"serve-{tag}.err"
    proc = subprocess.Popen(
        [sys.executable, "-m", "ironpush", "serve", "serve_app:app", "--port", str(port), *args],
        cwd=HERE,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(map(str, [*pythonpath, ROOT]))},
        stdout=out.open("wb"),
        stderr=err.open("wb"),
        start_new_session=True,
    )
    served = Served(proc, port, out, err)
    if wait:
        wait_until(
            lambda: served.healthy() or proc.poll() is not None,
            60,
            "ironpush serve to answer /_health",
            report=served.logs,
        )
        assert proc.poll() is None, served.logs()
    return served


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # The command name (field 2) may hold spaces: the parent pid follows its ")".
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")
