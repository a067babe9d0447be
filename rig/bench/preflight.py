"""Pre-flight: everything a plan run depends on, resolved and validated before the first device moves.

The ``rig`` command runs :func:`preflight` in its up-front check, and the pytest plugin runs it again at session
start (a plain ``pytest --pyargs rig.plans.signoff`` gets the same check), so a mistake in a station, lens
catalogue, limits file, unit file, option or folder is one :class:`~rig.errors.InputError` line, never an ERROR
found after the bench has run for minutes. What is checked:

- the station file (its schema, every number finite, timeouts bounded, sensor geometry within bounds), its lens
  catalogue, the reference lens and its f-number, the twin unit and its lens and f-number, the twin seed;
- the limits file has a limit for every measurement the plan records, and the station's carousel has a finite
  slot on the carousel for every chart the plan shoots (both read from the plan's source, see
  :func:`plan_requirements`);
- the unit serial matches the station's pattern (bounded matching, :meth:`StationConfig.check_serial`) and is a
  plain folder name; ``--run-id`` / ``--resume`` are plain run ids, a resumed run exists, is readable and belongs
  to this plan, and its folder takes writes; ``""`` is refused instead of meaning "a new run";
- the reports folder is (or can be made) a writable folder, the calibration folder is not a file, the results
  store URL is usable (an existing SQLite file, or a new file in an existing folder);
- no other process is running the same run or the same unit on this station (:mod:`rig.bench.runlock`).
"""

from __future__ import annotations

import ast
import importlib.util
import math
import os
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from rig.bench import runlock
from rig.bench.options import RunOptions
from rig.bench.recording import RECORD_FILE, SERIAL_NAME_PATTERN, check_resume_revision, check_run_id
from rig.config.lenses import LensCatalog, LensSpec
from rig.config.limits import LimitSet, load_limits
from rig.config.resolve import load_station_lenses, load_twin_unit
from rig.config.station import StationConfig, load_station
from rig.config.unit import TwinUnit
from rig.errors import MISSING, ArgumentError, ConfigError, FileInputError
from rig.results.record import RunRecord

MAX_TIMEOUT_S = 24 * 3600.0
"""Longest device timeout a station may set: a day (``inf`` or 1e300 s would overflow the drivers' clocks)."""
MAX_TWIN_SEED = 2**32 - 1
"""Largest twin seed (numpy's legacy seeding takes 32 bits; a negative seed is refused)."""
PLANS_PACKAGE = "rig.plans"
PROCEDURES_MODULE = "rig.bench.procedures"


@dataclass(frozen=True)
class PlanRequirements:
    """What a plan's source says it needs: the measurement names it records, the charts it shoots, its steps."""

    measurements: frozenset[str]
    charts: frozenset[str]
    steps: tuple[str, ...]


@dataclass(frozen=True)
class Preflight:
    """Everything a run reads, resolved."""

    plan: str
    options: RunOptions
    station: StationConfig
    lenses: LensCatalog
    limits: LimitSet
    lens: LensSpec
    unit: TwinUnit | None
    serial: str
    reports_dir: Path


def preflight(plan: str, options: RunOptions, raw: Mapping[str, Any] | None = None, *, lock: bool = False) -> Preflight:
    """Validate every input of a ``plan`` run; the first problem raises one :class:`~rig.errors.InputError` line.

    Parameters
    ----------
    plan
        The plan name (``signoff``, ``calibration``, ``certification``).
    options
        The resolved run options.
    raw
        The option values as typed (argparse or pytest), to tell ``--resume ""`` from no ``--resume`` at all.
    lock
        Take the run's locks (the unit on this station, and a resumed run) for this process; without it the
        locks are only probed.
    """
    _check_raw(raw or {})
    station_file = options.station
    station = load_station(station_file)
    _check_station(station, station_file)
    lenses = load_station_lenses(station, station_file=station_file)
    reference = lenses.get(station.reference_lens, source=station_file, field="reference_lens")
    _check_f_number(station.reference_f_number, reference, station_file, "reference_f_number")
    needs = plan_requirements(plan)
    limits = load_limits(plan)
    _check_limits(limits, needs, plan)
    _check_charts(station, needs, station_file)
    unit: TwinUnit | None = None
    if options.unit and not station.is_twin:
        raise ArgumentError(f"--unit {options.unit}: only a twin station has simulated units; use --unit-serial")
    if station.is_twin:
        unit = load_twin_unit(station, options.unit, station_file=station_file)
        unit_source = options.unit or (station.twin.unit if station.twin else "unit")
        unit_lens = lenses.get(unit.lens.id, source=unit_source, field="lens.id")
        if unit.lens.f_number is not None:
            _check_f_number(unit.lens.f_number, unit_lens, unit_source, "lens.f_number")
        seed = station.twin.seed if station.twin else 0
        if not 0 <= seed <= MAX_TWIN_SEED:
            raise ConfigError(station_file, "twin.seed", seed, f"an integer in [0, {MAX_TWIN_SEED}]")
    serial = station.check_serial(options.unit_serial or (unit.serial if unit is not None else None))
    if not SERIAL_NAME_PATTERN.fullmatch(serial):
        raise ArgumentError(
            f"unit serial {serial!r}: expected letters, digits, '.', '_' and '-' only (it names the run folder; "
            f"station {station.name}'s serial_pattern {station.serial_pattern!r} is too permissive)"
        )
    lens = reference
    if options.lens:
        lens = lenses.get(options.lens, source="--lens", field="lens")
    reports = options.reports_dir
    if reports.exists() and not reports.is_dir():
        raise FileInputError(reports, "--reports names a file: expected a folder")
    if options.run_id:
        check_run_id(options.run_id, source="--run-id")
        if (reports / options.run_id).exists():
            raise ArgumentError(f"--run-id {options.run_id}: the run folder {reports / options.run_id} already exists")
    if options.resume:
        _check_resume(options.resume, reports, plan, needs, limits)
    calibration = options.calibration_dir
    if calibration is not None and calibration.exists() and not calibration.is_dir():
        raise ArgumentError(f"--calibration-dir {options.calibration_dir}: expected a folder, found a file")
    if options.store:
        from rig.results.store import check_store_url

        check_store_url(options.store)
    writable_folder(reports, "--reports")  # last: a run refused for any other reason leaves no folder behind
    _locks(station.name, serial, options.resume, reports, take=lock)
    return Preflight(plan, options, station, lenses, limits, lens, unit, serial, reports)


# --------------------------------------------------------------------------------------------- plan source
@cache
def plan_requirements(plan: str) -> PlanRequirements:
    """The measurement names, chart slots and steps of a plan, read from its source (nothing is imported).

    A measurement is the first argument of a ``measure("name", …)`` call, a chart a ``chart="name"`` keyword,
    a step a ``test_*`` function; charts shot by the shared procedures (:mod:`rig.bench.procedures`) count too.
    """
    tree = _parse(f"{PLANS_PACKAGE}.{plan}")
    measurements: set[str] = set()
    charts = set(_charts(_parse(PROCEDURES_MODULE)))
    for node in ast.walk(tree):
        if _is_call_of(node, "measure") and node.args and _literal(node.args[0]) is not None:
            measurements.add(_literal(node.args[0]))
    charts.update(_charts(tree))
    steps = tuple(
        n.name.removeprefix("test_") for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")
    )
    return PlanRequirements(frozenset(measurements), frozenset(charts), steps)


def _parse(module: str) -> ast.Module:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise ArgumentError(f"plan module {module}: not found")
    return ast.parse(Path(spec.origin).read_text(encoding="utf-8"))


def _charts(tree: ast.Module) -> Iterator[str]:
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "chart" and _literal(node.value) is not None:
            yield _literal(node.value)


def _is_call_of(node: ast.AST, name: str) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == name


def _literal(node: ast.AST) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


# --------------------------------------------------------------------------------------------- checks
def _check_raw(raw: Mapping[str, Any]) -> None:
    """An option given as ``""`` is refused: it would otherwise silently mean its default (a new run for
    ``--resume ""``, the shipped twin station for ``--station ""``)."""
    from rig.bench.options import RUN_OPTIONS

    for option in RUN_OPTIONS:
        value = raw.get(option.dest)
        if option.dest != "operator" and isinstance(value, str) and not value.strip():
            raise ArgumentError(
                f"{option.flag} {value!r}: expected a value (an empty {option.flag} is not the default)"
            )


def _finite_numbers(value: Any, path: str) -> Iterator[tuple[str, float]]:
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from _finite_numbers(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            yield from _finite_numbers(item, f"{path}[{i}]")
    elif isinstance(value, float) and not math.isfinite(value):
        yield path, value


def _check_station(station: StationConfig, source: Path) -> None:
    for field, value in _finite_numbers(station.model_dump(), ""):
        raise ConfigError(source, field, value, "a finite number")
    timeouts = {
        "stage.timeout_s": station.stage.timeout_s,
        "stage.move_timeout_s": station.stage.move_timeout_s,
        "phone.timeout_s": station.phone.timeout_s,
        "phone.lens_change_timeout_s": station.phone.lens_change_timeout_s,
    }
    for field, value in timeouts.items():
        if not 0 < value <= MAX_TIMEOUT_S:
            raise ConfigError(source, field, value, f"a timeout in (0, {MAX_TIMEOUT_S:g}] s")


def _check_f_number(f_number: float, lens: LensSpec, source: str | Path, field: str) -> None:
    widest, narrowest = lens.max_f_number, lens.f_numbers[-1]
    if not widest - 1e-9 <= f_number <= narrowest + 1e-9:
        raise ConfigError(source, field, f_number, f"an aperture of {lens.id} within f/{widest:g} … f/{narrowest:g}")


def _check_limits(limits: LimitSet, needs: PlanRequirements, plan: str) -> None:
    for name in sorted(needs.measurements):
        if name not in limits:
            raise ConfigError(limits.source, name, MISSING, f"a limit for {name} (the {plan} plan records it)")


def _check_charts(station: StationConfig, needs: PlanRequirements, source: Path) -> None:
    slots = station.carousel.slots
    for chart in sorted(needs.charts):
        if chart not in slots:
            raise ConfigError(source, f"carousel.slots.{chart}", MISSING, "a carousel slot for a chart the plan shoots")
    for chart, position in slots.items():
        if not (math.isfinite(position) and 0 <= position <= station.carousel.max_mm):
            raise ConfigError(
                source, f"carousel.slots.{chart}", position, f"a position within [0, {station.carousel.max_mm:g}] mm"
            )


def _check_resume(run_id: str, reports: Path, plan: str, needs: PlanRequirements, limits: LimitSet) -> None:
    check_run_id(run_id, source="--resume")
    path = reports / run_id / RECORD_FILE
    if not path.is_file():
        raise ArgumentError(f"--resume {run_id}: no run record at {path}")
    record = RunRecord.load(path)
    if record.plan != plan:
        raise ArgumentError(f"--resume {run_id}: the run is a {record.plan} run, not {plan}")
    if record.run_id != run_id:
        raise ConfigError(path, "run_id", record.run_id, f"{run_id!r} (the record's folder name)")
    check_resume_revision(record, limits)
    writable_folder(path.parent, "--resume")  # the resumed run rewrites its record there after every measurement


def writable_folder(folder: Path, flag: str) -> None:
    """``folder`` exists (it is created) and a file can be created in it; else one :class:`FileInputError`."""
    if folder.exists() and not folder.is_dir():
        raise FileInputError(folder, f"{flag} names a file: expected a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".rig-write-check-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise FileInputError(folder, f"{flag} is not a writable folder ({exc.strerror or exc})") from None


def _locks(station: str, serial: str, resume: str | None, reports: Path, *, take: bool) -> None:
    wanted = [(runlock.unit_lock_path(reports, station, serial), f"a run of unit {serial} on station {station}")]
    if resume:
        wanted.append((runlock.run_lock_path(reports, resume), f"run {resume}"))
    for path, what in wanted:
        if take:
            runlock.acquire(path, what)
        else:
            runlock.probe(path, what)
