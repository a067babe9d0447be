"""Takt time of one QA sign-off of a twin unit, per step (issue #6 benchmark).

Runs ``rig signoff --json`` on the twin station at the binned test size (target ≤ 60 s wall on 2 cores) and,
with ``--full``, on a copy of the station reading out the full 8192×6144 sensor, and prints the time of every
step so the slowest one is visible.

    .venv/bin/python benchmarks/takt.py [--full] [--unit golden]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TWIN_STATION = REPO / "rig" / "fixtures" / "stations" / "twin.toml"


def run_signoff(station: Path, unit: str, reports: Path) -> tuple[float, dict]:
    t0 = time.monotonic()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "rig",
            "signoff",
            "--station",
            str(station),
            "--unit",
            unit,
            "--reports",
            str(reports),
            "--json",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.monotonic() - t0
    if not proc.stdout.strip():
        raise SystemExit(f"rig signoff failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
    return wall, json.loads(proc.stdout)


def report(label: str, wall: float, summary: dict, target_s: float | None) -> None:
    steps = sorted(summary["steps"], key=lambda s: -s["seconds"])
    verdict = summary["verdict"]
    goal = f" (target ≤ {target_s:.0f} s: {'met' if wall <= target_s else 'MISSED'})" if target_s else ""
    print(f"\n{label}: {verdict}, {wall:.1f} s wall{goal}")
    for s in steps:
        print(f"  {s['name']:<20} {s['seconds']:7.2f} s  {s['verdict']}")
    print(f"  {'(outside steps)':<20} {wall - sum(s['seconds'] for s in steps):7.2f} s  start-up, twin, report, store")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--unit", default="golden")
    parser.add_argument("--full", action="store_true", help="also sign off at the full 8192×6144 readout")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        wall, summary = run_signoff(TWIN_STATION, args.unit, Path(tmp) / "binned")
        report("binned 2048×1536", wall, summary, target_s=60.0)
        if args.full:
            full = Path(tmp) / "twin-full.toml"
            text = TWIN_STATION.read_text().replace("binning = 4 ", "binning = 1 ")
            full.write_text(text)
            wall, summary = run_signoff(full, args.unit, Path(tmp) / "full")
            report("full 8192×6144", wall, summary, target_s=None)


if __name__ == "__main__":
    main()
