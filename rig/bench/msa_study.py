"""Gauge studies on the twin: draw parts from a production spread, measure them through the real bench, tabulate.

The readings come from the same code path a sign-off uses: a :class:`~rig.twin.server.TwinServer` (GRBL peer on a
pty, PTP/IP phone on 127.0.0.1), the factory drivers (:class:`~rig.devices.grbl.GrblController`,
:class:`~rig.devices.gphoto2_phone.Gphoto2Phone`), :class:`~rig.bench.ops.BenchOps` and the plan's own steps — the
test functions of the plan module with its fixtures and limits (:mod:`rig.bench.msa_steps`), so every figure a
step records (flange and tilt, decentre, light intake, MTF50 per zone, sag, settling, remount …) is studied the
way the plan measures it. Only the parts and the appraisers are made up, and they are made up as data the twin
already understands:

* A **part** is a :class:`~rig.config.unit.TwinUnit` drawn from :class:`ProductionSpread` around a nominal unit:
  every true parameter of mount, sensor and lens sample varied, normal, clipped at ±3σ, seeded per part.
* An **operator** appraiser (:class:`OperatorModel`) is a pair of hands: a habitual seating tilt added to how the
  lens sits, and a scatter factor on the bayonet's own seating scatter (``MountTruth.remount_sigma_*``). Both
  enter the twin through the unit's mount, which is where the twin's seating model lives
  (:func:`rig.twin.mount.remount_offset`); the part's own static alignment is unchanged.
* A **station** appraiser (:class:`StationModel`) is a copy of the station whose rail is miscalibrated: the
  twin's bench has its true focus position, the drivers and the measurement believe another one, so a sweep's
  flange offset comes out shifted by (f/f_c)² · Δz — a real calibration offset, seen through the real code.
* With no appraiser (``AppraiserKind.NONE``) the study is an automated "type 3" study (VDA 5 §6).

Each trial is a full remount (unmount, mount, wait for the M-mount sensor) followed by the chosen steps in plan
order, sharing the plan's captures as a sign-off does (one sweep serves flange, sharpness, sag …), so every trial
sees a new seating. Where the twin's truth defines a figure (:data:`TRUTH_OF`), every reading carries the truth
right after its step (``true_value``, which includes the seating and the lens's sag) and the part's reference value
(``reference_value``: its truth on a perfect seating with the lens's sag at horizontal, what a perfect station and
a perfect operator would read); elsewhere both are NaN (a study of such a figure has no bias against truth).
"""

from __future__ import annotations

import logging
import math
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

import numpy as np
import pandas as pd

from rig import __version__
from rig.bench import procedures as proc
from rig.bench.msa_steps import PlanSteps, StepRunner
from rig.bench.open import open_bench
from rig.bench.ops import BenchOps
from rig.bench.recording import RunRecorder
from rig.config.lenses import LensCatalog, LensSpec
from rig.config.station import StationConfig
from rig.config.unit import TwinUnit
from rig.errors import ArgumentError
from rig.results.msa import gauge_rr
from rig.results.record import RunRecord, utcnow
from rig.twin.mount import axial_um, lever_arm_mm, sag_tilt_mrad
from rig.twin.pose import MountPose
from rig.twin.truth import ARCMIN_PER_RAD, UnitTruth, unit_truth

log = logging.getLogger(__name__)

FLANGE_FIGURES = ("flange_offset_um", "tilt_x_arcmin", "tilt_y_arcmin")
"""The alignment figures of the sign-off's flange step, whose %GRR the twin's configuration predicts
(:func:`twin_expectation`)."""

TRUTH_OF: dict[str, Callable[[UnitTruth, LensSpec], float]] = {
    "flange_offset_um": lambda truth, lens: truth.flange_offset_um,
    "tilt_x_arcmin": lambda truth, lens: truth.tilt_x_arcmin,
    "tilt_y_arcmin": lambda truth, lens: truth.tilt_y_arcmin,
    "field_curvature_um": lambda truth, lens: truth.field_curvature_um,
    "decentre_um": lambda truth, lens: math.hypot(truth.decentre_x_um, truth.decentre_y_um),
    "t_stop_error_stops": lambda truth, lens: 2.0 * math.log2(truth.t_stop / lens.t_stop),
    "light_gain_over_native_x": lambda truth, lens: truth.light_gain_over_native,
}
"""Figures the twin's truth defines (figure name → its true value), as the sign-off defines them: the effective
flange offset and tilts, the optical axis's distance from the sensor centre, the T-stop against the catalog's in
stops (2·log₂ T/T_nominal) and the light gain over the native lens."""

READING_COLUMNS = (
    "figure",
    "part",
    "appraiser",
    "trial",
    "value",
    "true_value",
    "reference_value",
)


class AppraiserKind(Enum):
    """What varies between the appraisers of a gauge study."""

    OPERATOR = "operator"  # people who mount the lens
    STATION = "station"  # several stations with small calibration offsets
    NONE = "none"  # automated type-3 study: one station, no operator influence


# --------------------------------------------------------------------------------------------- parts


def _clipped_normal(rng: np.random.Generator, sigma: float) -> float:
    """N(0, σ) clipped at ±3σ: a production spread has no infinitely far tails."""
    return float(np.clip(rng.standard_normal(), -3.0, 3.0) * sigma)


@dataclass(frozen=True)
class ProductionSpread:
    """Part-to-part spread of the twin's true parameters (σ of a normal, clipped at ±3σ).

    Absolute σ in the parameter's unit, ``*_rel`` relative to the nominal value. The defaults are an estimate of
    a line that ships: alignment about a third of the sign-off limits (flange ±5 µm, tilt ±1.5 arcmin),
    components within their data-sheet tolerances.
    """

    flange_offset_um: float = 1.5
    tilt_arcmin: float = 0.5
    decentre_um: float = 15.0
    cover_thickness_mm: float = 0.002
    stiffness_rel: float = 0.10
    natural_frequency_rel: float = 0.05
    damping_rel: float = 0.10
    remount_sigma_rel: float = 0.10
    conversion_gain_rel: float = 0.03
    read_noise_rel: float = 0.10
    responsivity_rel: float = 0.02
    transmission_rel: float = 0.02
    extra_blur_um: float = 0.3

    def draw(self, nominal: TwinUnit, index: int, *, seed: int) -> TwinUnit:
        """Part ``index`` of the study: ``nominal`` with every true parameter varied, from ``rng([seed, index])``."""
        rng = np.random.default_rng([seed, index])
        mount, sensor, lens = nominal.mount, nominal.sensor, nominal.lens

        def rel(value: float, sigma_rel: float) -> float:
            return value * (1.0 + _clipped_normal(rng, sigma_rel))

        new_mount = mount.model_copy(
            update={
                "flange_offset_um": mount.flange_offset_um + _clipped_normal(rng, self.flange_offset_um),
                "tilt_x_arcmin": mount.tilt_x_arcmin + _clipped_normal(rng, self.tilt_arcmin),
                "tilt_y_arcmin": mount.tilt_y_arcmin + _clipped_normal(rng, self.tilt_arcmin),
                "decentre_x_um": mount.decentre_x_um + _clipped_normal(rng, self.decentre_um),
                "decentre_y_um": mount.decentre_y_um + _clipped_normal(rng, self.decentre_um),
                "cover_thickness_mm": mount.cover_thickness_mm + _clipped_normal(rng, self.cover_thickness_mm),
                "rotational_stiffness_nm_per_mrad": rel(mount.rotational_stiffness_nm_per_mrad, self.stiffness_rel),
                "natural_frequency_hz": rel(mount.natural_frequency_hz, self.natural_frequency_rel),
                "damping_ratio": min(rel(mount.damping_ratio, self.damping_rel), 0.95),
                "remount_sigma_um": rel(mount.remount_sigma_um, self.remount_sigma_rel),
                "remount_sigma_arcmin": rel(mount.remount_sigma_arcmin, self.remount_sigma_rel),
            }
        )
        new_sensor = sensor.model_copy(
            update={
                "conversion_gain_dn_per_e": rel(sensor.conversion_gain_dn_per_e, self.conversion_gain_rel),
                "read_noise_e": rel(sensor.read_noise_e, self.read_noise_rel),
                "responsivity_factor": rel(sensor.responsivity_factor, self.responsivity_rel),
            }
        )
        new_lens = lens.model_copy(
            update={
                "transmission_factor": min(rel(lens.transmission_factor, self.transmission_rel), 1.1),
                "extra_blur_um": lens.extra_blur_um + abs(_clipped_normal(rng, self.extra_blur_um)),
            }
        )
        # validate the drawn part like a unit file (bounds of every field)
        return TwinUnit.model_validate(
            {
                **nominal.model_dump(),
                "serial": f"{nominal.serial[:-6]}9{index + 1:05d}",
                "description": f"MSA part {index + 1} drawn around {nominal.serial}",
                "expected_failures": [],
                "mount": new_mount.model_dump(),
                "sensor": new_sensor.model_dump(),
                "lens": new_lens.model_dump(),
                "faults": None,
            }
        )


def draw_parts(nominal: TwinUnit, count: int, *, spread: ProductionSpread, seed: int) -> list[TwinUnit]:
    """``count`` parts from ``spread`` around ``nominal`` (seeded: the same seed gives the same parts)."""
    if count < 1:
        raise ArgumentError(f"--parts {count}: expected at least 1")
    return [spread.draw(nominal, i, seed=seed) for i in range(count)]


# --------------------------------------------------------------------------------------------- appraisers


@dataclass(frozen=True)
class OperatorModel:
    """How one person seats the lens: a habitual tilt (arcmin) and a factor on the bayonet's seating scatter."""

    name: str
    seating_tilt_x_arcmin: float = 0.0
    seating_tilt_y_arcmin: float = 0.0
    scatter_factor: float = 1.0

    def seat(self, part: TwinUnit) -> TwinUnit:
        """The part as this operator leaves it on the bayonet (static alignment + habit, scaled scatter)."""
        mount = part.mount
        seated = mount.model_copy(
            update={
                "tilt_x_arcmin": mount.tilt_x_arcmin + self.seating_tilt_x_arcmin,
                "tilt_y_arcmin": mount.tilt_y_arcmin + self.seating_tilt_y_arcmin,
                "remount_sigma_um": mount.remount_sigma_um * self.scatter_factor,
                "remount_sigma_arcmin": mount.remount_sigma_arcmin * self.scatter_factor,
            }
        )
        return part.model_copy(update={"mount": seated})


@dataclass(frozen=True)
class StationModel:
    """One station of a line: the twin's station with its rail's focus position miscalibrated by Δz (mm).

    ``rail_focus_error_mm`` = believed − true focus position: the bench drives to where it believes focus is,
    so the image lands (f/f_c)² · Δz behind where the measurement assumes.
    """

    name: str
    rail_focus_error_mm: float = 0.0

    def believed(self, station: StationConfig) -> StationConfig:
        rail = station.rail.model_copy(update={"focus_mm": station.rail.focus_mm + self.rail_focus_error_mm})
        return station.model_copy(update={"rail": rail, "name": f"{station.name}/{self.name}"})


Appraiser = OperatorModel | StationModel


@dataclass(frozen=True)
class AppraiserSpread:
    """Spread of appraisers: σ of the operators' habitual seating tilt and of their scatter factor, σ of the
    stations' rail calibration error."""

    seating_tilt_arcmin: float = 0.1
    scatter_factor_rel: float = 0.2
    rail_focus_error_mm: float = 0.02


def draw_appraisers(kind: AppraiserKind, count: int, *, spread: AppraiserSpread, seed: int) -> list[Appraiser]:
    """``count`` appraisers of ``kind`` (one neutral operator for a type-3 study), seeded."""
    if kind is AppraiserKind.NONE:
        return [OperatorModel("station")]
    if count < 2:
        raise ArgumentError(f"--appraisers {count}: expected at least 2 (or --appraiser-kind none)")
    rng = np.random.default_rng([seed, 1_000_003])
    if kind is AppraiserKind.OPERATOR:
        return [
            OperatorModel(
                name=f"operator-{chr(ord('A') + i)}",
                seating_tilt_x_arcmin=_clipped_normal(rng, spread.seating_tilt_arcmin),
                seating_tilt_y_arcmin=_clipped_normal(rng, spread.seating_tilt_arcmin),
                scatter_factor=max(0.2, 1.0 + _clipped_normal(rng, spread.scatter_factor_rel)),
            )
            for i in range(count)
        ]
    return [
        StationModel(name=f"station-{i + 1}", rail_focus_error_mm=_clipped_normal(rng, spread.rail_focus_error_mm))
        for i in range(count)
    ]


# --------------------------------------------------------------------------------------------- the bench


class TwinRig:
    """A twin server serving one part, with the factory drivers and BenchOps on top (as the plugin builds them).

    ``true_station`` is what the twin simulates; ``believed_station`` is what the drivers and the measurement
    are told (they differ by a station appraiser's calibration offset).
    """

    def __init__(
        self,
        true_station: StationConfig,
        believed_station: StationConfig,
        unit: TwinUnit,
        lenses: LensCatalog,
        *,
        seed: int,
    ) -> None:
        self.true_station = true_station
        self.devices = open_bench(believed_station, lenses, unit=unit, twin_station=true_station, seed=seed)
        assert self.devices.twin is not None
        self.server = self.devices.twin
        self.phone = self.devices.phone
        self.bench = BenchOps.on(self.devices, station=believed_station)

    def close(self) -> None:
        self.devices.close()


@contextmanager
def twin_rig(
    true_station: StationConfig, believed_station: StationConfig, unit: TwinUnit, lenses: LensCatalog, *, seed: int
) -> Iterator[TwinRig]:
    rig = TwinRig(true_station, believed_station, unit, lenses, seed=seed)
    try:
        yield rig
    finally:
        rig.close()


def _cell_seed(seed: int, part: int, appraiser: int) -> int:
    """An independent twin seed per (part, appraiser): seatings and sensor noise differ between cells."""
    return int(np.random.SeedSequence([seed, part, appraiser]).generate_state(1)[0])


def _truth_of(figures: Sequence[str], truth: UnitTruth, lens: LensSpec) -> dict[str, float]:
    """The true value of each figure the truth defines (NaN for the others); ``mtf50_cy_px[center]`` → its name."""
    out = {}
    for figure in figures:
        of = TRUTH_OF.get(figure.split("[", 1)[0])
        out[figure] = float(of(truth, lens)) if of is not None else math.nan
    return out


def reference_pose(part: TwinUnit, lens: LensSpec) -> MountPose:
    """The part's pose on a perfect seating with the fixture horizontal: only the lens's sag (rig.twin.mount)."""
    droop_mrad = sag_tilt_mrad(part.mount, lens, 0.0)
    return MountPose(
        image_shift_y_um=lever_arm_mm(lens) * droop_mrad,
        tilt_x_arcmin=-droop_mrad * ARCMIN_PER_RAD / 1000.0,
        axial_um=axial_um(lens, 0.0),
    )


def reference_figures(
    part: TwinUnit, lens: LensSpec, station: StationConfig, lenses: LensCatalog, figures: Sequence[str] = FLANGE_FIGURES
) -> dict[str, float]:
    """What a perfect station reads on ``part``: its truth on a perfect seating, lens sag included (NaN where the
    truth does not define the figure)."""
    return _truth_of(figures, unit_truth(part, lens, station, reference_pose(part, lens), catalog=lenses), lens)


@dataclass
class StudyReadings:
    """The raw readings of a twin study, long format (:data:`READING_COLUMNS`), and who took them."""

    readings: pd.DataFrame
    parts: list[TwinUnit]
    appraisers: list[Appraiser]
    kind: AppraiserKind
    seed: int
    log: list[str] = field(default_factory=list)

    def study(self, figure: str) -> pd.DataFrame:
        """The ``part, appraiser, trial, value`` table of one figure, for :func:`rig.results.msa.gauge_rr`."""
        if figure not in set(self.readings["figure"]):
            raise ArgumentError(f"figure {figure!r}: expected one of {sorted(set(self.readings['figure']))}")
        rows = self.readings[self.readings["figure"] == figure]
        return rows[["part", "appraiser", "trial", "value"]].reset_index(drop=True)


StudyProgress = Callable[[int, int, str], None]
"""Told after every trial: trials done, trials in the study, and one line on the readings."""


def run_gauge_study(
    station: StationConfig,
    lenses: LensCatalog,
    parts: Sequence[TwinUnit],
    appraisers: Sequence[Appraiser],
    *,
    plan: PlanSteps,
    trials: int,
    kind: AppraiserKind,
    seed: int,
    remount: bool = True,
    progress: StudyProgress | None = None,
) -> StudyReadings:
    """Measure every part ``trials`` times per appraiser on the twin with the plan's steps, a full remount before
    every trial.

    Parameters
    ----------
    station
        The twin station (its ``[twin]`` table is required).
    lenses
        Lens catalog; the station's reference lens is mounted.
    parts, appraisers
        From :func:`draw_parts` and :func:`draw_appraisers`.
    plan
        The plan's steps to repeat and the figures they record (:class:`rig.bench.msa_steps.PlanSteps`).
    trials
        Readings per part and appraiser (≥ 2 for a gauge R&R, any n for a type-1 study).
    kind
        What the appraisers are.
    seed
        Seeds the twin per (part, appraiser) cell.
    remount
        Unmount and mount the lens before every trial after the first (a gauge R&R: every trial a new seating);
        False keeps the seating between trials (a type-1 study of the station's own repeatability; a step that
        remounts by itself, such as ``remount`` or ``lens_detection``, still does).
    progress
        Told after every trial (:data:`StudyProgress`), e.g. a progress bar with an ETA.

    Returns
    -------
    StudyReadings
    """
    if trials < 1:
        raise ArgumentError(f"--trials {trials}: expected at least 1")
    lens = lenses.get(station.reference_lens, source="station", field="reference_lens")
    rows: list[dict[str, object]] = []
    total, done = len(parts) * len(appraisers) * trials, 0
    for p, part in enumerate(parts):
        reference = reference_figures(part, lens, station, lenses, plan.figures)
        for a, appraiser in enumerate(appraisers):
            if isinstance(appraiser, OperatorModel):
                unit, believed = appraiser.seat(part), station
            else:
                unit, believed = part, appraiser.believed(station)
            with (
                tempfile.TemporaryDirectory(prefix="rig-msa-") as scratch,
                twin_rig(station, believed, unit, lenses, seed=_cell_seed(seed, p, a)) as rig,
            ):
                recorder = _scratch_recorder(Path(scratch), plan, believed, part)
                for t in range(trials):
                    if t > 0 and remount:  # a full remount between trials: every trial sees a new seating
                        proc.ensure_no_lens(rig.bench)
                    proc.ensure_lens(rig.bench, lens)
                    measured = _trial(rig, plan, recorder, lens, lenses, believed)
                    for name, (value, true_value) in measured.items():
                        rows.append(
                            {
                                "figure": name,
                                "part": part.serial,
                                "appraiser": appraiser.name,
                                "trial": t + 1,
                                "value": value,
                                "true_value": true_value,
                                "reference_value": reference[name],
                            }
                        )
                    done += 1
                    if progress is not None:
                        progress(done, total, f"part {part.serial} {appraiser.name} trial {t + 1}: " + _line(measured))
    return StudyReadings(pd.DataFrame(rows, columns=list(READING_COLUMNS)), list(parts), list(appraisers), kind, seed)


def _scratch_recorder(folder: Path, plan: PlanSteps, station: StationConfig, part: TwinUnit) -> RunRecorder:
    """A run recorder for the steps' ``run`` and ``measure`` (plots, thumbnails, the plan's verdicts) in a scratch
    folder: a study reading is not a run of the unit, and goes to the study's tables instead."""
    record = RunRecord(
        run_id=f"msa-{part.serial}",
        plan=str(getattr(plan.module, "PLAN", plan.module.__name__)),
        station=station.name,
        software_version=__version__,
        unit_serial=part.serial,
        started=utcnow(),
    )
    return RunRecorder(record, folder / record.run_id, plan.limits)


def _trial(
    rig: TwinRig, plan: PlanSteps, recorder: RunRecorder, lens: LensSpec, lenses: LensCatalog, station: StationConfig
) -> dict[str, tuple[float, float]]:
    """One trial: the plan's steps in order; each figure's reading and the twin's truth right after its step."""
    runner = StepRunner(
        plan, recorder, {"bench": rig.bench, "run": recorder, "lens": lens, "lenses": lenses, "station": station}
    )
    out: dict[str, tuple[float, float]] = {}
    try:
        for step in plan.steps:
            measured = runner.run(step)
            truth = _truth_of(list(measured), rig.server.bench.truth(), lens)
            out.update({name: (value, truth[name]) for name, value in measured.items()})
    finally:
        runner.close()
    return out


def _line(measured: dict[str, tuple[float, float]]) -> str:
    return ", ".join(
        f"{n} {v:+.4g}" + (f" (true {t:+.4g})" if math.isfinite(t) else "") for n, (v, t) in measured.items()
    )


@dataclass(frozen=True)
class TwinExpectation:
    """The %GRR a twin study should find, from the twin's configuration and the realised parts and appraisers.

    Attributes
    ----------
    repeatability_sd
        √(mean over cells of σ_seat² + σ_meas²): the configured seating scatter of each (part, appraiser) cell
        (``MountTruth.remount_sigma_*`` × the operator's factor; 0 for the flange offset, which a seating does
        not move) and the sweep's own scatter against truth σ_meas.
    appraiser_sd
        σ (ddof = 1) of the appraisers' fixed effects: the operators' habitual seating tilts, or the stations'
        flange shift −(f/f_c)² · Δz · 1000 µm from their rail calibration errors.
    part_sd
        σ (ddof = 1) of the parts' reference values.
    pct_grr
        100 · √(EV² + AV²) / √(EV² + AV² + PV²) from the three above.
    pct_grr_low, pct_grr_high
        The central 95 % of the ANOVA %GRR over ``simulations`` re-draws of the random parts of the study only
        (seating and measurement noise), parts and appraisers held at their realised values: the sampling
        interval of this study's design.
    """

    figure: str
    measurement_sd: float
    repeatability_sd: float
    appraiser_sd: float
    part_sd: float
    pct_grr: float
    pct_grr_low: float
    pct_grr_high: float


def twin_expectation(
    readings: StudyReadings,
    figure: str,
    station: StationConfig,
    lenses: LensCatalog,
    *,
    simulations: int = 1000,
    seed: int = 0,
) -> TwinExpectation:
    """What the twin's configuration implies for the study's %GRR of ``figure``, with its sampling interval.

    ``σ_meas`` is the pooled within-cell σ of (reading − truth), the one ingredient the twin does not configure
    directly (it follows from the sensor's noise through the sweep's fit); everything else is configuration.
    """

    if figure not in FLANGE_FIGURES:
        raise ArgumentError(f"figure {figure!r}: the twin predicts the %GRR of {', '.join(FLANGE_FIGURES)} only")
    rows = readings.readings[readings.readings["figure"] == figure]
    lens = lenses.get(station.reference_lens, source="station", field="reference_lens")
    parts = list(dict.fromkeys(rows["part"]))
    names = list(dict.fromkeys(rows["appraiser"]))
    trials = int(rows.groupby(["part", "appraiser"]).size().iloc[0])
    by_serial = {p.serial: p for p in readings.parts}
    by_name = {a.name: a for a in readings.appraisers}
    tilt_axis = {"tilt_x_arcmin": "x", "tilt_y_arcmin": "y"}.get(figure)

    def seat_sigma(part: TwinUnit, appraiser: Appraiser) -> float:
        if tilt_axis is None:
            return 0.0
        factor = appraiser.scatter_factor if isinstance(appraiser, OperatorModel) else 1.0
        return part.mount.remount_sigma_arcmin * factor

    def appraiser_effect(appraiser: Appraiser) -> float:
        if isinstance(appraiser, OperatorModel):
            return {"x": appraiser.seating_tilt_x_arcmin, "y": appraiser.seating_tilt_y_arcmin}.get(tilt_axis, 0.0)
        if figure == "flange_offset_um":
            k = (lens.focal_length_mm / station.optics.collimator_focal_length_mm) ** 2
            return -k * 1000.0 * appraiser.rail_focus_error_mm
        return 0.0

    error = rows["value"] - rows["true_value"]
    grouped = error.groupby([rows["part"], rows["appraiser"]])
    dof = int((grouped.count() - 1).sum())
    measurement_sd = math.sqrt(float(((error - grouped.transform("mean")) ** 2).sum()) / dof)
    reference = np.array([rows.loc[rows["part"] == p, "reference_value"].iloc[0] for p in parts])
    effects = np.array([appraiser_effect(by_name[a]) for a in names])
    sigma_cell = np.array([[seat_sigma(by_serial[p], by_name[a]) for a in names] for p in parts])
    ev = math.sqrt(float(np.mean(sigma_cell**2)) + measurement_sd**2)
    av = float(np.std(effects, ddof=1)) if len(names) > 1 else 0.0
    pv = float(np.std(reference, ddof=1))
    grr = math.hypot(ev, av)

    rng = np.random.default_rng([seed, 18])
    p_idx, a_idx, t_idx = np.meshgrid(np.arange(len(parts)), np.arange(len(names)), np.arange(trials), indexing="ij")
    simulated = []
    for _ in range(simulations):
        noise = rng.standard_normal(p_idx.shape) * sigma_cell[:, :, None] + rng.normal(0, measurement_sd, p_idx.shape)
        values = reference[:, None, None] + effects[None, :, None] + noise
        study = pd.DataFrame(
            {"part": p_idx.ravel(), "appraiser": a_idx.ravel(), "trial": t_idx.ravel(), "value": values.ravel()}
        )
        simulated.append(gauge_rr(study).pct_grr)
    low, high = np.percentile(simulated, [2.5, 97.5])
    return TwinExpectation(
        figure=figure,
        measurement_sd=measurement_sd,
        repeatability_sd=ev,
        appraiser_sd=av,
        part_sd=pv,
        pct_grr=100.0 * grr / math.hypot(grr, pv),
        pct_grr_low=float(low),
        pct_grr_high=float(high),
    )
