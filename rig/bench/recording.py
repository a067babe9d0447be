"""Recording measurements against declared limits into the run record, as they are taken.

The record on disk is rewritten (atomically: temp file, fsync, rename) once per step, when the step ends, with
everything the step measured and attached (issue #17: an fsync per measurement cost ~0.7 s per sign-off). A fault
ends its step as ERROR through the same write, so nothing measured before it is lost (issue #8); a process killed
mid-step loses only that step's unfinished work, which ``--resume`` re-runs (it continues from the first step
not completed), and a kill between steps loses nothing.

Once the station has an accepted measurement system analysis (``rig msa grr``), every figure it covers is
recorded with its expanded uncertainty U (k = 2) and the study it comes from
(:meth:`RunRecorder.use_station_uncertainty`, issue #18), and a limit with ``decision_rule = "iso14253"`` is
judged with that U (:mod:`rig.results.decision`).
Without a study nothing changes: no U, plain limits, and an ISO rule that could not be applied says so.
"""

from __future__ import annotations

import logging
import math
import re
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from rig import __version__
from rig.bench import runlock
from rig.bench.pipeline import analysis_cpu_s
from rig.config.limits import DecisionRule, Limit, LimitSet
from rig.errors import ArgumentError, ConfigError, RunStorageError
from rig.results.decision import Decision, judge_with_uncertainty
from rig.results.record import (
    MeasurementRecord,
    PlanOutcome,
    RunRecord,
    StepAttempt,
    StepRecord,
    Uncertainty,
    Verdict,
    atomic_write_bytes,
    utcnow,
)
from rig.results.reportdata import REPORT_DATA_FILE, Plot, ReportData, Thumbnail
from rig.spec.types import CaptureRetention

log = logging.getLogger(__name__)

RECORD_FILE = "record.json"
CAPTURES_DIR = "captures"


def git_sha(repo: Path | None = None) -> str | None:
    """The source tree's commit, when rig runs from a git checkout (proof of what code measured)."""
    repo = repo or Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    sha = out.stdout.strip()
    return sha if out.returncode == 0 and re.fullmatch(r"[0-9a-f]{40}", sha) else None


SERIAL_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
"""A unit serial names its run folders: whatever a station's own pattern allows, it must be a plain name."""
RUN_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
"""A run id is one folder name: no separators, no leading dot, nothing a shell or a file system reads specially."""


def check_run_id(run_id: str, *, source: str = "run id") -> str:
    """``run_id`` if it is a plain folder name (so a run folder can only be created inside the reports folder)."""
    if not RUN_ID_PATTERN.fullmatch(run_id) or run_id in {".", ".."}:
        raise ArgumentError(
            f"{source} {run_id!r}: expected a run id of letters, digits, '.', '_' and '-' (a folder name in the "
            "reports folder, not a path)"
        )
    return run_id


def new_run_id(unit_serial: str, plan: str, started: datetime) -> str:
    """``<UTC time>-<serial>-<plan>-<random>``: sortable by start, unique even for one serial in one second on
    several stations (8 hex digits of a random UUID: a collision needs ~65 000 runs in the same second)."""
    if not SERIAL_NAME_PATTERN.fullmatch(unit_serial):
        raise ArgumentError(
            f"unit serial {unit_serial!r}: expected letters, digits, '.', '_' and '-' only (it names the run folder)"
        )
    run_id = f"{started.strftime('%Y%m%dT%H%M%S')}-{unit_serial}-{plan}-{uuid.uuid4().hex[:8]}"
    return check_run_id(run_id, source=f"run id of serial {unit_serial!r}")


def check_resume_revision(record: RunRecord, limits: LimitSet) -> None:
    """Refuse to resume a run under another limits revision: one run is judged by one limit set (SPC scopes by it).

    A record from before limits had revisions (``limits_revision`` None) takes the current one.
    """
    if record.limits_revision not in (None, limits.revision):
        raise ArgumentError(
            f"--resume {record.run_id}: judged against limits revision {record.limits_revision}, the limits are "
            f"now revision {limits.revision} ({limits.source}); start a new run"
        )


class RunRecorder:
    """Owns one run's record and folder; every write is atomic."""

    def __init__(
        self,
        record: RunRecord,
        run_dir: Path,
        limits: LimitSet,
        plots: ReportData | None = None,
        *,
        zone_qualifier: str | None = None,
    ) -> None:
        self.record = record
        self.capture_retention: CaptureRetention | None = None
        """Raw captures to keep once the run is published (None: all; the plugin sets the station's policy)."""
        # limits that depend on the readout (MTF50 in cy/px at a binned pitch) are looked up as "<qualifier>:<zone>"
        self.zone_qualifier = zone_qualifier
        self.run_dir = run_dir
        self.limits = limits
        self.plots = plots or ReportData()
        self._superseded: dict[str, list[StepAttempt]] = {}  # attempts a resumed run re-runs, by step
        self.uncertainty: dict[str, Uncertainty] = {}
        """U of each figure (by :attr:`MeasurementRecord.key`) from the station's accepted MSA studies."""
        self._plots_dirty = False  # plots/thumbnails added since the last flush
        self.hardware_clock: Callable[[], float] | None = None
        """Seconds of bench hardware time spent so far (the twin's cost ledger; None on a bench that cannot tell):
        each step records the hardware time spent since the previous step ended."""
        self._hardware_mark_s: float | None = None
        self._cpu_mark_s = _cpu_now()
        self.storage_error: RunStorageError | None = None
        """Set when the run folder stopped taking writes: the run must stop (the record on disk is the last saved)."""
        self._measurements_saved = 0
        run_dir.mkdir(parents=True, exist_ok=True)
        self.save()

    # ------------------------------------------------------------------ construction
    @classmethod
    def start(
        cls,
        *,
        plan: str,
        limits: LimitSet,
        station: str,
        station_file: str | None,
        unit_serial: str,
        lens: str | None,
        reports_dir: Path,
        operator: str = "",
        config: dict[str, Any] | None = None,
        run_id: str | None = None,
    ) -> RunRecorder:
        """A new run in a new folder ``reports_dir/run_id``: created exclusively (never an existing run's folder),
        with the unit on this station and the run itself locked for this process (:mod:`rig.bench.runlock`)."""
        started = utcnow()
        run_id = check_run_id(run_id, source="--run-id") if run_id else new_run_id(unit_serial, plan, started)
        runlock.acquire(runlock.unit_lock_path(reports_dir, station, unit_serial), f"unit {unit_serial} on {station}")
        runlock.acquire(runlock.run_lock_path(reports_dir, run_id), f"run {run_id}")
        run_dir = reports_dir / run_id
        reports_dir.mkdir(parents=True, exist_ok=True)
        try:
            run_dir.mkdir()
        except FileExistsError:
            raise ArgumentError(
                f"run folder {run_dir}: already exists (a run id is used once; --resume continues it)"
            ) from None
        record = RunRecord(
            run_id=run_id,
            plan=plan,
            station=station,
            station_file=station_file,
            software_version=__version__,
            git_sha=git_sha(),
            operator=operator or _default_operator(),
            unit_serial=unit_serial,
            lens=lens,
            limits_revision=limits.revision,
            started=started,
            config=config or {},
        )
        return cls(record, run_dir, limits)

    @classmethod
    def resume(cls, run_dir: Path, limits: LimitSet, redo_steps: Iterable[str]) -> RunRecorder:
        """Continue a run: keep completed steps and their measurements, forget those about to be re-run.

        What the re-run supersedes becomes history, not a current error: each step to redo keeps its earlier
        attempts (verdict, reason) for the report ("attempt 1: ERROR …, resumed: PASS"); the run's errors keep only
        those of steps not re-run; measurements the last finish added for what was not measured are dropped (the
        next finish judges again what is still missing).

        The run and its unit are locked for this process first: a second resume of the same run is refused.
        """
        path = run_dir / RECORD_FILE
        if not path.is_file():
            raise ConfigError(path, "", "(missing)", "the record.json of the run to resume")
        reports_dir = run_dir.parent
        runlock.acquire(runlock.run_lock_path(reports_dir, run_dir.name), f"run {run_dir.name}")
        record = RunRecord.load(path)
        runlock.acquire(
            runlock.unit_lock_path(reports_dir, record.station, record.unit_serial),
            f"unit {record.unit_serial} on {record.station}",
        )
        check_resume_revision(record, limits)
        record.limits_revision = limits.revision
        redo = set(redo_steps)
        recorder = cls(record, run_dir, limits, _load_plots(run_dir))
        recorder._superseded = {
            s.name: [*s.attempts, StepAttempt(verdict=s.verdict, started=s.started, ended=s.ended, error=s.error)]
            for s in record.steps
            if s.name in redo
        }
        record.measurements = [m for m in record.measurements if m.step not in redo and not _is_missing_entry(m)]
        record.steps = [s for s in record.steps if s.name not in redo]
        record.errors = [e for e in record.errors if e.split(":", 1)[0] not in redo]
        record.ended = None
        record.verdict = None
        record.history.append(f"resumed at {utcnow().isoformat()} (re-running: {', '.join(sorted(redo)) or 'none'})")
        recorder.save()
        return recorder

    # ------------------------------------------------------------------ recording
    def measure(
        self,
        step: str,
        name: str,
        value: float | None,
        *,
        zone: str | None = None,
        captures: Iterable[str] = (),
        error: str | None = None,
        readout_binning: int | None = None,
    ) -> MeasurementRecord:
        """Judge ``value`` against the declared limit of ``name`` (and ``zone``) and record it.

        ``readout_binning``: the binning of the pixels the figure was measured on when it is not the station's
        (1: native-pitch windows), which picks the readout's limits (``bin<N>:<zone>``, plain for native).
        """
        limit = self.limits.get(name)
        bounds = limit.for_zone(self._zone_key(zone, readout_binning))
        number = None if value is None else float(value)
        if number is not None and not math.isfinite(number):
            error = error or f"not a finite number ({number})"
            number = None
        verdict = MeasurementRecord.judge(number, bounds.low, bounds.high)
        marginal = verdict is Verdict.PASS and MeasurementRecord.in_marginal_band(number, *bounds.marginal_bounds())
        key = f"{name}[{zone}]" if zone else name
        uncertainty = self.uncertainty.get(key)
        judged = _judged_by_rule(
            self.limits.rule_for(name), number, verdict, marginal, bounds.low, bounds.high, uncertainty, key=key
        )
        if number is None and error is None:
            error = "no value"
        rec = MeasurementRecord(
            name=name,
            step=step,
            zone=zone,
            value=number,
            unit=limit.unit,
            low=bounds.low,
            high=bounds.high,
            verdict=judged.verdict,
            marginal=judged.marginal,
            uncertainty=uncertainty,
            decision_rule=judged.rule,
            decision=judged.decision,
            decision_note=judged.note,
            doc=limit.doc,
            captures=list(captures),
            error=error,
        )
        self.record.measurements.append(rec)  # saved with its step (flush)
        return rec

    def use_station_uncertainty(self, *, store_url: str | None) -> None:
        """Record each figure with the U of the station's latest accepted MSA in the results store (the run's
        store: ``store_url``, else ``results.sqlite`` in the reports folder, where :func:`publish_run` writes).

        A store that cannot be read costs no measurement: the run goes on without U and its history says why.
        """
        from rig.results.msa_store import load_run_uncertainty

        url = store_url or str(self.run_dir.parent / "results.sqlite")
        self.uncertainty, problem = load_run_uncertainty(url, self.record.station)
        if problem:
            log.warning("%s: %s", self.record.run_id, problem)
            self.record.history.append(problem)
            self.save()

    def _zone_key(self, zone: str | None, readout_binning: int | None = None) -> str | None:
        """The key a zone's limits are looked up by: ``<readout qualifier>:<zone>`` where limits depend on it (the
        station's read-out, or ``readout_binning``'s: none at the native pitch)."""
        if readout_binning is None:
            qualifier = self.zone_qualifier
        else:
            qualifier = f"bin{readout_binning}" if readout_binning > 1 else None
        return f"{qualifier}:{zone}" if qualifier and zone else zone

    def skip(self, step: str, name: str, reason: str, *, zone: str | None = None) -> MeasurementRecord:
        """Record that a declared measurement does not apply to this unit or lens (SKIP, with the reason)."""
        limit = self.limits.get(name)
        bounds = limit.for_zone(self._zone_key(zone))
        rec = MeasurementRecord(
            name=name,
            step=step,
            zone=zone,
            value=None,
            unit=limit.unit,
            low=bounds.low,
            high=bounds.high,
            verdict=Verdict.SKIP,
            doc=limit.doc,
            error=reason,
        )
        self.record.measurements.append(rec)  # saved with its step (flush)
        return rec

    def attach_hardware_clock(self, clock: Callable[[], float] | None, *, mark_s: float | None = None) -> None:
        """Read bench hardware time from ``clock`` (s, monotonic); the next step counts from ``mark_s`` on that
        clock (default: now)."""
        self.hardware_clock = clock
        self._hardware_mark_s = None if clock is None else clock() if mark_s is None else mark_s

    def _step_costs(self) -> tuple[float | None, float]:
        """(hardware s, CPU s) since the previous step ended, and a new mark for the next step."""
        cpu_now = _cpu_now()
        cpu_s, self._cpu_mark_s = cpu_now - self._cpu_mark_s, cpu_now
        if self.hardware_clock is None or self._hardware_mark_s is None:
            return None, cpu_s
        now = self.hardware_clock()
        hardware_s, self._hardware_mark_s = now - self._hardware_mark_s, now
        return hardware_s, cpu_s

    def step(
        self,
        name: str,
        verdict: Verdict,
        *,
        started: datetime,
        ended: datetime,
        error: str | None = None,
        retries: int = 0,
        attachments: Iterable[str] = (),
    ) -> StepRecord:
        """Record the end of step ``name`` and write the record (and report data) with everything it measured."""
        hardware_s, cpu_s = self._step_costs()
        rec = StepRecord(
            name=name,
            verdict=verdict,
            started=started,
            ended=ended,
            error=error,
            retries=retries,
            attachments=list(attachments),
            attempts=self._superseded.get(name, []),
            wall_s=(ended - started).total_seconds(),
            hardware_s=hardware_s,
            cpu_s=cpu_s,
        )
        self.record.steps = [s for s in self.record.steps if s.name != name] + [rec]
        if error and verdict is Verdict.ERROR:
            self.record.errors.append(f"{name}: {error}")
        self.flush()
        return rec

    def flush(self) -> None:
        """Write the record and, when plots or thumbnails were added since, the report data (both atomically)."""
        if self._plots_dirty:
            self._save_plots()
            self._plots_dirty = False
        self.save()

    def set_outcome(self, outcome: PlanOutcome) -> None:
        """The plan's own answer (certificate level, calibration verdict), saved with the record at once."""
        self.record.outcome = outcome
        self.flush()

    def save_file(self, relative: str, data: bytes) -> str:
        """Store a capture or attachment in the run folder (atomically); returns its relative path."""
        try:
            atomic_write_bytes(self.run_dir / relative, data)
        except OSError as exc:
            raise self._storage_lost(relative, exc) from None
        return relative

    def add_plot(self, plot: Plot) -> None:
        """Attach a curve, map or check table for the report (replacing one of the same name)."""
        self.plots.plots = [p for p in self.plots.plots if p.name != plot.name] + [plot]
        self._plots_dirty = True  # saved with its step (flush)

    def add_thumbnail(self, relative_png: str, caption: str) -> None:
        self.plots.thumbnails = [t for t in self.plots.thumbnails if t.path != relative_png]
        self.plots.thumbnails.append(Thumbnail(path=relative_png, caption=caption))
        self._plots_dirty = True  # saved with its step (flush)

    def _save_plots(self) -> None:
        try:
            self.plots.save(self.run_dir / REPORT_DATA_FILE)
        except OSError as exc:
            raise self._storage_lost(REPORT_DATA_FILE, exc) from None

    def completed_steps(self) -> set[str]:
        return {s.name for s in self.record.steps if s.verdict is not Verdict.ERROR}

    def finish(self, *, deselected: Iterable[str] = ()) -> Verdict:
        """End the run: what was declared but not measured is recorded, then the verdict is combined.

        Every limit of the plan's limit set (and each field zone it declares) without a recorded measurement is
        recorded as ERROR with the reason (:func:`missing_reason`), or as SKIP when its step was skipped as not
        applicable; a step that did not record all its measurements ends ERROR. ``deselected``: the plan's steps
        this run did not select (``-k``, ``--deselect``): the run is partial and can never be PASS.
        """
        left_out = sorted(set(deselected))
        self.record.deselected = left_out
        self.record.partial = bool(left_out)
        self.record.measurements = [m for m in self.record.measurements if not _is_missing_entry(m)]
        steps = {s.name: s for s in self.record.steps}
        unrecorded: dict[str, list[str]] = {}
        for missing in self.missing_measurements():
            name, zone, limit = missing
            step = steps.get(limit.step) if limit.step else None
            verdict, reason = missing_reason(limit.step, step, deselected=limit.step in left_out)
            bounds = limit.for_zone(self._zone_key(zone))
            self.record.measurements.append(
                MeasurementRecord(
                    name=name,
                    step=limit.step or "",
                    zone=zone,
                    value=None,
                    unit=limit.unit,
                    low=bounds.low,
                    high=bounds.high,
                    verdict=verdict,
                    doc=limit.doc,
                    error=reason,
                )
            )
            if step is not None and step.verdict in (Verdict.PASS, Verdict.FAIL, Verdict.INFO):
                unrecorded.setdefault(step.name, []).append(f"{name}[{zone}]" if zone else name)
        for name, keys in unrecorded.items():
            step = steps[name]
            why = f"did not record {', '.join(keys)}"
            self.record.steps = [s for s in self.record.steps if s.name != name] + [
                step.model_copy(update={"verdict": Verdict.ERROR, "error": "; ".join(filter(None, [step.error, why]))})
            ]
            self.record.errors.append(f"{name}: {why}")
        self.record.ended = utcnow()
        self.record.verdict = self.record.final_verdict()
        self.flush()
        return self.record.verdict

    def missing_measurements(self) -> list[tuple[str, str | None, Limit]]:
        """(name, zone, limit) of every declared measurement (and declared zone) the record does not hold yet."""
        recorded: dict[str, set[str | None]] = {}
        for m in self.record.measurements:
            if not _is_missing_entry(m):
                recorded.setdefault(m.name, set()).add(None if m.zone is None else m.zone.rsplit(":", 1)[-1])
        out: list[tuple[str, str | None, Limit]] = []
        for name, limit in self.limits.limits.items():
            zones = recorded.get(name)
            if zones is None:
                out += [(name, zone, limit) for zone in (limit.base_zones or [None])]
            else:
                out += [(name, zone, limit) for zone in limit.base_zones if zone not in zones]
        return out

    def save(self) -> Path:
        """Rewrite ``record.json`` atomically; a folder that no longer takes writes raises :class:`RunStorageError`
        (the previous record stays in place, whole)."""
        try:
            path = self.record.save(self.run_dir / RECORD_FILE)
        except OSError as exc:
            raise self._storage_lost(RECORD_FILE, exc) from None
        self._measurements_saved = len(self.record.measurements)
        return path

    def _storage_lost(self, what: str, exc: OSError) -> RunStorageError:
        """The error of a write the run folder refused; the first one is kept as the run's reason to stop."""
        error = RunStorageError(
            f"run folder {self.run_dir}: {what} not written ({exc.strerror or exc}); its record.json keeps the "
            f"{self._measurements_saved} measurement(s) saved before"
        )
        if self.storage_error is None:
            self.storage_error = error
        return error


@dataclass(frozen=True)
class _Judged:
    verdict: Verdict
    marginal: bool
    rule: DecisionRule
    decision: Decision | None
    note: str | None


def _judged_by_rule(
    rule: DecisionRule,
    value: float | None,
    verdict: Verdict,
    marginal: bool,
    low: float | None,
    high: float | None,
    uncertainty: Uncertainty | None,
    *,
    key: str,
) -> _Judged:
    """The verdict under the limit's decision rule: the plain one unless the ISO 14253-1 rule is asked and can be
    applied (a value judged against a limit, and a U for it); a rule asked and not applied is noted."""
    plain = _Judged(verdict, marginal, DecisionRule.SIMPLE, None, None)
    if rule is not DecisionRule.ISO14253 or verdict not in (Verdict.PASS, Verdict.FAIL) or value is None:
        return plain
    if uncertainty is None:
        note = f"ISO 14253-1 rule asked, but the station has no accepted MSA of {key}: judged on the plain limits"
        return _Judged(verdict, marginal, DecisionRule.SIMPLE, None, note)
    # a value inside the limits by more than U passes, and keeps the flag of the limit's own marginal band
    judgement = judge_with_uncertainty(value, uncertainty.expanded_u, low=low, high=high, in_marginal_band=marginal)
    return _Judged(
        Verdict.PASS if judgement.passed else Verdict.FAIL,
        judgement.marginal,
        DecisionRule.ISO14253,
        judgement.decision,
        None,
    )


MISSING_PREFIX = "declared, not measured"
"""How the reason of a measurement that :meth:`RunRecorder.finish` added for what was not measured begins."""


def _is_missing_entry(m: MeasurementRecord) -> bool:
    return m.value is None and (m.error or "").startswith((MISSING_PREFIX, "not applicable: step "))


def missing_reason(step_name: str | None, step: StepRecord | None, *, deselected: bool) -> tuple[Verdict, str]:
    """Verdict and reason of a declared measurement the run did not record, from what became of its step."""
    if step_name is None:
        return Verdict.ERROR, f"{MISSING_PREFIX}: no step recorded it"
    if deselected:
        return Verdict.ERROR, f"{MISSING_PREFIX}: step {step_name} deselected"
    if step is None:
        return Verdict.ERROR, f"{MISSING_PREFIX}: step {step_name} did not run"
    if step.verdict is Verdict.SKIP:
        return Verdict.SKIP, f"not applicable: step {step_name} skipped ({step.error or 'no reason given'})"
    if step.verdict is Verdict.ERROR:
        return Verdict.ERROR, f"{MISSING_PREFIX}: step {step_name} ended ERROR before recording it ({step.error})"
    return Verdict.ERROR, f"{MISSING_PREFIX}: step {step_name} did not record it"


def _cpu_now() -> float:
    """CPU seconds of the bench so far: this process's threads and the analyses its worker processes ran."""
    return time.process_time() + analysis_cpu_s()


def _load_plots(run_dir: Path) -> ReportData | None:
    plots_path = run_dir / REPORT_DATA_FILE
    return ReportData.load(plots_path) if plots_path.is_file() else None


def _default_operator() -> str:
    try:
        return f"{socket.gethostname()}"
    except OSError:
        return ""
