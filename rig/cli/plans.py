"""``rig signoff | calibrate | certify``: run a plan (pytest underneath) and print its verdict.

The plan runs in-process through ``pytest.main`` with the same plugin a plain ``pytest --pyargs rig.plans.…``
run uses; this command adds up-front validation of every input (so a typo is one line and exit 2, before any
motor moves), a live step list, the summary table and the exit status: 0 PASS, 1 FAIL, 3 ERROR.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rig.bench.options import RunOptions

GROUP = None

PLANS = {
    "signoff": ("signoff", "QA sign-off of one unit: every measurement against its limits, with a report"),
    "calibrate": ("calibration", "factory calibration: measure, write the profile to the phone, verify"),
    "certify": ("certification", "lens compatibility certification of one catalog lens on this phone"),
}
EXIT_BY_VERDICT = {"PASS": 0, "FAIL": 1, "ERROR": 3, "SKIP": 3}


def register(subparsers: argparse._SubParsersAction) -> None:
    from rig.bench.options import add_argparse_options

    for command, (plan, help_text) in PLANS.items():
        p = subparsers.add_parser(command, help=help_text, description=help_text)
        add_argparse_options(p, plan)
        p.add_argument("--quiet", action="store_true", help="print only the verdict line")
        p.add_argument("--json", action="store_true", help="print the run summary as JSON")
        p.set_defaults(func=run_plan, plan=plan)


def _validate(args: argparse.Namespace) -> tuple[RunOptions, str]:
    """Load every input the plan will read, so a mistake is reported before the bench moves.

    Returns the run options and the unit serial.
    """
    from rig.bench.options import RunOptions
    from rig.bench.preflight import preflight

    options = RunOptions.from_values(vars(args))
    # every input the run depends on, and the run's locks, before any device is opened (rig.bench.preflight)
    checked = preflight(args.plan, options, vars(args), lock=True)
    return options, checked.serial


def run_plan(args: argparse.Namespace) -> int:
    import pytest

    from rig.bench.recording import new_run_id
    from rig.results.record import RunRecord, utcnow

    options, serial = _validate(args)
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
    ]
    progress = _Progress(quiet=args.quiet or args.json)
    reports.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    code = pytest.main(pytest_args, plugins=[progress])
    record_path = reports / run_id / "record.json"
    if not record_path.is_file():
        sys.stderr.write(f"rig: bench error: the plan ended (pytest exit {int(code)}) without a run record\n")
        return 3
    record = RunRecord.load(record_path)
    verdict = record.verdict.value if record.verdict else "ERROR"
    if args.json:  # one JSON document and nothing else on stdout, for scripts
        print(json.dumps(_summary(record, reports / run_id, time.monotonic() - started), indent=2))
        return EXIT_BY_VERDICT.get(verdict, 3)
    if not args.quiet:
        _print_summary(record, reports / run_id, time.monotonic() - started)
    print(f"{verdict} {record.unit_serial} {record.plan} {reports / run_id}")
    return EXIT_BY_VERDICT.get(verdict, 3)


class _Progress:
    """A pytest plugin that shows each step as it runs (rich), instead of pytest's own terminal output."""

    def __init__(self, *, quiet: bool) -> None:
        from rich.console import Console

        self.quiet = quiet
        self.console = Console(stderr=True, highlight=False)
        self._t0: dict[str, float] = {}

    def pytest_runtest_logstart(self, nodeid: str, location: tuple[str, int | None, str]) -> None:
        self._t0[nodeid] = time.monotonic()
        if not self.quiet and self.console.is_terminal:  # a transient "running" line; logs get only results
            self.console.print(f"[dim]…[/dim] {location[2].removeprefix('test_')}", end="\r")

    def pytest_runtest_logreport(self, report: Any) -> None:
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
            self.console.print(f"{mark} {name:<32} {elapsed:6.1f} s")
            if not report.passed and text:
                first = text.splitlines()[-1] if not text.startswith(("FAIL", "ERROR")) else text
                self.console.print(f"      [dim]{first[:300]}[/dim]")

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


def _print_summary(record: Any, run_dir: Path, wall_s: float) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    table = Table(title=f"{record.plan} of {record.unit_serial} on {record.station}", show_lines=False)
    for col in ("measurement", "zone", "value", "unit", "low", "high", "verdict"):
        table.add_column(col)
    order = {"FAIL": 0, "ERROR": 1, "PASS": 2, "SKIP": 3}
    for m in sorted(record.measurements, key=lambda m: order.get(m.verdict.value, 9)):
        colour = {"PASS": "green", "FAIL": "red", "ERROR": "yellow"}.get(m.verdict.value, "white")
        value = "—" if m.value is None else f"{m.value:.4g}"
        table.add_row(
            m.name,
            m.zone or "",
            value,
            m.unit,
            "" if m.low is None else f"{m.low:g}",
            "" if m.high is None else f"{m.high:g}",
            f"[{colour}]{m.verdict.value}[/{colour}]",
        )
    console.print(table)
    for error in record.errors:
        console.print(f"[yellow]error[/yellow] {error}")
    cert = _certificate(run_dir)
    if cert is not None:  # the lens lab's answer on top of the limits' verdict
        console.print(f"certificate [bold]{cert['level']}[/bold] ({cert['file']})")
        for line in cert["reasons"] + cert["notes"]:
            console.print(f"  {line}")
    console.print(f"run folder {run_dir}  ({wall_s:.1f} s)")
