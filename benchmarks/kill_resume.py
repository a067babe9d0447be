"""Crash consistency (issue #20): sign-offs killed with SIGKILL at seeded random moments, then resumed.

Each kill lands anywhere in a run (start-up, steps, the verdict, the report, the store row): uniform over 1.1 × the
wall time of one unkilled reference sign-off. Every run is resumed until it has a verdict; afterwards every run
folder must have its record, report.html and measurements.csv, and the store exactly one row per finished run,
with no measurement of a completed step changed. Printed: kills, processes actually killed, resumes, finished
runs, store rows, missing outputs and lost measurements (must be 0), with wall and CPU time and the load.

Run: ``.venv/bin/python benchmarks/kill_resume.py [KILLS] [SEED]`` (default 20 kills, seed 1).
"""

from __future__ import annotations

import os
import resource
import sys
import tempfile
import time
from pathlib import Path

from rig.cli.soak import run_kill_resume


def main(kills: int = 20, seed: int = 1) -> int:
    wall0 = time.monotonic()
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="rig-kill-") as scratch:
        f = run_kill_resume(kills=kills, seed=seed, reports=Path(scratch) / "reports", work=Path(scratch))
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(f"kills {f.kills} (still running when killed: {f.killed}, before the run folder: {f.before_run_folder})")
    print(f"kill moments (s) {f.kill_moments_s}")
    print(f"resumes {f.resumes}, finished runs {f.runs_finished}, store rows {f.store_rows}")
    print(f"missing outputs {f.missing_outputs}, lost measurements {f.lost_measurements}, hung {f.soak.hung_runs}")
    print(
        f"wall {time.monotonic() - wall0:.0f} s, CPU (rig processes) {children.ru_utime + children.ru_stime:.0f} s, "
        f"load {load0:.1f} -> {os.getloadavg()[0]:.1f}"
    )
    print("OK" if f.ok else "NOT OK")
    return 0 if f.ok else 1


if __name__ == "__main__":
    args = sys.argv[1:]
    sys.exit(main(int(args[0]) if args else 20, int(args[1]) if len(args) > 1 else 1))
