"""Takt of one QA sign-off of a twin unit against the hardware time of the same actions, per step (issue #17).

Runs ``rig signoff --json`` on the twin station and prints, for each step and overall, the wall time, the
hardware time (what the step's physical actions cost on a real bench: the twin's ledger,
:mod:`rig.twin.hardware_time`) and their ratio, with the run's CPU time and the machine's load beside every wall
figure (the machines are shared: a wall figure alone says little).

Runs, each a separate ``rig`` process:

- ``real speed``: the twin at ``time_scale = 1`` (motion, exposure, transfer and the operator's hands at their real
  durations). Target: takt ≤ 1.2 × hardware time overall and for every step with more than 2 s of hardware time.
- ``test speed``: the twin station as shipped (``time_scale`` 20). Target: ≤ 15 s wall on 2 cores.
- ``--full``: the full 8192 × 6144 read-out at test speed. Target: ≤ 60 s wall or ≤ 1.3 × its hardware time.
- ``--serial`` adds the test-speed run with ``--pipeline off`` (measurements one after the other), for comparison.

Takt is the time until the verdict is out (the JSON summary printed); the report files (HTML plots, PDF) are
written after it, and their time is printed separately.

    .venv/bin/python benchmarks/takt.py [--unit golden] [--skip-real] [--full] [--serial]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TWIN_STATION = REPO / "rig" / "fixtures" / "stations" / "twin.toml"
STEP_RATIO_TARGET = 1.2
STEP_MIN_HARDWARE_S = 2.0
TEST_SPEED_TARGET_S = 15.0
FULL_TARGET_S = 60.0
FULL_RATIO_TARGET = 1.3


@dataclass(frozen=True)
class Run:
    label: str
    takt_s: float  # until the verdict (the JSON summary) was out
    complete_s: float  # until the process ended (report written)
    cpu_s: float  # user + system CPU of the rig process and its workers (render, analysis; reaped at its exit)
    load: tuple[float, float, float]  # load average at the end
    summary: dict


def station_copy(
    tmp: Path,
    name: str,
    *,
    time_scale: float | None = None,
    binning: int | None = None,
    render_processes: int | None = None,
) -> Path:
    text = TWIN_STATION.read_text()
    if render_processes is not None:
        text, n = re.subn(r"(?m)^render_processes = \d+", f"render_processes = {render_processes}", text)
        if n == 0:
            text, n = re.subn(r"(?m)^\[twin\]$", f"[twin]\nrender_processes = {render_processes}", text)
        assert n == 1, "twin.toml: expected one [twin] table"
    if time_scale is not None:
        text, n = re.subn(r"(?m)^time_scale = [0-9.]+", f"time_scale = {time_scale}", text)
        assert n == 1, "twin.toml: expected one time_scale line"
    if binning is not None:
        text, n = re.subn(r"(?m)^binning = \d+", f"binning = {binning}", text)
        assert n == 1, "twin.toml: expected one binning line"
    path = tmp / f"{name}.toml"
    path.write_text(text)
    return path


def run_signoff(label: str, station: Path, unit: str, reports: Path, *extra: str) -> Run:
    cmd = [sys.executable, "-m", "rig", "signoff", "--station", str(station), "--unit", unit]
    cmd += ["--reports", str(reports), "--json", *extra]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    assert proc.stdout is not None
    lines: list[str] = []
    takt = None
    for line in proc.stdout:  # the summary is one indented JSON document: it ends with a "}" alone on its line
        lines.append(line)
        if line.rstrip("\n") == "}":
            takt = time.monotonic() - t0
            break
    _, err = proc.communicate()
    complete = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if takt is None:
        raise SystemExit(f"rig signoff ({label}) printed no summary (exit {proc.returncode}):\n{err[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Run(label, takt, complete, cpu, os.getloadavg(), json.loads("".join(lines)))


def _ratio(wall: float, hardware: float | None) -> str:
    return f"{wall / hardware:5.2f}×" if hardware else "     —"


def report(run: Run, *, ratio_target: float | None = None, wall_target_s: float | None = None) -> None:
    s = run.summary
    steps = s["steps"]
    hardware = sum(st["hardware_s"] or 0.0 for st in steps)
    load = ", ".join(f"{x:.1f}" for x in run.load)
    print(f"\n{run.label}: {s['verdict']}")
    print(
        f"  takt {run.takt_s:6.1f} s wall (to the verdict), {run.cpu_s:6.1f} s CPU, load {load}; "
        f"report complete at {run.complete_s:.1f} s"
    )
    print(f"  hardware time {hardware:6.1f} s  →  takt / hardware {_ratio(run.takt_s, hardware)}")
    goals = []
    if ratio_target is not None and hardware:
        met = run.takt_s <= ratio_target * hardware
        goals.append(f"takt ≤ {ratio_target:g} × hardware: {'met' if met else 'MISSED'}")
    if wall_target_s is not None:
        goals.append(f"≤ {wall_target_s:g} s wall: {'met' if run.takt_s <= wall_target_s else 'MISSED'}")
    if goals:
        print("  target " + "; ".join(goals))
    print(f"  {'step':<18} {'wall s':>7} {'hw s':>7} {'wall/hw':>7} {'cpu s':>7} {'retries':>7}  verdict")
    for st in steps:
        hw = st["hardware_s"]
        flag = ""
        if ratio_target is not None and hw and hw > STEP_MIN_HARDWARE_S and st["seconds"] > ratio_target * hw:
            flag = f"  > {ratio_target:g}×"
        print(
            f"  {st['name']:<18} {st['seconds']:7.2f} {hw if hw is not None else float('nan'):7.2f} "
            f"{_ratio(st['seconds'], hw):>7} {st['cpu_s'] or 0.0:7.2f} {st['retries'] or 0:7d}  {st['verdict']}{flag}"
        )
        if (st["verdict"] == "ERROR" or st["retries"]) and st["error"]:
            # an ERROR's reason, or what the bench and its drivers retried (a stalled download, a recapture)
            print(f"      {st['error'][:160]}")
    outside = run.takt_s - sum(st["seconds"] for st in steps)
    print(f"  {'(outside steps)':<18} {outside:7.2f}  start-up, twin, verdict outputs, store")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--unit", default="golden")
    parser.add_argument("--skip-real", action="store_true", help="skip the run at real motion speed (~2 min)")
    parser.add_argument("--full", action="store_true", help="also sign off at the full 8192×6144 read-out")
    parser.add_argument("--serial", action="store_true", help="also run the test speed with --pipeline off")
    parser.add_argument(
        "--render-processes",
        type=int,
        default=None,
        help="the twin phone's render worker processes for every run (default: the station's; 0: in-process)",
    )
    args = parser.parse_args()
    rp = args.render_processes
    print(f"{os.cpu_count()} CPUs, load {', '.join(f'{x:.1f}' for x in os.getloadavg())} at start")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        where = "" if rp is None else f", render processes {rp}"
        station = station_copy(tmp, "twin-test-speed", render_processes=rp)
        fast = run_signoff(f"test speed (time_scale 20), binned 2048×1536{where}", station, args.unit, tmp / "fast")
        report(fast, wall_target_s=TEST_SPEED_TARGET_S)
        if args.serial:
            serial = run_signoff(
                f"test speed, --pipeline off{where}", station, args.unit, tmp / "serial", "--pipeline", "off"
            )
            report(serial, wall_target_s=TEST_SPEED_TARGET_S)
        if not args.skip_real:
            real = station_copy(tmp, "twin-real-speed", time_scale=1.0, render_processes=rp)
            run = run_signoff(f"real speed (time_scale 1), binned 2048×1536{where}", real, args.unit, tmp / "real")
            report(run, ratio_target=STEP_RATIO_TARGET)
        if args.full:
            full = station_copy(tmp, "twin-full", binning=1, render_processes=rp)
            run = run_signoff(f"full read-out 8192×6144, test speed{where}", full, args.unit, tmp / "full")
            report(run, ratio_target=FULL_RATIO_TARGET, wall_target_s=FULL_TARGET_S)


if __name__ == "__main__":
    main()
