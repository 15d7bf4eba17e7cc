"""The full fault run: 2,000 messages, kill -9 of instances, a store restart, a dev server restart.

    python -m tests.faults.fault_run [--store redis|postgres|sqlite] [--messages 2000]
        [--seed 1] [--kind sync|async]

Prints the figures recorded in RELIABILITY.md; exits 1 unless every message was processed once
(0 lost, 0 on the error queue, 0 duplicate or missing side effects, nothing left reserved).
``test_fault_run.py`` runs the same scenario with 200 messages in CI.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

# The run's modules import each other as top-level ``faults``, ``multihost`` and ``support``
# (as pytest sees them): put ``tests/`` on the path when started with ``python -m``.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from faults.harness import GaveUp, run


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--store", choices=["redis", "postgres", "sqlite"], default="redis")
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rate", type=float, default=50.0, help="messages posted per second")
    parser.add_argument("--kind", choices=["sync", "async"], default="sync", help="handlers")
    parser.add_argument("--timeout", type=float, default=900.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        try:
            figures = run(
                args.messages,
                Path(tmp),
                store=args.store,
                kills=args.kills,
                seed=args.seed,
                kind=args.kind,
                rate=args.rate,
                timeout=args.timeout,
            )
        except GaveUp as exc:
            print(exc)
            print("RESULT: FAILED (gave up)")
            sys.exit(1)
    print("\n".join(figures.lines()))
    print("RESULT:", "ok" if figures.ok() else "FAILED")
    sys.exit(0 if figures.ok() else 1)


if __name__ == "__main__":
    main()
