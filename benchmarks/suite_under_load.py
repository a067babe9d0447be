"""Run the README's test command several times while two busy processes compete for the CPU.

The suite must stay green on a loaded machine (a developer's PC during a build, a CI runner shared with other
jobs). This script keeps the cores busy with ``--load`` pure-Python spinning processes (or ``stress-ng --cpu N``
when it is installed), runs the README's ``python -m pytest -n 2 --dist worksteal`` ``--runs`` times in a row, and
prints each result with its wall time, the CPU time the suite used and the load average — the figures quoted in the
closing notes.

Bounded: every run has a timeout (``--timeout-s``), the load processes are killed however the script ends.

    python benchmarks/suite_under_load.py --runs 3            # the check of issue #11
    python benchmarks/suite_under_load.py --runs 1 -- -k grbl  # extra pytest arguments after --
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SUMMARY_RE = re.compile(r"^=*\s*(.*\b(passed|failed|error)\b.*?)\s*=*$", re.M)


def _spin(stop_at: float) -> None:
    x = 0
    while time.monotonic() < stop_at:
        x = (x * 1103515245 + 12345) & 0xFFFFFFFF


def start_load(count: int, seconds: float) -> list[subprocess.Popen[bytes] | multiprocessing.Process]:
    """``count`` CPU-bound competitors that end by themselves after ``seconds`` (and are killed at exit)."""
    if shutil.which("stress-ng"):
        return [
            subprocess.Popen(
                ["stress-ng", "--cpu", str(count), "--timeout", f"{int(seconds)}s", "--quiet"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        ]
    stop_at = time.monotonic() + seconds
    procs = [multiprocessing.Process(target=_spin, args=(stop_at,), daemon=True) for _ in range(count)]
    for p in procs:
        p.start()
    return procs


def stop_load(procs: list[subprocess.Popen[bytes] | multiprocessing.Process]) -> None:
    for p in procs:
        if isinstance(p, subprocess.Popen):
            p.kill()
            p.wait()
        else:
            p.kill()
            p.join()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--load", type=int, default=2, help="competing busy processes (default 2)")
    parser.add_argument("--timeout-s", type=float, default=2400.0, help="per run")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = parser.parse_args(argv)

    command = [sys.executable, "-m", "pytest", "-n", "2", "--dist", "worksteal", "-q", "-p", "no:cacheprovider"]
    command += args.pytest_args
    print(f"command: {' '.join(command)}  (load: {args.load} busy processes)")
    results: list[bool] = []
    load = start_load(args.load, args.runs * args.timeout_s)
    try:
        for run in range(1, args.runs + 1):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.monotonic()
            try:
                proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=args.timeout_s)
                out, code = proc.stdout, proc.returncode
            except subprocess.TimeoutExpired as exc:
                out, code = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else (exc.stdout or ""), -1
            wall = time.monotonic() - t0
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            summaries = SUMMARY_RE.findall(out)
            summary = summaries[-1][0] if summaries else f"no summary (exit {code})"
            load1, load5, _ = os.getloadavg()
            print(
                f"run {run}: exit {code}  {summary}  wall {wall:.0f} s  suite CPU {cpu:.0f} s  "
                f"load average {load1:.1f} (1 min) {load5:.1f} (5 min)",
                flush=True,
            )
            if code != 0:
                failed = [line for line in out.splitlines() if line.startswith(("FAILED", "ERROR"))]
                print("\n".join(f"    {line}" for line in failed[:20]))
            results.append(code == 0)
    finally:
        stop_load(load)
    print(f"{sum(results)} of {len(results)} runs green under load")
    return 0 if all(results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
