"""``rig report RUN`` and ``rig spc``: per-run outputs from a run folder, and SPC over the results store.

``rig report RUN_DIR_OR_ID`` rewrites report.html/.pdf, junit.xml and measurements.csv/.parquet from the run's
record.json (and plots.json); ``--store URL`` also stores the run. ``rig report --schema`` prints the JSON
Schema of the run record (``--schema plots`` that of the report data).

``rig spc`` reads the store (``--since``/``--until`` on run start, ``--station``) and reports one scope: one plan,
one lens and one limits revision (``--plan``/``--lens``/``--revision``; by default the latest run's plan and lens
and the newest revision of those; ``--all-lenses``/``--all-revisions`` pool them). It prints the scope, yield,
first-pass yield, the failure Pareto and capability (figures at their resolution, rig.results.numbers), and writes
spc.html and CSV tables to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rig.errors import ArgumentError

GROUP = None

SCHEMAS = ("record", "plots")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("report", help="write a run's report, JUnit XML and tables from its folder")
    p.add_argument("run", nargs="?", metavar="RUN_DIR_OR_ID", help="run folder, or run id under --reports")
    p.add_argument("--reports", type=Path, default=None, help="reports folder (default: reports/)")
    p.add_argument("--no-pdf", action="store_true", help="skip report.pdf (it needs Chromium)")
    p.add_argument(
        "--store", metavar="URL", help="results store to (re)add a finished run to (default: results.sqlite beside it)"
    )
    p.add_argument("--schema", nargs="?", const="record", choices=SCHEMAS, help="print a JSON Schema and exit")
    _output_flags(p)
    p.set_defaults(func=report_command)

    s = subparsers.add_parser("spc", help="yield, Pareto, Cpk and control charts over the results store")
    s.add_argument(
        "--since", type=_date, metavar="DATE", help="runs started at or after DATE (ISO 8601, UTC if no offset)"
    )
    s.add_argument("--until", type=_date, metavar="DATE", help="runs started before DATE")
    s.add_argument("--plan", help="the plan (default: the latest run's; plans are never pooled: their limits differ)")
    s.add_argument("--lens", help="the lens (default: the latest run's of the plan)")
    s.add_argument("--all-lenses", action="store_true", help="pool every lens of the plan")
    revisions = s.add_mutually_exclusive_group()
    revisions.add_argument(
        "--revision", metavar="R", help="the limits revision (default: the newest of the plan and lens, e.g. 2026-11-A)"
    )
    revisions.add_argument(
        "--all-revisions",
        action="store_true",
        help="pool every limits revision (capability against the latest run's limits)",
    )
    s.add_argument("--station", help="only this station")
    s.add_argument("--force", action="store_true", help="overwrite an existing spc.html in --out")
    s.add_argument("--store", metavar="URL", help="results store URL (default: reports/results.sqlite)")
    s.add_argument(
        "--out", type=Path, default=None, metavar="DIR", help="folder for spc.html and CSV (default: reports/spc)"
    )
    s.add_argument("--no-charts", action="store_true", help="skip the control-chart images (faster)")
    _output_flags(s)
    s.set_defaults(func=spc_command)


def _output_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--quiet", action="store_true", help="print nothing but errors")
    g.add_argument("--json", action="store_true", help="print the result as JSON (for scripts)")


def _date(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected an ISO 8601 date such as 2026-11-02") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _default_reports() -> Path:
    from rig.config.home import default_reports_dir

    return default_reports_dir()


def _reports_dir(args: argparse.Namespace) -> Path:
    return args.reports or _default_reports()


def _run_dir(args: argparse.Namespace) -> Path:
    if not args.run:
        raise ArgumentError("RUN_DIR_OR_ID: required (a run folder with record.json, or a run id)")
    candidate = Path(args.run)
    for run_dir in (candidate, _reports_dir(args) / args.run):
        if (run_dir / "record.json").is_file():
            return run_dir
    raise ArgumentError(
        f"RUN_DIR_OR_ID {args.run!r}: expected a folder with record.json or a run id in {_reports_dir(args)}"
    )


def _console(args: argparse.Namespace, *, stderr: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, quiet=bool(args.quiet or args.json))


def report_command(args: argparse.Namespace) -> int:
    if args.schema:
        from rig.results.record import RunRecord
        from rig.results.reportdata import ReportData

        model = RunRecord if args.schema == "record" else ReportData
        print(json.dumps(model.model_json_schema(), indent=2))
        return 0
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from rig.report import load_run_dir, write_run_outputs

    run_dir = _run_dir(args)
    record, data = load_run_dir(run_dir)
    progress_console = _console(args, stderr=True)
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=progress_console, transient=True) as progress:
        task = progress.add_task(f"report {record.run_id}", total=None)

        def tell(name: str) -> None:
            progress.update(task, description=f"report {record.run_id}: {name}")

        outputs = write_run_outputs(record, run_dir, plots=data, pdf=not args.no_pdf, progress=tell)
        if record.verdict is not None:  # a finished run belongs in the store: add it if a crash left it out
            from rig.results.store import open_store

            tell("store")
            with open_store(args.store or str(run_dir.parent / "results.sqlite")) as store:
                store.add_run(record)
    verdict = record.verdict.value if record.verdict else None
    if args.json:
        out = {"run_id": record.run_id, "verdict": verdict, "outputs": {k: str(v) for k, v in outputs.items()}}
        print(json.dumps(out, indent=2))
    elif not args.quiet:
        console = _console(args)
        for name, path in outputs.items():
            console.print(f"[dim]{name:>8}[/dim] {path}")
        console.print(f"{verdict or 'INCOMPLETE'} {record.unit_serial} {record.plan} {run_dir}")
    return 0


def _finite(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else x


def _known(runs: Any, column: str, asked: str | None, flag: str) -> None:
    known = sorted({str(v) for v in runs[column].dropna()})
    if asked is not None and asked not in known:
        raise ArgumentError(f"{flag} {asked!r}: not in the store; known: {', '.join(known) or '(no runs)'}")


def _known_revision(runs: Any, scope: Any, asked: str | None) -> None:
    """``--revision`` must name a revision some run of the scope's plan and lens was judged against."""
    from dataclasses import replace

    from rig.results.spc import revisions_present

    known = revisions_present(replace(scope, limits_revision=None).select(runs))
    if asked is not None and asked not in known:
        what = f"{scope.plan} run" + ("" if scope.lens_pooled else f" of lens {scope.lens}")
        raise ArgumentError(
            f"--revision {asked!r}: no {what} was judged against it; known: {', '.join(known) or '(no runs)'}"
        )


def spc_command(args: argparse.Namespace) -> int:
    from rig.cli.output import console
    from rig.report.spc_page import SPC_FILES, write_spc_outputs
    from rig.results.spc import SPC_MEASUREMENT_COLUMNS, compute_spc, scope_runs
    from rig.results.store import open_store

    if args.since and args.until and args.since >= args.until:
        raise ArgumentError(
            f"--since {args.since.isoformat()} --until {args.until.isoformat()}: expected since < until"
        )
    out_dir = args.out or _default_reports() / "spc"
    if (out_dir / SPC_FILES["html"]).exists() and not args.force:
        raise ArgumentError(f"--out {out_dir}: {SPC_FILES['html']} exists; give --force or another --out")
    dates = {"since": args.since, "until": args.until, "station": args.station}
    err = console(stderr=True, quiet=bool(args.quiet or args.json))
    with open_store(args.store) as store:
        every = store.runs()
        _known(every, "plan", args.plan, "--plan")
        _known(every, "lens", args.lens, "--lens")
        _known(every, "station", args.station, "--station")
        window = store.runs(**dates)
        scope = scope_runs(
            window,
            plan=args.plan,
            lens=args.lens,
            all_lenses=args.all_lenses,
            revision=args.revision,
            all_revisions=args.all_revisions,
        )
        _known_revision(every, scope, args.revision)
        runs = scope.select(window)
        measurements = store.measurements(plan=scope.plan or None, **dates, columns=SPC_MEASUREMENT_COLUMNS)
    if err.is_terminal:
        err.print(f"SPC over {len(runs)} runs", end="\r")
    result = compute_spc(runs, measurements, charts=not args.no_charts)
    window_text = ", ".join(
        f"{k} {v:%Y-%m-%d %H:%M}" if isinstance(v, datetime) else f"{k} {v}" for k, v in dates.items() if v is not None
    )
    described = scope.describe() + (f", {window_text}" if window_text else "")
    paths = write_spc_outputs(result, out_dir, scope=described)
    y = result.yields
    if args.json:
        summary = {
            "scope": described,
            "plan": scope.plan,
            "lens": None if scope.lens_pooled else scope.lens,
            "all_lenses": scope.lens_pooled,
            "limits_revision": scope.limits_revision,
            "limits_revisions_present": list(scope.revisions),
            "runs": y.runs,
            "passed_runs": y.passed_runs,
            "unmeasured_runs": y.unmeasured_runs,
            "yield": _finite(y.yield_frac),
            "units": y.units,
            "first_pass_units": y.first_pass_units,
            "first_pass_yield": _finite(y.first_pass_yield_frac),
            "pareto": result.pareto.to_dict("records"),
            "capability": [
                {k: _finite(v) if isinstance(v, float) else v for k, v in row.items()}
                for row in result.capability.to_dict("records")
            ],
            "outputs": {k: str(v) for k, v in paths.items()},
        }
        print(json.dumps(summary, indent=2))
        return 0
    if not args.quiet:
        _print_spc(console(), result, described, paths)
    return 0


def _print_spc(out: Any, result: Any, scope: str, paths: dict[str, Path]) -> None:
    from rich.markup import escape

    from rig.cli.output import print_table
    from rig.report.spc_page import CPK_TARGET
    from rig.results.numbers import display_unit, format_fraction_pct
    from rig.results.spc import capability_text

    y = result.yields
    pct = format_fraction_pct
    out.print(f"[bold]SPC[/bold] {escape(scope)}")
    out.print(
        f"yield {pct(y.yield_frac)} ({y.passed_runs}/{y.runs} runs)   "
        f"first-pass yield {pct(y.first_pass_yield_frac)} ({y.first_pass_units}/{y.units} units)   "
        f"{y.unmeasured_runs} runs ended ERROR before measuring (not counted)"
    )
    rows, styles = [], []
    for row in result.capability.to_dict("records"):
        low_cpk = not math.isnan(row["cpk"]) and row["cpk"] < CPK_TARGET
        text = capability_text(row)
        rows.append(
            [
                row["name"],
                row["zone"] or "",
                display_unit(row["unit"]),
                str(row["n"]),
                text["mean"],
                text["sigma"],
                text["low"],
                text["high"],
                text["cp"],
                text["cpk"],
                text["pp"],
                text["ppk"],
                text["fail_rate"],
                str(row["marginal_count"]),
                row["note"],
            ]
        )
        styles.append("red" if low_cpk else None)
    numeric = ("n", "mean", "σ", "low", "high", "Cp", "Cpk", "Pp", "Ppk", "fail rate")
    columns = ("measurement", "zone", "unit", *numeric, "marginal", "note")
    print_table(out, "capability", columns, rows, right=numeric, styles=styles)
    if not result.pareto.empty:
        pareto = [
            [r["cause"], str(r["failed_runs"]), pct(r["share"]), pct(r["cumulative_share"])]
            for r in result.pareto.to_dict("records")
        ]
        print_table(out, "failure causes (Pareto)", ("cause", "failed runs", "share", "cumulative"), pareto)
    out.print(str(paths["html"]), markup=False)
