"""``rig soak --minutes N``: sign-offs of twin units in a loop with random bench faults (issue #8).

Each run is a real ``rig signoff`` in its own process (its twin peers and drivers start and stop with it), on
the twin station at its binned test size. Faults are drawn per step of the plan (``--fault-rate``, 5 % by
default, seeded) and written into the run's unit file as a ``[faults]`` plan, each at a random frame of the run.
Some runs are killed outright (``--restart-rate``, 20 % by default: the station's processes die as in a power
cut) at a random moment of the whole run, start-up and publishing included, and resumed. A run that ends in
ERROR is resumed with the faults cleared (the bench repaired), at most twice.

What is checked, per process started:

- lost measurements: every measurement of a step completed before a fault, a kill or a resume is still in the
  record afterwards, unchanged; and the results store and the published report (report.html, measurements.csv)
  hold exactly the measurements of the final, finished record;
- hung runs: every process ends within ``--run-timeout`` (it is killed and counted otherwise);
- every ERROR step has a reason.

New runs start while the budget lasts; the last one may end up to one run timeout later. Exit status 0 when
nothing was lost, nothing hung and every ERROR had a reason, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from rig.errors import ArgumentError

GROUP = None

FRAMES_PER_SIGNOFF = 57
"""Frames the twin phone renders in a fault-free sign-off (flats, dot grid, sweep, pitch, knock burst, remounts):
the range a fault's moment is drawn from."""
SOAK_KINDS = (
    "serial_vanish",
    "grbl_alarm",
    "grbl_error",
    "grbl_stuck",
    "download_drop",
    "download_stall",
    "corrupt_dng",
    "truncated_dng",
    "stuck_capture",
    "phone_reboot",
    "lens_removed",
    "light_flicker",
    "light_drift",
)
MOVE_TIMEOUT_S = 5.0
"""The soak station's move timeout: the twin's longest move takes < 1 s real, and a stuck controller costs this."""
MAX_RESUMES = 2
TYPICAL_RUN_S = 30.0
"""First guess of a sign-off's wall time (the soak learns the real one from the runs that were not killed)."""


@dataclass
class SoakFigures:
    """What a soak run did and found (counts)."""

    runs: int = 0  # sign-offs started
    processes: int = 0  # rig processes started (runs + resumes)
    restarts: int = 0  # processes killed partway (station restarted), then resumed
    resumes: int = 0
    steps: int = 0  # step records written (a re-run step counts again)
    faults_planned: int = 0
    faults_reached: int = 0  # planned at a frame the run got to (≈ fired)
    retries: int = 0
    errors: int = 0  # steps that ended as ERROR
    errors_without_reason: int = 0
    lost_measurements: int = 0
    hung_runs: int = 0
    verdicts: dict[str, int] = field(default_factory=dict)
    wall_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.lost_measurements == 0 and self.hung_runs == 0 and self.errors_without_reason == 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "soak",
        help="sign-offs of twin units in a loop with random faults: lost measurements and hung runs must be 0",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    p.add_argument("--minutes", type=float, default=5.0, help="time budget for starting runs (default 5)")
    p.add_argument("--seed", type=int, default=1, help="seed of the fault draws (default 1)")
    p.add_argument("--fault-rate", type=float, default=0.05, help="probability of a fault per plan step (0.05)")
    p.add_argument("--restart-rate", type=float, default=0.2, help="fraction of runs killed partway (0.2)")
    p.add_argument("--run-timeout", type=float, default=300.0, help="a process still running after this is hung (s)")
    p.add_argument("--reports", type=Path, default=None, help="folder for the run folders (default: a temp folder)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.set_defaults(func=soak_command)


def _check_args(args: argparse.Namespace) -> None:
    if not 0 < args.minutes <= 24 * 60:
        raise ArgumentError(f"--minutes {args.minutes:g}: expected a budget > 0 and ≤ 1440 minutes")
    for name in ("fault_rate", "restart_rate"):
        value = getattr(args, name)
        if not 0.0 <= value <= 1.0:
            raise ArgumentError(f"--{name.replace('_', '-')} {value:g}: expected a probability within [0, 1]")
    if not 0 < args.run_timeout <= 24 * 3600:
        raise ArgumentError(f"--run-timeout {args.run_timeout:g}: expected a number of seconds in (0, 86400]")
    if args.reports is not None and args.reports.exists() and not args.reports.is_dir():
        raise ArgumentError(f"--reports {args.reports}: expected a folder, found a file")


def soak_command(args: argparse.Namespace) -> int:
    _check_args(args)
    with tempfile.TemporaryDirectory(prefix="rig-soak-") as scratch:
        reports = args.reports or Path(scratch) / "reports"
        figures = run_soak(
            minutes=args.minutes,
            seed=args.seed,
            fault_rate=args.fault_rate,
            restart_rate=args.restart_rate,
            run_timeout_s=args.run_timeout,
            reports=reports,
            work=Path(scratch),
            progress=not args.json,
        )
    if args.json:
        print(json.dumps({**asdict(figures), "ok": figures.ok}, indent=2, allow_nan=False))  # strict JSON
    else:
        print_figures(figures)
    return 0 if figures.ok else 1


def print_figures(f: SoakFigures) -> None:
    print(f"soak: {f.wall_s / 60:.1f} min, {f.runs} sign-offs, {f.processes} processes ({f.resumes} resumes, "
          f"{f.restarts} killed partway)")  # fmt: skip
    print(f"  steps {f.steps}, faults planned {f.faults_planned} (reached {f.faults_reached}), retries {f.retries}")
    print(f"  errors {f.errors} (without a reason: {f.errors_without_reason})")
    print(f"  lost measurements {f.lost_measurements}, hung runs {f.hung_runs}")
    print(f"  final verdicts {dict(sorted(f.verdicts.items()))}")
    print("OK" if f.ok else "NOT OK")


# ------------------------------------------------------------------------------------------------ the loop
def run_soak(
    *,
    minutes: float,
    seed: int,
    fault_rate: float,
    restart_rate: float,
    run_timeout_s: float,
    reports: Path,
    work: Path,
    progress: bool = True,
) -> SoakFigures:
    """Run sign-offs until ``minutes`` have passed; returns the figures (see the module doc)."""
    from rig.config.loader import FIXTURES_DIR
    from rig.plans import signoff

    steps_per_run = sum(1 for name in dir(signoff) if name.startswith("test_"))
    reports.mkdir(parents=True, exist_ok=True)
    station = _soak_station(FIXTURES_DIR / "stations" / "twin.toml", work)
    golden = FIXTURES_DIR / "units" / "golden.toml"
    figures = SoakFigures()
    start = time.monotonic()
    index = 0
    durations: list[float] = []
    typical_s = TYPICAL_RUN_S
    while time.monotonic() - start < minutes * 60:
        rng = np.random.default_rng([seed, index])
        plan = _draw_faults(rng, steps=steps_per_run, rate=fault_rate)
        unit = work / f"soak-{index:04d}.toml"
        unit.write_text(golden.read_text() + _faults_toml(plan))
        # a kill at a random moment of the whole run, start-up and publishing included (not a fixed window that a
        # fast machine finishes before): the moment is drawn over the typical duration of the runs so far
        kill_after = float(rng.uniform(0.5, 1.1 * typical_s)) if rng.random() < restart_rate else None
        run_started = time.monotonic()
        figures.runs += 1
        figures.faults_planned += len(plan)
        before = {p.name for p in reports.iterdir()}
        argv = ["--station", str(station), "--unit", str(unit), "--reports", str(reports)]
        verdict = _invoke(argv, run_timeout_s, kill_after, figures)
        if verdict != "KILLED":
            durations.append(time.monotonic() - run_started)
            typical_s = float(np.median(durations))
        new = sorted(
            p.name for p in reports.iterdir() if p.is_dir() and not p.name.startswith(".") and p.name not in before
        )
        if not new:  # killed before the run folder existed: nothing was recorded, nothing can be lost
            figures.verdicts[verdict] = figures.verdicts.get(verdict, 0) + 1
            index += 1
            continue
        run_id = new[-1]
        frames = _frames_taken(reports / run_id)
        figures.faults_reached += sum(1 for _, at in plan if at < frames)
        done = _account(reports / run_id, {}, figures)
        resumes = 0
        while verdict in ("ERROR", "KILLED") and resumes < MAX_RESUMES and (reports / run_id / "record.json").is_file():
            if verdict == "KILLED":
                figures.restarts += 1
            resumes += 1
            figures.resumes += 1
            repaired = ["--station", str(station), "--unit", str(golden), "--reports", str(reports)]
            verdict = _invoke(["--resume", run_id, *repaired], run_timeout_s, None, figures)
            done = _account(reports / run_id, done, figures)
        figures.lost_measurements += _lost_in_store(reports, run_id) + _lost_in_report(reports / run_id)
        figures.verdicts[verdict] = figures.verdicts.get(verdict, 0) + 1
        if progress:
            print(
                f"run {index}: {len(plan)} fault(s) {[k for k, _ in plan]}, "
                f"{'killed and ' if kill_after else ''}{resumes} resume(s) -> {verdict}",
                flush=True,
            )
        index += 1
    figures.wall_s = time.monotonic() - start
    return figures


def _soak_station(template: Path, work: Path) -> Path:
    """The twin station with a short move timeout (a stuck controller must not eat the budget)."""
    text = template.read_text()
    old = "move_timeout_s = 60.0"
    if old not in text:
        return template
    path = work / "soak-station.toml"
    path.write_text(text.replace(old, f"move_timeout_s = {MOVE_TIMEOUT_S}"))  # its paths resolve from the repo
    return path


def _draw_faults(rng: np.random.Generator, *, steps: int, rate: float) -> list[tuple[str, int]]:
    """Each step faults with probability ``rate``: a random kind at a random frame of the run."""
    plan = []
    for _ in range(steps):
        if rng.random() < rate:
            kind = str(rng.choice(SOAK_KINDS))
            plan.append((kind, int(rng.integers(0, FRAMES_PER_SIGNOFF))))
    return plan


def _faults_toml(plan: list[tuple[str, int]]) -> str:
    return "".join(f'\n[[faults.inject]]\nkind = "{kind}"\nafter_captures = {at}\n' for kind, at in plan)


def _invoke(argv: list[str], timeout_s: float, kill_after_s: float | None, figures: SoakFigures) -> str:
    """One ``rig signoff`` process; returns its verdict, ``KILLED`` (killed on purpose) or ``HUNG``."""
    figures.processes += 1
    cmd = [sys.executable, "-m", "rig", "signoff", "--quiet", *argv]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=kill_after_s if kill_after_s is not None else timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the whole station: the run and its libgphoto2 workers
        proc.communicate()
        if kill_after_s is not None:
            return "KILLED"
        figures.hung_runs += 1
        return "HUNG"
    words = out.strip().splitlines()[-1].split() if out.strip() else []
    return words[0] if words else f"EXIT{proc.returncode}"


def _frames_taken(run_dir: Path) -> int:
    captures = run_dir / "captures"
    return len(list(captures.glob("*.dng"))) if captures.is_dir() else 0


def _account(run_dir: Path, done: dict[str, list[tuple]], figures: SoakFigures) -> dict[str, list[tuple]]:
    """Count the steps this process wrote and check that steps completed before it kept their measurements."""
    path = run_dir / "record.json"
    if not path.is_file():
        return done
    record = json.loads(path.read_text())
    by_step: dict[str, list[tuple]] = {}
    for m in record["measurements"]:
        by_step.setdefault(m["step"], []).append((m["name"], m["zone"], m["value"], m["verdict"]))
    for step, kept in done.items():
        now = by_step.get(step, [])
        figures.lost_measurements += sum(1 for m in kept if m not in now)
    completed: dict[str, list[tuple]] = {}
    for step in record["steps"]:
        rerun = step["name"] not in done
        if rerun:
            figures.steps += 1
            figures.retries += int(step.get("retries") or 0)
        if step["verdict"] == "ERROR":
            if rerun:
                figures.errors += 1
                figures.errors_without_reason += 0 if (step.get("error") or "").strip() else 1
        else:
            completed[step["name"]] = by_step.get(step["name"], [])
    return completed


def _lost_in_report(run_dir: Path) -> int:
    """Measurements of the final record that its published tables do not hold (all of them without a table)."""
    import pandas as pd

    from rig.results.record import RunRecord

    path = run_dir / "record.json"
    if not path.is_file():
        return 0
    record = RunRecord.load(path)
    table = run_dir / "measurements.csv"
    if record.verdict is None:  # not finished (a resume budget ran out): nothing published is expected yet
        return 0
    if not table.is_file() or not (run_dir / "report.html").is_file():
        return len(record.measurements)
    rows = pd.read_csv(table)
    return max(len(record.measurements) - len(rows), 0)


def _lost_in_store(reports: Path, run_id: str) -> int:
    """Measurements of the final record that the results store does not hold (or holds differently)."""
    from rig.results.record import RunRecord
    from rig.results.store import open_store

    path = reports / run_id / "record.json"
    if not path.is_file():
        return 0
    record = RunRecord.load(path)
    store = open_store(str(reports / "results.sqlite"))
    try:
        stored = store.get_run(run_id)
    finally:
        store.close()
    if stored is None:
        return len(record.measurements)
    have = {(m.step, m.name, m.zone, m.value, m.verdict) for m in stored.measurements}
    return sum(1 for m in record.measurements if (m.step, m.name, m.zone, m.value, m.verdict) not in have)


# ------------------------------------------------------------------------------------------------ kill and resume
@dataclass
class KillFigures:
    """What :func:`run_kill_resume` did and found."""

    kills: int = 0  # sign-offs started with a kill planned
    killed: int = 0  # processes that were still running at their kill moment
    before_run_folder: int = 0  # killed before the run folder existed (nothing recorded, nothing to lose)
    resumes: int = 0
    runs_finished: int = 0  # run folders whose record ended with a verdict
    missing_outputs: int = 0  # finished runs without report.html / measurements.csv
    store_rows: int = 0
    lost_measurements: int = 0
    kill_moments_s: list[float] = field(default_factory=list)
    soak: SoakFigures = field(default_factory=SoakFigures)

    @property
    def ok(self) -> bool:
        return (
            self.lost_measurements == 0
            and self.missing_outputs == 0
            and self.store_rows == self.runs_finished
            and self.soak.hung_runs == 0
        )


def run_kill_resume(*, kills: int, seed: int, reports: Path, work: Path, run_timeout_s: float = 300.0) -> KillFigures:
    """``kills`` sign-offs, each ``kill -9``-ed at a seeded random moment of its run, then resumed until finished.

    The kill moment is uniform over 1.1 × the typical wall time of a sign-off here (an unkilled reference run
    first, then the median of the last runs that ended before their kill), so kills land in start-up, steps, the
    verdict and publishing alike. Afterwards every run folder must have its record, its
    report and exactly one store row, and no measurement of a completed step may have changed.
    """
    from rig.config.loader import FIXTURES_DIR
    from rig.results.store import open_store

    reports.mkdir(parents=True, exist_ok=True)
    station = _soak_station(FIXTURES_DIR / "stations" / "twin.toml", work)
    golden = FIXTURES_DIR / "units" / "golden.toml"
    argv = ["--station", str(station), "--unit", str(golden), "--reports", str(reports)]
    out = KillFigures()
    started = time.monotonic()
    _invoke(argv, run_timeout_s, None, out.soak)  # the reference run: how long one sign-off takes here
    durations = [time.monotonic() - started]
    rng = np.random.default_rng(seed)
    for _ in range(kills):
        out.kills += 1
        # the machine's speed changes with its load: the typical duration is re-learnt from the runs that ended
        moment = float(rng.uniform(0.5, 1.1 * float(np.median(durations[-5:]))))
        out.kill_moments_s.append(round(moment, 2))
        before = {p.name for p in reports.iterdir()}
        started = time.monotonic()
        verdict = _invoke(argv, run_timeout_s, moment, out.soak)
        out.killed += verdict == "KILLED"
        if verdict != "KILLED":
            durations.append(time.monotonic() - started)
        new = sorted(
            p.name for p in reports.iterdir() if p.is_dir() and not p.name.startswith(".") and p.name not in before
        )
        if not new or not (reports / new[-1] / "record.json").is_file():
            out.before_run_folder += 1
            continue
        run_id = new[-1]
        done = _account(reports / run_id, {}, out.soak)
        resumes = 0
        while verdict in ("ERROR", "KILLED") and resumes < MAX_RESUMES:
            resumes += 1
            out.resumes += 1
            verdict = _invoke(["--resume", run_id, *argv], run_timeout_s, None, out.soak)
            done = _account(reports / run_id, done, out.soak)
    out.lost_measurements = out.soak.lost_measurements
    run_dirs = [p for p in reports.iterdir() if p.is_dir() and (p / "record.json").is_file()]
    for run_dir in run_dirs:
        record = json.loads((run_dir / "record.json").read_text())
        if record.get("verdict") is None:
            continue
        out.runs_finished += 1
        out.missing_outputs += not ((run_dir / "report.html").is_file() and (run_dir / "measurements.csv").is_file())
        out.lost_measurements += _lost_in_store(reports, run_dir.name) + _lost_in_report(run_dir)
    with open_store(str(reports / "results.sqlite")) as store:
        out.store_rows = store.count()["runs"]
    return out
