"""Soak run (issue #8): twin sign-offs in a loop with random bench faults, printed figures.

Sign-offs of the golden twin unit at the twin station's binned test size, each in its own ``rig signoff``
process; a fault per plan step with probability 5 % (seeded), a random kind at a random frame; 20 % of the runs
killed partway (the station's processes restarted) and resumed; runs ending in ERROR resumed on the repaired bench.
Printed: runs, steps, faults, retries, errors, lost measurements (must be 0) and hung runs (must be 0).

Run: ``.venv/bin/python benchmarks/soak.py [MINUTES] [SEED]`` (default 5 minutes, seed 1), or ``rig soak``.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from rig.cli.soak import print_figures, run_soak


def main(minutes: float = 5.0, seed: int = 1) -> int:
    with tempfile.TemporaryDirectory(prefix="rig-soak-") as scratch:
        figures = run_soak(
            minutes=minutes,
            seed=seed,
            fault_rate=0.05,
            restart_rate=0.2,
            run_timeout_s=300.0,
            reports=Path(scratch) / "reports",
            work=Path(scratch),
        )
    print_figures(figures)
    return 0 if figures.ok else 1


if __name__ == "__main__":
    args = sys.argv[1:]
    sys.exit(main(float(args[0]) if args else 5.0, int(args[1]) if len(args) > 1 else 1))
