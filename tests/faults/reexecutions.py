"""How many handlers and jobs run again after ``kill -9`` (issue 11, finding 3).

    python -m tests.faults.reexecutions [--runs 5] [--messages 1000] [--store sqlite]

For ``sync`` (``def``) and ``async`` (``async def``) handlers and ``Defer`` jobs, ``--runs``
fault runs of ``--messages`` messages with 3 ``kill -9`` each (no other fault, so every second
execution is one the kill caused: the process died between a side effect and the router's
record of it). Prints, per run, the re-executions after a kill (absorbed by the idempotency
key) and any duplicate that no kill explains; exits 1 if there is one.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from faults.harness import run


def logger(path: Path | None, title: str) -> Callable[[str], None]:
    def log(line: str) -> None:
        if path is not None:
            with path.open("a") as out:
                out.write(f"{title}: {line}\n")

    return log


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--store", choices=["sqlite", "redis", "postgres"], default="sqlite")
    parser.add_argument("--kinds", nargs="+", default=["sync", "async"])
    parser.add_argument("--log", type=Path, help="write each run's log lines to this file")
    args = parser.parse_args()
    bad = 0
    for kind in args.kinds:
        counts = []
        for n in range(1, args.runs + 1):
            with tempfile.TemporaryDirectory() as tmp:
                f = run(
                    args.messages,
                    Path(tmp),
                    store=args.store,
                    kills=3,
                    store_restarts=0,
                    devserver_restarts=0,
                    seed=100 + n,
                    kind=kind,
                    rate=50.0,
                    timeout=600,
                    log=logger(args.log, f"{kind} run {n}"),
                )
            counts.append(f.reexecuted_after_kill)
            bad += f.duplicate_side_effects + f.lost + f.in_error_queue
            print(
                f"{kind} run {n}: kills {f.instance_kills}, handler runs {f.handler_runs}, "
                f"re-executed after a kill {f.reexecuted_after_kill}, unexplained duplicates "
                f"{f.duplicate_side_effects}, lost {f.lost}, error queue {f.in_error_queue}, "
                f"{f.seconds} s",
                flush=True,
            )
        print(f"{kind}: re-executions per run of 3 kills: {counts} (total {sum(counts)})")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
