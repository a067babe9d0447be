"""``rig report RUN`` and ``rig spc``: per-run outputs from a run folder, and SPC over the results store.

``rig report RUN_DIR_OR_ID`` rewrites report.html/.pdf, junit.xml and measurements.csv/.parquet from the run's
record.json (and plots.json); ``--store URL`` also stores the run. ``rig report --schema`` prints the JSON
Schema of the run record (``--schema plots`` that of the report data).

``rig spc`` reads the store (``--since``/``--until`` on run start, ``--plan``, ``--station``), prints yield,
first-pass yield, the failure Pareto and capability, and writes spc.html and CSV tables to ``--out``.
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
    p.add_argument("--store", metavar="URL", help="also add the run to this results store URL")
    p.add_argument("--schema", nargs="?", const="record", choices=SCHEMAS, help="print a JSON Schema and exit")
    _output_flags(p)
    p.set_defaults(func=report_command)

    s = subparsers.add_parser("spc", help="yield, Pareto, Cpk and control charts over the results store")
    s.add_argument(
        "--since", type=_date, metavar="DATE", help="runs started at or after DATE (ISO 8601, UTC if no offset)"
    )
    s.add_argument("--until", type=_date, metavar="DATE", help="runs started before DATE")
    s.add_argument("--plan", help="only this plan (e.g. signoff)")
    s.add_argument("--station", help="only this station")
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
        if args.store:
            from rig.results.store import open_store

            tell("store")
            with open_store(args.store) as store:
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


def spc_command(args: argparse.Namespace) -> int:
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from rig.report.spc_page import write_spc_outputs
    from rig.results.spc import SPC_MEASUREMENT_COLUMNS, compute_spc
    from rig.results.store import open_store

    if args.since and args.until and args.since >= args.until:
        raise ArgumentError(
            f"--since {args.since.isoformat()} --until {args.until.isoformat()}: expected since < until"
        )
    selection = {"since": args.since, "until": args.until, "plan": args.plan, "station": args.station}
    out_dir = args.out or _default_reports() / "spc"
    progress_console = _console(args, stderr=True)
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=progress_console, transient=True) as progress:
        task = progress.add_task("reading the results store", total=None)
        with open_store(args.store) as store:
            runs = store.runs(**selection)
            measurements = store.measurements(**selection, columns=SPC_MEASUREMENT_COLUMNS)
        progress.update(task, description=f"SPC over {len(runs)} runs, {len(measurements)} measurements")
        result = compute_spc(runs, measurements, charts=not args.no_charts)
        progress.update(task, description="writing spc.html")
        scope = (
            ", ".join(
                f"{k} {v:%Y-%m-%d %H:%M}" if isinstance(v, datetime) else f"{k} {v}"
                for k, v in selection.items()
                if v is not None
            )
            or "all runs"
        )
        paths = write_spc_outputs(result, out_dir, scope=scope)
    y = result.yields
    if args.json:
        summary = {
            "scope": scope,
            "runs": y.runs,
            "yield": _finite(y.yield_frac),
            "units": y.units,
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
        _print_spc(_console(args), result, scope, paths)
    return 0


def _print_spc(console: Any, result: Any, scope: str, paths: dict[str, Path]) -> None:
    from rich.table import Table

    from rig.report.spc_page import CPK_TARGET

    y = result.yields

    def pct(x: float) -> str:
        return "—" if math.isnan(x) else f"{100 * x:.1f} %"

    def num(x: float | None) -> str:
        return "" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.4g}"

    console.print(f"[bold]SPC[/bold] {scope}")
    console.print(
        f"yield {pct(y.yield_frac)} ({y.passed_runs}/{y.runs} runs)   "
        f"first-pass yield {pct(y.first_pass_yield_frac)} ({y.first_pass_units}/{y.units} units)"
    )
    table = Table(title="capability", title_justify="left")
    for col in ("measurement", "zone", "n", "mean", "σ", "Cpk", "Ppk", "fail rate"):
        table.add_column(col, justify="left" if col in {"measurement", "zone"} else "right", no_wrap=True)
    for row in result.capability.to_dict("records"):
        low_cpk = not math.isnan(row["cpk"]) and row["cpk"] < CPK_TARGET
        cpk_text = f"[red]{num(row['cpk'])}[/red]" if low_cpk else num(row["cpk"])
        table.add_row(
            row["name"],
            row["zone"] or "",
            str(row["n"]),
            num(row["mean"]),
            num(row["sigma"]),
            cpk_text,
            num(row["ppk"]),
            pct(row["fail_rate"]),
        )
    console.print(table)
    if not result.pareto.empty:
        pareto = Table(title="failure causes (Pareto)", title_justify="left")
        for col in ("cause", "failed runs", "cumulative"):
            pareto.add_column(col, justify="left" if col == "cause" else "right")
        for row in result.pareto.head(10).to_dict("records"):
            pareto.add_row(row["cause"], str(row["failed_runs"]), pct(row["cumulative_share"]))
        console.print(pareto)
    console.print(f"[dim]{paths['html']}[/dim]")
