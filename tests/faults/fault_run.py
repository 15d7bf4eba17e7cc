"""The full fault run: 2,000 messages, 3 receiver kills, 1 dev server restart, failing acks.

    python -m tests.faults.fault_run [--messages 2000] [--seed 1]

Prints the figures recorded in RELIABILITY.md; exits 1 if a message was lost or a side effect
happened twice. ``test_fault_run.py`` runs the same scenario with fewer messages in CI.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from .harness import run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        figures = run(args.messages, Path(tmp), kills=args.kills, seed=args.seed, timeout=600)
    print("\n".join(figures.lines()))
    ok = figures.lost == 0 and figures.duplicate_side_effects == 0
    ok = ok and figures.missing_side_effects == 0
    print("RESULT:", "ok" if ok else "FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
