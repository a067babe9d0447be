"""``rig signoff | calibrate | certify``: run a plan (pytest underneath) and print its verdict.

The plan runs in-process through ``pytest.main`` with the same plugin a plain ``pytest --pyargs rig.plans.…``
run uses; this command adds up-front validation of every input (so a typo is one line and exit 2, before any
motor moves), a live step list, the summary table and the exit status of :data:`EXIT_BY_HEADLINE`:

====  ==========================================================================
0     PASS · CERTIFIED · ACCEPTED (calibration profile written and verified)
1     FAIL · NOT CERTIFIED · REJECTED (calibration profile not written)
5     REWORK: the calibration re-shimmed the mount by its recipe and verified it; calibrate the unit again
2     bad input (one line on stderr)
3     ERROR: the bench could not measure; the last line gives the ``--resume`` command
4     CERTIFIED WITH LIMITATIONS
====  ==========================================================================

The last line of stdout is always ``WORD SERIAL PLAN RUN_FOLDER`` with WORD the run's headline
(:attr:`RunRecord.headline`), the same word as the report banner, JUnit and the store.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rig.bench.options import RunOptions
    from rig.bench.preflight import Preflight

GROUP = None

PLANS = {
    "signoff": ("signoff", "QA sign-off of one unit: every measurement against its limits, with a report"),
    "calibrate": ("calibration", "factory calibration: measure, write the profile to the phone, verify"),
    "certify": ("certification", "lens compatibility certification of one catalog lens on this phone"),
}
EXIT_CERTIFIED_WITH_LIMITATIONS = 4
EXIT_REWORKED = 5
EXIT_BY_HEADLINE: dict[str, int] = {
    "PASS": 0,
    "FAIL": 1,
    "ERROR": 3,
    "SKIP": 3,
    "INFO": 3,
    "INCOMPLETE": 3,
    "CERTIFIED": 0,
    "CERTIFIED WITH LIMITATIONS": EXIT_CERTIFIED_WITH_LIMITATIONS,
    "NOT CERTIFIED": 1,
    "ACCEPTED": 0,
    "REJECTED": 1,
    "REWORK": EXIT_REWORKED,
}
"""Exit status by the run's headline word (verdict, certificate level or calibration verdict)."""


def register(subparsers: argparse._SubParsersAction) -> None:
    from rig.bench.options import add_argparse_options

    for command, (plan, help_text) in PLANS.items():
        p = subparsers.add_parser(command, help=help_text, description=help_text)
        add_argparse_options(p, plan)
        p.add_argument("--quiet", action="store_true", help="print only the verdict line")
        p.add_argument("--json", action="store_true", help="print the run summary as JSON")
        p.set_defaults(func=run_plan, plan=plan)


def _validate(args: argparse.Namespace) -> Preflight:
    """Load every input the plan will read, so a mistake is reported before the bench moves."""
    from rig.bench.options import RunOptions
    from rig.bench.preflight import preflight

    options = RunOptions.from_values(vars(args))
    # every input the run depends on, and the run's locks, before any device is opened (rig.bench.preflight)
    return preflight(args.plan, options, vars(args), lock=True)


def run_plan(args: argparse.Namespace) -> int:
    import pytest

    from rig.bench.open import BenchAhead
    from rig.bench.recording import new_run_id
    from rig.results.record import RunRecord, utcnow

    checked = _validate(args)
    options, serial = checked.options, checked.serial
    reports = options.reports_dir
    run_id = options.resume or options.run_id or new_run_id(serial, args.plan, utcnow())
    if not options.resume:
        options = options.model_copy(update={"run_id": run_id})
    pytest_args = [
        "--pyargs",
        f"rig.plans.{args.plan}",
        *options.model_copy(update={"reports": reports}).pytest_args(args.plan),
        "-p",
        "no:cacheprovider",
        "-p",
        "no:terminal",
        "-c",
        os.devnull,
        "--rootdir",
        str(reports),
        # a plan runs on its own plugin only: pytest would otherwise load conftest.py files from the working
        # directory and its test*/ folders (a rig checkout's tests/conftest.py overrides the bench fixture)
        "--noconftest",
    ]
    progress = _Progress(quiet=args.quiet or args.json)
    reports.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    # the bench opens and homes while pytest starts and collects the plan (the plan's fixture takes it over)
    ahead = BenchAhead(checked.station, checked.lenses, unit=checked.unit)
    try:
        code = pytest.main(pytest_args, plugins=[progress, _DeferReport(), ahead])
    finally:
        ahead.close()
    record_path = reports / run_id / "record.json"
    if not record_path.is_file():
        sys.stderr.write(f"rig: bench error: the plan ended (pytest exit {int(code)}) without a run record\n")
        return 3
    record = RunRecord.load(record_path)
    run_dir = reports / run_id
    storage_lost = progress.storage_error()
    # a run folder that stopped taking writes ends the run ERROR; the record on disk is the last one saved
    headline = "ERROR" if storage_lost is not None else record.headline
    if storage_lost is not None:
        sys.stderr.write(f"rig: bench error: {storage_lost}\n")
    status = EXIT_BY_HEADLINE.get(headline, 3)
    resume = resume_command(args, record.run_id) if headline == "ERROR" else None
    calibration = _calibration(options, record) if args.plan == "calibration" else None
    if args.json:  # one JSON document and nothing else on stdout, for scripts
        summary = _summary(record, run_dir, time.monotonic() - started)
        summary.update(headline=headline, exit_status=status, resume_command=resume, calibration=calibration)
        if storage_lost is not None:
            summary["errors"] = [*summary["errors"], str(storage_lost)]
        from rig.cli.output import json_text

        print(json_text(summary, indent=2))
        if storage_lost is None:
            _finish_report(run_dir)
        return status
    from rig.cli.output import console

    out = console()
    if not args.quiet:
        _print_summary(out, record, run_dir, time.monotonic() - started)
    if calibration is not None:
        out.print(f"calibration folder {calibration['folder']}: {calibration['verdict'] or 'no verdict'}", markup=False)
        for reason in calibration["reasons"]:
            out.print(f"  {reason}", markup=False)
    last = f"{headline} {record.unit_serial} {record.plan} {run_dir}"
    if resume:
        last += f"  resume with: {resume}"
    out.print(last, markup=False)
    if storage_lost is None:  # a folder that takes no writes gets no report either; --resume writes it later
        _finish_report(run_dir)
    return status


def _finish_report(run_dir: Path) -> None:
    """After the verdict is out: report.html with its plots, Parquet and report.pdf (the record then says
    COMPLETE). A problem is in the record's errors; ``rig report RUN`` can write the report again."""
    from rig.bench.outputs import finish_pending_report

    sys.stdout.flush()
    finish_pending_report(run_dir)


def resume_command(args: argparse.Namespace, run_id: str) -> str:
    """The exact ``rig … --resume RUN_ID`` that continues this run, with the options it was started with."""
    from rig.bench.options import RUN_OPTIONS

    command = next(name for name, (plan, _) in PLANS.items() if plan == args.plan)
    words = ["rig", command]
    for option in RUN_OPTIONS:
        value = getattr(args, option.dest, None)
        if option.dest in {"run_id", "resume"} or value in (None, ""):
            continue
        words += [option.flag, str(value)]
    return shlex.join([*words, "--resume", run_id])


def _calibration(options: RunOptions, record: Any) -> dict[str, Any]:
    """The unit's calibration folder and the verdict it holds about this run (None when it decided nothing)."""
    from rig.calibrate import outputs

    folder = options.calibration_folder / record.unit_serial
    verdict_file = folder / outputs.VERDICT_FILE
    decision = outputs.read_decision(verdict_file) if verdict_file.is_file() else None
    if decision is not None and decision.run_id != record.run_id:
        decision = None
    return {
        "folder": str(folder),
        "verdict": decision.verdict.value if decision else None,
        "reasons": decision.reasons if decision else [],
        "written_to_phone": decision.written_to_phone if decision else None,
    }


class _DeferReport:
    """A pytest plugin telling rig's plugin that this command prints the verdict and then writes the report."""

    def pytest_configure(self, config: Any) -> None:
        from rig.plugin import DEFER_REPORT_KEY

        config.stash[DEFER_REPORT_KEY] = True


class _Progress:
    """A pytest plugin that shows each step as it runs (rich), instead of pytest's own terminal output."""

    def __init__(self, *, quiet: bool) -> None:
        from rig.cli.output import console

        self.quiet = quiet
        self.console = console(stderr=True)
        self._t0: dict[str, float] = {}
        self._config: Any = None

    def pytest_configure(self, config: Any) -> None:
        self._config = config

    def storage_error(self) -> Exception | None:
        """Why the run folder stopped taking writes during the run (None when it never did)."""
        from rig.plugin import run_recorder

        recorder = run_recorder(self._config) if self._config is not None else None
        return recorder.storage_error if recorder is not None else None

    def pytest_runtest_logstart(self, nodeid: str, location: tuple[str, int | None, str]) -> None:
        self._t0[nodeid] = time.monotonic()
        if not self.quiet and self.console.is_terminal:  # a transient "running" line; logs get only results
            self.console.print(f"[dim]…[/dim] {location[2].removeprefix('test_')}", end="\r")

    def pytest_runtest_logreport(self, report: Any) -> None:
        from rich.markup import escape

        if self.quiet:
            return
        if report.when == "call" or (report.when == "setup" and not report.passed):
            name = report.nodeid.split("::")[-1].removeprefix("test_")
            elapsed = time.monotonic() - self._t0.get(report.nodeid, time.monotonic())
            text = str(report.longrepr) if report.longrepr else ""
            if report.passed:
                mark = "[green]PASS [/green]"
            elif report.skipped:
                mark = "[yellow]SKIP [/yellow]"
            elif text.startswith("FAIL"):
                mark = "[red]FAIL [/red]"
            else:
                mark = "[bold yellow]ERROR[/bold yellow]"
            self.console.print(f"{mark} {escape(name):<32} {elapsed:6.1f} s")
            if not report.passed and text:
                first = text.splitlines()[-1] if not text.startswith(("FAIL", "ERROR")) else text
                self.console.print(f"      [dim]{escape(first)}[/dim]")

    def pytest_internalerror(self, excrepr: Any) -> None:
        self.console.print(f"[red]internal error[/red]: {excrepr}")

    def pytest_collectreport(self, report: Any) -> None:
        if report.failed:
            self.console.print(f"[red]could not load the plan[/red]: {report.longrepr}")


def _summary(record: Any, run_dir: Path, wall_s: float) -> dict[str, Any]:
    return {
        "run_id": record.run_id,
        "verdict": record.verdict.value if record.verdict else None,
        "unit_serial": record.unit_serial,
        "plan": record.plan,
        "run_dir": str(run_dir),
        "wall_s": round(wall_s, 2),
        "steps": [
            {
                "name": s.name,
                "verdict": s.verdict.value,
                "seconds": round((s.ended - s.started).total_seconds(), 2),
                "hardware_s": None if s.hardware_s is None else round(s.hardware_s, 3),
                "cpu_s": None if s.cpu_s is None else round(s.cpu_s, 3),
                "retries": s.retries,
                "error": s.error,
            }
            for s in record.steps
        ],
        "failures": [m.key for m in record.failures()],
        "errors": record.errors,
        "artifacts": record.artifacts,
        "certificate": _certificate(run_dir),
    }


def _certificate(run_dir: Path) -> dict[str, Any] | None:
    """Level, reasons and notes of a certification run's certificate (None for other plans or without one)."""
    from rig.calibrate.certificate import CERTIFICATE_FILE, LensCertificate

    path = run_dir / CERTIFICATE_FILE
    if not path.is_file():
        return None
    cert = LensCertificate.load(path)
    return {"level": cert.level.value, "reasons": cert.reasons, "notes": cert.notes, "file": str(path)}


def _print_summary(out: Any, record: Any, run_dir: Path, wall_s: float) -> None:
    from rich.markup import escape

    from rig.cli.output import print_table
    from rig.results.numbers import display_unit, format_value
    from rig.results.tables import sorted_for_report

    rows, styles = [], []
    for m in sorted_for_report(record):
        word = "MARGINAL" if m.marginal else m.verdict.value
        rows.append(
            [
                m.name,
                m.zone or "",
                "—" if m.value is None else format_value(m.value, m.unit, m.low, m.high),
                display_unit(m.unit),
                "" if m.low is None else f"{m.low:g}",
                "" if m.high is None else f"{m.high:g}",
                word,
                m.error or "",
            ]
        )
        styles.append({"FAIL": "red", "ERROR": "yellow", "MARGINAL": "magenta", "PASS": "green"}.get(word))
    columns = ("measurement", "zone", "value", "unit", "low", "high", "verdict", "note")
    title = f"{record.plan} of {record.unit_serial} on {record.station}"
    print_table(out, title, columns, rows, right=("value", "low", "high"), styles=styles)
    for error in record.errors:
        out.print(f"[yellow]error[/yellow] {escape(error)}")
    for step in record.steps:
        for i, attempt in enumerate(step.attempts, start=1):
            out.print(
                f"[dim]history[/dim] {escape(step.name)}: attempt {i}: {attempt.verdict.value} "
                f"{escape(attempt.error or '')}, resumed: {step.verdict.value}"
            )
    if record.partial:
        out.print(f"[yellow]partial run[/yellow]: deselected {escape(', '.join(record.deselected))}")
    cert = _certificate(run_dir)
    if cert is not None:  # the lens lab's answer: the run's headline, with each limitation listed
        out.print(f"certificate [bold]{cert['level']}[/bold] {escape(cert['file'])}")
        for line in cert["reasons"] + cert["notes"]:
            out.print(f"  {escape(line)}")
    out.print(f"run folder {escape(str(run_dir))}  ({wall_s:.1f} s)")
