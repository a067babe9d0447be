"""``rig msa grr | type1``: is the station capable of judging the figures of a plan step?

``rig msa grr`` draws ``--parts`` twin units from the production spread, has ``--appraisers`` operators (or
stations, ``--appraiser-kind station``; ``none`` for an automated type-3 study) measure each ``--trials`` times
with a full remount between trials, running the plan's own ``--steps`` (default ``flange_alignment``; any steps
of the plan, e.g. ``decentre light_intake sharpness sag settling remount``), and prints per figure the AIAG ANOVA
gauge R&R (%GRR of study variation and of the plan's tolerance, ndc, verdict: is the station capable of it) with
the %GRR the twin's configuration implies for flange and tilt. A progress bar with an ETA runs on stderr.
``rig msa type1`` measures one unit ``--n`` times (25–50, VDA 5) on one seating and prints Cg, Cgk and the bias
against the twin's truth for every figure with a two-sided tolerance.

``rig msa golden`` runs the golden unit once (a fresh seating) and puts each figure on the station's golden chart
(baseline: its first ``--baseline-runs`` golden runs; Western Electric rules 1 and 4): exit 1 when the station
drifts. ``rig msa uncertainty`` prints each figure's expanded uncertainty U (k = 2) from the station's latest
accepted gauge R&R and type-1 bias in the store.

All studies write ``readings.csv``, ``study.json`` and ``msa.html`` to ``--out`` (default
``reports/msa/<study id>/``) and are stored in the results store (``--store``; ``--no-store`` to skip).
Exit status 0 when every figure is acceptable (type 1: capable; golden: no drift), 1 otherwise, 2 on bad input,
3 on a bench error.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rig.config.station import DEFAULT_STATION
from rig.errors import ArgumentError

if TYPE_CHECKING:
    from rig.results.msa_store import StudyKind

GROUP = "msa"

TYPE1_MIN_READINGS = 25
TYPE1_MAX_READINGS = 50
"""VDA 5 §5.1 asks for at least 25 readings of the reference part, Bosch Booklet 10 for 50."""

DEFAULT_STEPS = ("flange_alignment",)
GOLDEN_SEED_BASE = 5000
"""Twin seed of the n-th golden run on a station: GOLDEN_SEED_BASE + n (a new seating and new noise each run)."""


def register(subparsers: argparse._SubParsersAction) -> None:
    g = subparsers.add_parser("grr", help="gauge R&R (AIAG crossed ANOVA) of a plan step's figures on the twin")
    _common(g)
    g.add_argument("--parts", type=int, default=10, help="parts drawn from the production spread (default 10)")
    g.add_argument("--appraisers", type=int, default=3, help="operators or stations (default 3)")
    g.add_argument("--trials", type=int, default=3, help="readings per part and appraiser, each a remount (3)")
    g.add_argument(
        "--appraiser-kind",
        choices=("operator", "station", "none"),
        default="operator",
        help="who the appraisers are: operators who mount the lens, stations, or none (type 3)",
    )
    g.add_argument("--no-expectation", action="store_true", help="skip the twin's implied %%GRR (faster)")
    g.set_defaults(func=grr_command)

    t = subparsers.add_parser("type1", help="type-1 study: Cg, Cgk and bias against the truth on one unit")
    _common(t)
    t.add_argument("--n", type=int, default=TYPE1_MIN_READINGS, help="readings (25–50, default 25)")
    t.add_argument("--remount", action="store_true", help="remount the lens before every reading")
    t.set_defaults(func=type1_command)

    d = subparsers.add_parser("golden", help="golden-unit check: one run against the station's golden chart")
    _common(d)
    d.add_argument(
        "--baseline-runs", type=int, default=10, help="golden runs that establish the station's baseline (10)"
    )
    d.set_defaults(func=golden_command, seed=None)

    u = subparsers.add_parser("uncertainty", help="the station's expanded uncertainty U per figure, from the store")
    u.add_argument("--station", type=Path, default=DEFAULT_STATION, help="station file (default: the twin)")
    u.add_argument("--store", metavar="URL", help="results store URL (default: reports/results.sqlite)")
    u.add_argument("--json", action="store_true", help="print as JSON")
    u.set_defaults(func=uncertainty_command)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--plan", default="signoff", help="plan whose steps are repeated, with its limits (default signoff)")
    p.add_argument(
        "--steps",
        nargs="+",
        default=list(DEFAULT_STEPS),
        help="plan steps to repeat, e.g. flange_alignment decentre light_intake sharpness (default flange_alignment)",
    )
    p.add_argument("--station", type=Path, default=DEFAULT_STATION, help="twin station file (default: the twin)")
    p.add_argument("--unit", help="nominal twin unit, a file or a name in fixtures/units/ (default: the station's)")
    p.add_argument("--seed", type=int, default=18, help="seed of parts, appraisers and twin noise (default 18)")
    p.add_argument("--store", metavar="URL", help="results store URL (default: reports/results.sqlite)")
    p.add_argument("--no-store", action="store_true", help="do not store the study in the results store")
    p.add_argument("--out", type=Path, default=None, metavar="DIR", help="output folder (default reports/msa/ID)")
    p.add_argument("--no-html", action="store_true", help="skip msa.html")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--quiet", action="store_true", help="print only the verdict line")
    out.add_argument("--json", action="store_true", help="print the study as JSON")


def _load(args: argparse.Namespace) -> tuple[Any, Any, Any, Any]:
    """Station, lenses, nominal unit and the plan's steps (:class:`rig.bench.msa_steps.PlanSteps`)."""
    from rig.bench.msa_steps import PlanSteps
    from rig.config.limits import load_limits
    from rig.config.resolve import load_station_lenses, load_twin_unit
    from rig.config.station import load_station

    station = load_station(args.station)
    if not station.is_twin:
        raise ArgumentError(
            f"--station {args.station}: rig msa draws its parts from the twin's production spread; expected a twin "
            "station (a study of real parts on a real station is not supported yet)"
        )
    limits = load_limits(args.plan)
    plan = PlanSteps.of(_plan_module(args.plan), limits, args.steps)
    return (
        station,
        load_station_lenses(station, station_file=args.station),
        load_twin_unit(station, args.unit, station_file=args.station),
        plan,
    )


def _plan_module(plan: str) -> Any:
    """The plan module whose steps a study repeats (``rig.plans.<plan>``): the command line may import plans."""
    import rig.plans

    try:
        return importlib.import_module(f"rig.plans.{plan}")
    except ModuleNotFoundError:
        shipped = sorted(p.stem for p in Path(rig.plans.__file__).parent.glob("[a-z]*.py"))
        raise ArgumentError(f"--plan {plan}: expected a plan of rig.plans ({', '.join(shipped)})") from None


def _bounds(plan: Any, station: Any, figure: str) -> tuple[float | None, float | None]:
    """(low, high) of a figure (``name`` or ``name[zone]``) as a run on ``station`` judges it."""
    name, _, zone = figure.partition("[")
    zone = zone.rstrip("]") or None
    if zone and station.sensor.binning > 1:  # sharpness limits in cy/px are per read-out pitch, as in a run
        zone = f"bin{station.sensor.binning}:{zone}"
    bounds = plan.limits.get(name).for_zone(zone)
    return bounds.low, bounds.high


def _tolerance(plan: Any, station: Any, figure: str) -> float | None:
    low, high = _bounds(plan, station, figure)
    return None if low is None or high is None else float(high - low)


def _out_dir(args: argparse.Namespace, kind: str, station_name: str) -> Path:
    if args.out is not None:
        return args.out
    from rig.config.home import default_reports_dir

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return default_reports_dir() / "msa" / f"{kind}-{station_name}-{stamp}"


@contextmanager
def _progress(args: argparse.Namespace, what: str) -> Iterator[Any]:
    """A progress bar with the trials done and an ETA on stderr, and one line per trial above it (none with
    ``--quiet`` or ``--json``)."""
    if args.quiet or args.json:
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn(what),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("trials · elapsed"),
        TimeElapsedColumn(),
        TextColumn("· ETA"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True, highlight=False)) as bar:
        task = bar.add_task(what, total=None)

        def tell(done: int, total: int, line: str) -> None:
            bar.update(task, completed=done, total=total)
            bar.console.print(f"  {line}", markup=False)

        yield tell


def _fmt(value: float | None, digits: int = 4) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value:.{digits}g}"


def grr_command(args: argparse.Namespace) -> int:
    from rig.bench import msa_study as ms
    from rig.results import msa
    from rig.results.msa_store import StudyKind, grr_figure_row

    for name in ("parts", "appraisers", "trials"):
        if getattr(args, name) < 2 and not (name == "appraisers" and args.appraiser_kind == "none"):
            raise ArgumentError(f"--{name} {getattr(args, name)}: expected at least 2")
    station, lenses, nominal, plan = _load(args)
    kind = ms.AppraiserKind(args.appraiser_kind)
    parts = ms.draw_parts(nominal, args.parts, spread=ms.ProductionSpread(), seed=args.seed)
    appraisers = ms.draw_appraisers(kind, args.appraisers, spread=ms.AppraiserSpread(), seed=args.seed)
    with _progress(args, "gauge R&R") as progress:
        readings = ms.run_gauge_study(
            station,
            lenses,
            parts,
            appraisers,
            plan=plan,
            trials=args.trials,
            kind=kind,
            seed=args.seed,
            progress=progress,
        )
    figures: dict[str, dict[str, Any]] = {}
    not_assessable: dict[str, str] = {}
    for figure in plan.figures:
        rows = readings.readings[readings.readings["figure"] == figure]
        if rows["value"].nunique() < 2:  # every reading equal: no variation to split, nothing to judge
            not_assessable[figure] = f"every reading is {rows['value'].iloc[0]:g}: no variation in the study"
            continue
        result = msa.gauge_rr(readings.study(figure), tolerance=_tolerance(plan, station, figure))
        entry: dict[str, Any] = {"grr": result}
        if not args.no_expectation and figure in ms.FLANGE_FIGURES:
            entry["expectation"] = ms.twin_expectation(readings, figure, station, lenses, seed=args.seed)
        entry["uncertainty"] = msa.expanded_uncertainty(result)
        reference = rows["reference_value"]
        if reference.notna().all() and reference.nunique() >= 2:
            # every part's truth is known on the twin: the same readings give the bias-and-linearity study (a
            # figure whose truth is the same on every part, such as the lens's field curvature, has no line to fit)
            entry["linearity"] = msa.bias_linearity(rows["reference_value"].to_numpy(), rows["value"].to_numpy())
        figures[figure] = entry
    study = {
        "study": "grr",
        "plan": args.plan,
        "steps": list(plan.steps),
        "station": station.name,
        "appraiser_kind": kind.value,
        "parts": args.parts,
        "appraisers": [a.name for a in appraisers],
        "trials": args.trials,
        "seed": args.seed,
        "figures": figures,
        "not_assessable": not_assessable,
    }
    out = _write(args, study, readings, kind=f"grr-{kind.value}", station_name=station.name)
    _store(
        args,
        out,
        study,
        kind=StudyKind.GRR,
        figures=[grr_figure_row(n, e["grr"], e["uncertainty"]) for n, e in figures.items()],
    )
    acceptable = not not_assessable and all(e["grr"].verdict is msa.GrrVerdict.ACCEPTABLE for e in figures.values())
    _print_grr(args, study, out)
    return 0 if acceptable else 1


def type1_command(args: argparse.Namespace) -> int:
    from rig.bench import msa_study as ms
    from rig.results import msa
    from rig.results.msa_store import StudyKind, type1_figure_row

    if not TYPE1_MIN_READINGS <= args.n <= TYPE1_MAX_READINGS:
        raise ArgumentError(f"--n {args.n}: expected {TYPE1_MIN_READINGS}–{TYPE1_MAX_READINGS} readings (VDA 5 §5.1)")
    station, lenses, unit, plan = _load(args)
    # Cg compares the gauge with a share of a two-sided tolerance, and the bias needs the twin's truth of the figure
    tolerances = {f: _tolerance(plan, station, f) for f in plan.figures if f.split("[", 1)[0] in ms.TRUTH_OF}
    tolerances = {f: t for f, t in tolerances.items() if t is not None}
    if not tolerances:
        raise ArgumentError(
            f"--steps {' '.join(plan.steps)}: no figure of plan {args.plan} with a low and a high limit and a true "
            "value on the twin; a type-1 study needs both (e.g. --steps flange_alignment)"
        )
    appraisers = ms.draw_appraisers(ms.AppraiserKind.NONE, 1, spread=ms.AppraiserSpread(), seed=args.seed)
    with _progress(args, "type-1 study") as progress:
        readings = ms.run_gauge_study(
            station,
            lenses,
            [unit],
            appraisers,
            plan=plan,
            trials=args.n,
            kind=ms.AppraiserKind.NONE,
            seed=args.seed,
            remount=args.remount,
            progress=progress,
        )
    figures: dict[str, dict[str, Any]] = {}
    for figure, tolerance in tolerances.items():
        rows = readings.readings[readings.readings["figure"] == figure]
        # the truth of a remounted unit moves with each seating: its reference is the unit's perfect seating
        reference_column = "reference_value" if args.remount else "true_value"
        reference = float(rows[reference_column].mean())
        figures[figure] = {
            "type1": msa.type1_study(rows["value"].to_numpy(), reference=reference, tolerance=tolerance),
            "reference": reference_column,
        }
    study = {
        "study": "type1",
        "plan": args.plan,
        "steps": list(plan.steps),
        "station": station.name,
        "unit": unit.serial,
        "n": args.n,
        "remount": args.remount,
        "seed": args.seed,
        "figures": figures,
    }
    out = _write(args, study, readings, kind="type1", station_name=station.name)
    _store(
        args, out, study, kind=StudyKind.TYPE1, figures=[type1_figure_row(n, e["type1"]) for n, e in figures.items()]
    )
    _print_type1(args, study, out)
    return 0 if all(e["type1"].capable for e in figures.values()) else 1


def golden_command(args: argparse.Namespace) -> int:
    from rig.bench import msa_study as ms
    from rig.results.msa import golden_chart
    from rig.results.msa_store import StudyKind, golden_figure_row
    from rig.results.store import open_store

    if args.baseline_runs < 2:
        raise ArgumentError(f"--baseline-runs {args.baseline_runs}: expected at least 2")
    station, lenses, unit, plan = _load(args)
    with open_store(args.store) as store:
        history = store.msa_figures(station=station.name, kind=StudyKind.GOLDEN)
    runs_so_far = history["started"].nunique()
    # every golden run is a new seating and new sensor noise: the seed follows the station's golden history
    seed = args.seed if args.seed is not None else GOLDEN_SEED_BASE + runs_so_far
    with _progress(args, "golden unit") as progress:
        readings = ms.run_gauge_study(
            station,
            lenses,
            [unit],
            ms.draw_appraisers(ms.AppraiserKind.NONE, 1, spread=ms.AppraiserSpread(), seed=seed),
            plan=plan,
            trials=1,
            kind=ms.AppraiserKind.NONE,
            seed=seed,
            progress=progress,
        )
    figures: dict[str, dict[str, Any]] = {}
    for figure in plan.figures:
        value = float(readings.readings.loc[readings.readings["figure"] == figure, "value"].iloc[0])
        past = history.loc[history["name"] == figure, "value"].to_numpy(dtype=float)
        chart = golden_chart([*past, value], baseline_runs=args.baseline_runs)
        figures[figure] = {"value": value, "chart": chart}
    study = {
        "study": "golden",
        "plan": args.plan,
        "steps": list(plan.steps),
        "station": station.name,
        "unit": unit.serial,
        "seed": seed,
        "figures": figures,
    }
    out = _write(args, study, readings, kind="golden", station_name=station.name)
    _store(
        args,
        out,
        study,
        kind=StudyKind.GOLDEN,
        figures=[golden_figure_row(n, e["value"], accepted=not e["chart"].drifting) for n, e in figures.items()],
    )
    drifting = [n for n, e in figures.items() if e["chart"].drifting]
    if args.json:
        from rig.results.msa import as_jsonable

        print(json.dumps({**as_jsonable(study), "out": str(out), "drifting": drifting}, indent=2))
    elif not args.quiet:
        print(f"golden unit {unit.serial} on {study['station']} (golden run {runs_so_far + 1})")
        for n, e in figures.items():
            c = e["chart"]
            state = "DRIFTING" if c.drifting else ("in control" if c.baseline_complete else "building baseline")
            print(
                f"  {n:<18}{e['value']:>+10.4f}  centre {_fmt(c.center)}  limits {_fmt(c.lcl)}…{_fmt(c.ucl)}  {state}"
            )
    if not args.json:
        print(f"msa golden: {'station drifting in ' + ', '.join(drifting) if drifting else 'no drift'}")
    return 1 if drifting else 0


def uncertainty_command(args: argparse.Namespace) -> int:
    from rig.config.station import load_station
    from rig.results.msa import as_jsonable
    from rig.results.msa_store import station_uncertainty
    from rig.results.store import open_store

    station = load_station(args.station)
    with open_store(args.store) as store:
        rows = store.msa_figures(station=station.name)
    budget = station_uncertainty(rows) if not rows.empty else {}
    if args.json:
        print(json.dumps({"station": station.name, "figures": as_jsonable(budget)}, indent=2))
        return 0
    if not budget:
        print(f"station {station.name}: no accepted gauge R&R in the store (run rig msa grr)")
        return 0
    print(f"station {station.name}: expanded uncertainty (k = 2) from the latest accepted MSA")
    for name, u in budget.items():
        print(
            f"  {name:<18} U = ±{u.expanded_u:.4g}  (repeatability {u.repeatability_u:.4g}, "
            f"reproducibility {u.reproducibility_u:.4g}, bias {u.bias_u:.4g})"
        )
    return 0


def _store(
    args: argparse.Namespace, out: Path, study: dict[str, Any], *, kind: StudyKind, figures: list[dict[str, Any]]
) -> None:
    if args.no_store:
        return
    from rig.results.msa_store import store_study
    from rig.results.store import open_store

    with open_store(args.store) as store:
        store_study(
            store,
            study_id=out.name,
            kind=kind,
            station=study["station"],
            plan=study["plan"],
            started=datetime.now(UTC),
            study=study,
            figures=figures,
        )


def _write(args: argparse.Namespace, study: dict[str, Any], readings: Any, *, kind: str, station_name: str) -> Path:
    from rig.results.msa import as_jsonable

    out = _out_dir(args, kind, station_name)
    out.mkdir(parents=True, exist_ok=True)
    readings.readings.to_csv(out / "readings.csv", index=False)
    (out / "study.json").write_text(json.dumps(as_jsonable(study), indent=2) + "\n")
    if not args.no_html:
        from rig.report.msa_page import write_msa_page

        write_msa_page(out / "msa.html", study, readings.readings)
    return out


def _print_grr(args: argparse.Namespace, study: dict[str, Any], out: Path) -> None:
    from rig.results import msa
    from rig.results.msa import as_jsonable

    if args.json:
        print(json.dumps({**as_jsonable(study), "out": str(out)}, indent=2))
        return
    if not args.quiet:
        print(
            f"gauge R&R on {study['station']}: {study['parts']} parts × {len(study['appraisers'])} "
            f"{study['appraiser_kind']} appraiser(s) × {study['trials']} trials"
        )
        width = max([len("figure"), *map(len, study["figures"]), *map(len, study["not_assessable"])]) + 2
        spreads = "".join(f"{name:>11}" for name in ("EV", "AV", "GRR", "PV"))
        print(f"{'figure':<{width}}{spreads}{'%GRR':>8}{'%tol':>8}{'ndc':>6}  station")
        for figure, entry in study["figures"].items():
            g = entry["grr"]
            print(
                f"{figure:<{width}}{_fmt(g.ev):>11}{_fmt(g.av):>11}{_fmt(g.grr):>11}{_fmt(g.pv):>11}"
                f"{g.pct_grr:>8.1f}{g.pct_tolerance.get('GRR', math.nan):>8.1f}{g.ndc_int:>6}  "
                f"{msa.CAPABILITY[g.verdict]} ({g.verdict.value})"
            )
            if "expectation" in entry:
                e = entry["expectation"]
                print(
                    f"{'':<{width}}twin implies %GRR {e.pct_grr:.1f} (95 % of such studies: "
                    f"{e.pct_grr_low:.1f}–{e.pct_grr_high:.1f})"
                )
        for figure, why in study["not_assessable"].items():
            print(f"{figure:<{width}}not assessable: {why}")
    print(f"msa grr: {out}")


def _print_type1(args: argparse.Namespace, study: dict[str, Any], out: Path) -> None:
    from rig.results.msa import as_jsonable

    if args.json:
        print(json.dumps({**as_jsonable(study), "out": str(out)}, indent=2))
        return
    if not args.quiet:
        print(f"type-1 study on {study['station']}, unit {study['unit']}, n = {study['n']}")
        width = max([len("figure"), *map(len, study["figures"])]) + 2
        print(f"{'figure':<{width}}{'mean':>10}{'s':>10}{'bias':>10}{'p(bias)':>9}{'Cg':>7}{'Cgk':>7}  capable")
        for figure, entry in study["figures"].items():
            r = entry["type1"]
            print(
                f"{figure:<{width}}{r.mean:>10.4f}{r.sd:>10.4f}{r.bias:>+10.4f}{r.bias_p_value:>9.3f}"
                f"{r.cg:>7.2f}{r.cgk:>7.2f}  {'yes' if r.capable else 'no'}"
            )
    print(f"msa type1: {out}")
