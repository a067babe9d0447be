"""pytest plugin of the bench (registered as the ``rig`` pytest11 entry point).

Options: ``--station PATH`` (default: the twin station), ``--unit`` (twin unit), ``--unit-serial``, ``--lens``,
``--reports DIR``, ``--run-id``, ``--resume RUN_ID``, ``--operator``, ``--store URL``, ``--calibration-dir DIR``.
Fixtures: ``station``, ``lenses``, ``bench_devices`` (opened devices), ``stage``, ``light``, ``phone``,
``operator``, ``lens``, ``unit_serial``, ``twin`` (the twin server, only on a twin station), ``bench``
(retrying operations), ``run`` (the run recorder) and ``measure`` (records into the current step).

A plan module declares ``PLAN = "<name>"``; its limits come from ``fixtures/limits/<name>.toml``. A test's
verdict follows OpenHTF/ITS: a limit missed is FAIL (the test still records everything else it measures), a bench
fault (:class:`~rig.errors.DeviceError`, :class:`~rig.errors.MeasurementError`) is ERROR with its reason, a
missing capability (:class:`~rig.errors.CapabilityMissing`) is SKIP.

Importing this module stays cheap: pytest loads it in every run where rig is installed.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from rig.config.lenses import LensCatalog, LensSpec
from rig.config.station import StationConfig, load_station
from rig.errors import CapabilityMissing, DeviceError, MeasurementError, RigError, RunStorageError
from rig.results.record import MeasurementRecord, Verdict, utcnow

if TYPE_CHECKING:  # the plugin loads in every pytest run where rig is installed: keep its import cheap
    from rig.bench.open import BenchDevices
    from rig.bench.ops import BenchOps
    from rig.bench.options import RunOptions
    from rig.bench.recording import RunRecorder
    from rig.config.unit import TwinUnit
    from rig.devices.protocols import Light, Operator, Phone, Stage
    from rig.twin.server import TwinServer

log = logging.getLogger(__name__)

PLAN_KEY = pytest.StashKey[str]()
PLAN_STEPS_KEY = pytest.StashKey[list[str]]()  # every step of the plan module, before any deselection
STEP_KEY = pytest.StashKey["StepState"]()
OPTIONS_KEY = pytest.StashKey["RunOptions"]()
DEFER_REPORT_KEY = pytest.StashKey[bool]()
"""Set by a caller that prints the verdict itself (``rig signoff``): the session end then writes only the verdict's
half of the outputs and leaves report.html/.pdf to the caller (:func:`rig.bench.outputs.finish_pending_report`)."""


def pytest_addoption(parser: pytest.Parser) -> None:
    from rig.bench.options import add_pytest_options

    add_pytest_options(parser.getgroup("rig", "camera bench"))


def options_of(config: pytest.Config) -> RunOptions:
    """The session's run options (one RunOptions, the same model the ``rig`` command builds)."""
    from rig.bench.options import from_pytest

    options = config.stash.get(OPTIONS_KEY, None)
    if options is None:
        options = from_pytest(config)
        config.stash[OPTIONS_KEY] = options
    return options


# ---------------------------------------------------------------------------------------------- plan discovery
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    # tryfirst: the plan's full step list is taken before -k / --deselect (pytest's own hooks) narrow it, so a
    # partial run knows what it left out
    plans = {_plan_of(item) for item in items if isinstance(item, pytest.Function)}
    plans.discard(None)
    if not plans:
        return
    if len(plans) > 1:
        raise pytest.UsageError(f"one plan per run, got {sorted(p for p in plans if p)}")
    config.stash[PLAN_KEY] = str(plans.pop())
    config.stash[PLAN_STEPS_KEY] = [step_name(item) for item in items if _is_plan_step(item)]
    options = options_of(config)
    _preflight(config, config.stash[PLAN_KEY], options)
    resume = options.resume
    if resume:
        from rig.bench.recording import RECORD_FILE
        from rig.results.record import RunRecord

        record_path = options.reports_dir / resume / RECORD_FILE
        if not record_path.is_file():
            raise pytest.UsageError(f"--resume {resume}: no run record at {record_path}")
        done = {s.name for s in RunRecord.load(record_path).steps if s.verdict is not Verdict.ERROR}
        keep = [item for item in items if step_name(item) not in done]
        deselected = [item for item in items if step_name(item) in done]
        if deselected:
            config.hook.pytest_deselected(items=deselected)
        items[:] = keep
        if not keep:  # every step done: a run killed after its last step still gets its verdict, report and row
            from rig.bench.outputs import complete_run

            complete_run(options.reports_dir / resume, store_url=options.store)


def _preflight(config: pytest.Config, plan: str, options: RunOptions) -> None:
    """Session start of a plan run: every input checked and the run's locks taken before any device opens."""
    from rig.bench.options import RUN_OPTIONS
    from rig.bench.preflight import preflight
    from rig.errors import InputError

    raw = {o.dest: config.getoption(f"rig_{o.dest}") for o in RUN_OPTIONS}
    try:
        preflight(plan, options, raw, lock=True)
    except InputError as exc:
        raise pytest.UsageError(str(exc)) from None


def pytest_unconfigure(config: pytest.Config) -> None:
    if config.stash.get(PLAN_KEY, None) is not None:
        from rig.bench import runlock

        runlock.release_all()


def step_name(item: pytest.Item) -> str:
    return item.name.removeprefix("test_")


# ---------------------------------------------------------------------------------------------- configuration
@pytest.fixture(scope="session")
def run_options(pytestconfig: pytest.Config) -> RunOptions:
    """Every option of this run (station, unit, folders, resume …), as the ``rig`` command would pass them."""
    return options_of(pytestconfig)


@pytest.fixture(scope="session")
def station_file(pytestconfig: pytest.Config) -> Path:
    return options_of(pytestconfig).station


@pytest.fixture(scope="session")
def station(station_file: Path) -> StationConfig:
    """The station file the run uses, validated."""
    return load_station(station_file)


@pytest.fixture(scope="session")
def lenses(station: StationConfig, station_file: Path) -> LensCatalog:
    from rig.config.resolve import load_station_lenses

    return load_station_lenses(station, station_file=station_file)


@pytest.fixture(scope="session")
def twin_unit(pytestconfig: pytest.Config, station: StationConfig, station_file: Path) -> TwinUnit | None:
    """The simulated unit's true parameters (twin stations only; plans never read them)."""
    if not station.is_twin:
        return None
    from rig.config.resolve import load_twin_unit

    return load_twin_unit(station, options_of(pytestconfig).unit, station_file=station_file)


@pytest.fixture(scope="session")
def unit_serial(pytestconfig: pytest.Config, station: StationConfig, twin_unit: TwinUnit | None) -> str:
    serial = options_of(pytestconfig).unit_serial or (twin_unit.serial if twin_unit is not None else None)
    return station.check_serial(serial)


@pytest.fixture(scope="session")
def lens(pytestconfig: pytest.Config, station: StationConfig, lenses: LensCatalog, station_file: Path) -> LensSpec:
    """The lens under test: ``--lens`` or the station's reference lens."""
    asked = options_of(pytestconfig).lens
    return lenses.get(asked or station.reference_lens, source="--lens" if asked else station_file, field="lens")


# ---------------------------------------------------------------------------------------------- devices
@pytest.fixture(scope="session")
def bench_devices(
    pytestconfig: pytest.Config, station: StationConfig, lenses: LensCatalog, twin_unit: TwinUnit | None
) -> Iterator[BenchDevices]:
    """The station's devices (real, or the twin's peers behind the same drivers), opened for the session, the
    stage homing from the moment they are open. The ``rig`` command opens them before pytest starts
    (:class:`rig.bench.open.BenchAhead`); they are taken from it then."""
    from rig.bench.open import BenchAhead, open_bench

    ahead = next((p for p in pytestconfig.pluginmanager.get_plugins() if isinstance(p, BenchAhead)), None)
    devices = ahead.devices() if ahead is not None else open_bench(station, lenses, unit=twin_unit)
    try:
        devices.start_homing()
        yield devices
    finally:
        devices.close()


@pytest.fixture(scope="session")
def twin(bench_devices: BenchDevices) -> TwinServer | None:
    """The twin server (its ``bench`` has the truth), or None on a real station."""
    return bench_devices.twin


@pytest.fixture(scope="session")
def stage(bench_devices: BenchDevices) -> Stage:
    return bench_devices.stage


@pytest.fixture(scope="session")
def light(bench_devices: BenchDevices) -> Light:
    return bench_devices.light


@pytest.fixture(scope="session")
def phone(bench_devices: BenchDevices) -> Phone:
    return bench_devices.phone


@pytest.fixture(scope="session")
def operator(bench_devices: BenchDevices) -> Operator:
    return bench_devices.operator


# ---------------------------------------------------------------------------------------------- recording
@pytest.fixture(scope="session")
def run(
    pytestconfig: pytest.Config, station: StationConfig, station_file: Path, unit_serial: str, lens: LensSpec
) -> RunRecorder:
    """The run recorder of a plan session (its record is saved at the end of every step)."""
    from rig.bench.recording import RunRecorder
    from rig.config.limits import load_limits

    plan = pytestconfig.stash.get(PLAN_KEY, None)
    if plan is None:
        raise pytest.UsageError("the run fixture is for plan modules (they set PLAN = '<name>')")
    limits = load_limits(plan)
    plan_steps = set(pytestconfig.stash.get(PLAN_STEPS_KEY, []))
    unknown = sorted({f"{n}.step = {lim.step!r}" for n, lim in limits.limits.items() if lim.step not in plan_steps})
    if plan_steps and unknown:  # a limit must name the step that records it, or a missing one is misreported
        raise pytest.UsageError(f"{limits.source}: {unknown[0]}: expected one of {', '.join(sorted(plan_steps))}")
    options = options_of(pytestconfig)
    reports = options.reports_dir
    resume = options.resume
    if resume:
        redo = {step_name(item) for item in pytestconfig.stash.get(_ITEMS_KEY, [])}
        recorder = RunRecorder.resume(reports / resume, limits, redo)
    else:
        recorder = RunRecorder.start(
            plan=plan,
            limits=limits,
            station=station.name,
            station_file=str(station_file),
            unit_serial=unit_serial,
            lens=lens.id,
            reports_dir=reports,
            operator=options.operator,
            run_id=options.run_id,
            config={"station": station.model_dump(mode="json"), "limits": limits.source},
        )
    if station.sensor.binning > 1:  # sharpness limits in cy/px are per read-out pitch
        recorder.zone_qualifier = f"bin{station.sensor.binning}"
    recorder.capture_retention = options.keep_captures or station.keep_captures
    recorder.use_station_uncertainty(store_url=options.store)  # ± U beside each figure once the station has an MSA
    pytestconfig.stash[_RECORDER_KEY] = recorder
    return recorder


_ITEMS_KEY = pytest.StashKey[list[pytest.Item]]()
_RECORDER_KEY = pytest.StashKey["RunRecorder"]()


def run_recorder(config: pytest.Config) -> RunRecorder | None:
    """The plan session's run recorder (None outside a plan run or before the ``run`` fixture made it)."""
    return config.stash.get(_RECORDER_KEY, None)


def pytest_collection_finish(session: pytest.Session) -> None:
    session.config.stash[_ITEMS_KEY] = list(session.items)


@pytest.fixture(scope="session")
def bench(
    station: StationConfig, run: RunRecorder, bench_devices: BenchDevices, run_options: RunOptions
) -> Iterator[BenchOps]:
    """Retrying bench operations (place a chart, shoot a validated frame) recording captures into the run."""
    from rig.bench.ops import BenchOps
    from rig.bench.pipeline import PipelineMode

    twin = bench_devices.twin
    # from the twin's start: the homing begun as the devices opened is the first step's hardware, which waits for it
    run.attach_hardware_clock(twin.bench.hardware.total_s if twin is not None else None, mark_s=0.0)
    ops = BenchOps.on(bench_devices, recorder=run, pipeline=run_options.pipeline or PipelineMode.ON)
    yield ops
    with contextlib.suppress(RunStorageError):  # a refused write was the step's ERROR already (makereport)
        ops.close()


@dataclass
class StepState:
    name: str
    started: datetime
    measurements: list[MeasurementRecord] = field(default_factory=list)
    attachments: list[str] = field(default_factory=list)


class StepMeasurements:
    """The ``measure`` fixture: record numbers of the current step against the plan's limits."""

    def __init__(self, recorder: RunRecorder, state: StepState) -> None:
        self._recorder = recorder
        self._state = state

    @property
    def step(self) -> str:
        return self._state.name

    def __call__(
        self,
        name: str,
        value: float | None,
        *,
        zone: str | None = None,
        captures: Any = (),
        error: str | None = None,
        readout_binning: int | None = None,
    ) -> MeasurementRecord:
        """Record ``value``; ``readout_binning`` when it was measured on other pixels than the station's read-out
        (1: native-pitch windows), whose limits it is then judged by (:meth:`RunRecorder.measure`)."""
        rec = self._recorder.measure(
            self._state.name, name, value, zone=zone, captures=captures, error=error, readout_binning=readout_binning
        )
        self._state.measurements.append(rec)
        return rec

    def skip(self, name: str, reason: str, *, zone: str | None = None) -> MeasurementRecord:
        """Record a declared measurement as not applicable to this unit or lens (SKIP, with the reason)."""
        rec = self._recorder.skip(self._state.name, name, reason, zone=zone)
        self._state.measurements.append(rec)
        return rec

    def attach(self, relative: str, data: bytes) -> str:
        path = self._recorder.save_file(relative, data)
        self._state.attachments.append(path)
        return path


def _is_plan_step(item: pytest.Item) -> bool:
    return isinstance(item, pytest.Function) and _plan_of(item) is not None


def _plan_of(item: pytest.Item) -> str | None:
    """The plan a test belongs to: its module's ``PLAN`` name (a string; anything else is not a plan module)."""
    plan = getattr(getattr(item, "module", None), "PLAN", None)
    return plan if isinstance(plan, str) else None


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    # before any fixture: a step whose shared captures fail while being set up is still an ERROR in the record
    if _is_plan_step(item):
        item.stash[STEP_KEY] = StepState(name=step_name(item), started=utcnow())


@pytest.fixture
def measure(request: pytest.FixtureRequest, run: RunRecorder) -> StepMeasurements:
    state = request.node.stash.get(STEP_KEY, None)
    if state is None:
        state = StepState(name=step_name(request.node), started=utcnow())
        request.node.stash[STEP_KEY] = state
    return StepMeasurements(run, state)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    state = item.stash.get(STEP_KEY, None)
    # the captures of the step's call (and of its fixtures' setup) are written behind the bench: the step's end
    # waits for them, so a refused write ends this step ERROR; a setup that failed or skipped has no call after it
    ends_step = report.when == "call" or (report.when == "setup" and (report.failed or report.skipped))
    unwritten = _unwritten_captures(item) if state is not None and ends_step else None
    if state is None or report.when != "call":
        if state is not None and report.when == "setup" and report.failed:
            _finish_step(item, state, Verdict.ERROR, _reason(call.excinfo))
        elif state is not None and report.when == "setup" and report.skipped:  # e.g. a profile not written
            _finish_step(item, state, Verdict.SKIP, _skip_reason(call.excinfo))
        return
    failures = [m for m in state.measurements if m.verdict is Verdict.FAIL]
    errors = [m for m in state.measurements if m.verdict is Verdict.ERROR]
    if call.excinfo is not None:
        exc = call.excinfo.value
        if isinstance(exc, CapabilityMissing) or call.excinfo.errisinstance(pytest.skip.Exception):
            _finish_step(item, state, Verdict.SKIP, _reason(call.excinfo))
        else:
            reason = _reason(call.excinfo)
            if not isinstance(exc, DeviceError | MeasurementError | RigError):
                reason = f"bench software error: {reason}"
            _finish_step(item, state, Verdict.ERROR, reason)
            report.longrepr = f"ERROR {state.name}: {reason}" if isinstance(exc, RigError) else report.longrepr
        return
    if unwritten is not None:
        _finish_step(item, state, Verdict.ERROR, unwritten)
        report.outcome = "failed"
        report.longrepr = f"ERROR {state.name}: {unwritten}"
        return
    if failures or errors:
        lines = [_describe(m) for m in failures + errors]
        verdict = Verdict.ERROR if errors else Verdict.FAIL
        _finish_step(item, state, verdict, "; ".join(lines))
        report.outcome = "failed"
        report.longrepr = f"{verdict.value} {state.name}: " + "; ".join(lines)
    else:
        _finish_step(item, state, Verdict.PASS, None)


def _describe(m: MeasurementRecord) -> str:
    where = f" [{m.zone}]" if m.zone else ""
    if m.value is None:
        return f"{m.name}{where}: not measured ({m.error})"
    return f"{m.name}{where} = {m.value:.4g} {m.unit} outside [{m.low}, {m.high}]"


def _skip_reason(excinfo: pytest.ExceptionInfo[BaseException] | None) -> str:
    if excinfo is None:
        return ""
    return str(getattr(excinfo.value, "msg", "") or excinfo.value).strip() or type(excinfo.value).__name__


def _reason(excinfo: pytest.ExceptionInfo[BaseException] | None) -> str:
    if excinfo is None:
        return ""
    exc = excinfo.value
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _finish_step(item: pytest.Item, state: StepState, verdict: Verdict, error: str | None) -> None:
    recorder = item.config.stash.get(_RECORDER_KEY, None)
    if recorder is None:
        return
    bench = _bench_of(item)
    retries = bench.retries.count if bench is not None else 0
    if bench is not None and bench.retries.events:
        error = "; ".join(filter(None, [error, *bench.retries.events]))
        bench.retries.clear()
    with contextlib.suppress(RunStorageError):  # recorder.storage_error holds it; the run stops below
        recorder.step(
            state.name,
            verdict,
            started=state.started,
            ended=utcnow(),
            error=error,
            retries=retries,
            attachments=state.attachments,
        )
    if recorder.storage_error is not None:
        # nothing more can be recorded: the bench stops now rather than measure what no record will hold
        item.session.shouldstop = str(recorder.storage_error)


def deselected_steps(session: pytest.Session, recorder: RunRecorder) -> list[str]:
    """The plan's steps this session neither ran nor had completed in the run it resumes (-k, --deselect)."""
    every = session.config.stash.get(PLAN_STEPS_KEY, [])
    selected = {step_name(item) for item in session.config.stash.get(_ITEMS_KEY, [])}
    return [s for s in every if s not in selected and s not in recorder.completed_steps()]


def _unwritten_captures(item: pytest.Item) -> str | None:
    """Wait for the step's captures to be written (BenchOps writes them behind the bench); the reason if one was
    refused (the recorder also keeps it as the run's reason to stop)."""
    bench = _bench_of(item)
    if bench is None:
        return None
    try:
        bench.settle_writes()
    except RunStorageError as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def _bench_of(item: pytest.Item) -> BenchOps | None:
    funcargs = getattr(item, "funcargs", {})
    return funcargs.get("bench")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    recorder = session.config.stash.get(_RECORDER_KEY, None)
    if recorder is None:
        return
    with contextlib.suppress(RunStorageError):
        recorder.finish(deselected=deselected_steps(session, recorder))
    if recorder.storage_error is not None:
        # no report or store row from a record that is not on disk: the outputs are derived from the saved record,
        # and --resume publishes them once the folder takes writes again
        return
    from rig.bench.outputs import publish_run

    publish_run(
        recorder,
        store_url=options_of(session.config).store,
        defer_report=session.config.stash.get(DEFER_REPORT_KEY, False),
    )
