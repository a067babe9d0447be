"""Factory calibration of one unit (issue #6 point 4): measure → profile → export → write to the phone → verify.

Steps follow the carousel with the fewest moves (dot grid, flat, slanted edges; then, with the profile on the
phone, slanted edges and flat again), the lens mounted once:

1. the reference lens is detected with its 6-bit code;
2. the dot grid gives the optical centre (decentre) and distortion;
3. a flat field gives the per-Bayer-channel lens-shading gain maps;
4. a through-focus sweep gives flange offset and tilt;
5. the :class:`~rig.spec.profile.CalibrationProfile` is exported to ``<calibration dir>/<serial>/``, written
   to the phone and read back byte for byte;
6. a short sweep centred on the focus the profile predicts re-measures the flange (the stored offset must be the
   one the bench sees again);
7. a flat field re-captured with the profile on the phone is corrected by the GainMaps the phone itself embeds in
   its DNG (OpcodeList2), and what is left of the shading is checked (≤ 1 %).

Limits: ``fixtures/limits/calibration.toml``. Every test asks for ``measure`` first, so a fault while the bench is
being prepared is recorded against the step.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from rig import __version__
from rig.bench import procedures as proc
from rig.bench.ops import BenchOps, Frame
from rig.bench.options import RunOptions
from rig.bench.recording import RunRecorder
from rig.bench.rework import ReworkOutcome, ReworkRound, rework_checks, rework_mount
from rig.calibrate import outputs
from rig.calibrate.geometry import decentre_um, geometry_for_profile
from rig.calibrate.opencv_yaml import OpenCvCamera, camera_from_fit
from rig.calibrate.shading import ShadingFit, fit_shading, residual_shading
from rig.calibrate.shim import MountMeasurement, ReworkTolerance
from rig.config.lenses import LensSpec
from rig.config.limits import load_limits
from rig.config.station import StationConfig
from rig.errors import MeasurementError
from rig.measure.dotgrid import DotGridFit
from rig.measure.focus import EdgeFocus, rail_defocus_um_per_mm
from rig.results.record import CalibrationVerdict, MeasurementRecord, Verdict, utcnow
from rig.results.reportdata import CurvesPlot, HeatmapPlot, RefLine, Series
from rig.spec.gainmap import GainMap, apply_opcode_list, decode_opcode_list
from rig.spec.profile import BAYER_CHANNELS, CalibrationProfile, ReferenceLens, compare_profiles

PLAN = "calibration"

VERIFY_HALF_RANGE_UM = 36.0
"""Image-side half range of the verification sweep about the profile's focus: it only has to bracket the best
focus of every edge (tilt ≤ 5′ moves a corner by ≤ 12 µm), not find an unknown flange."""
VERIFY_STEPS = 9
"""9 µm apart: as fine as the 18 µm of the full sweep's 11 steps over ±90 µm, at 9 instead of 11 frames."""

PROFILE_MEASUREMENTS = (
    "lens_detected",
    "decentre_um",
    "distortion_rms_px",
    "shading_gain_max",
    "flange_offset_um",
    "tilt_x_arcmin",
    "tilt_y_arcmin",
)
"""What the profile stores or rests on: each must PASS before anything is written to the phone."""
REJECTION_ADVICE = {
    "flange_offset_um": "re-shim the adapter",
    "tilt_x_arcmin": "re-seat or re-shim the adapter",
    "tilt_y_arcmin": "re-seat or re-shim the adapter",
    "decentre_um": "check the adapter bore",
    "lens_detected": "check the reference lens and its 6-bit code",
}
"""What the operator does about a rejection, by the measurement that caused it."""


# --------------------------------------------------------------------------------------------- shared captures
@pytest.fixture(scope="module")
def calibration_folder(run_options: RunOptions, unit_serial: str) -> Path:
    """``<--calibration-dir>/<serial>/``, where this unit's profile files go."""
    return outputs.unit_dir(run_options.calibration_folder, unit_serial)


@pytest.fixture(scope="module")
def grid(bench: BenchOps, lens: LensSpec) -> tuple[Frame, DotGridFit]:
    proc.ensure_lens(bench, lens)
    return proc.dot_grid(bench, t_stop=lens.t_stop)


@pytest.fixture(scope="module")
def flat(bench: BenchOps, lens: LensSpec) -> Frame:
    proc.ensure_lens(bench, lens)
    return proc.flat_field(bench, t_stop=lens.t_stop, tag="flat")


@pytest.fixture(scope="module")
def shading(flat: Frame, station: StationConfig) -> ShadingFit:
    image = flat.image
    return fit_shading(
        flat.raw,
        black_level_dn=image.black_level,
        white_level_dn=image.white_level,
        cfa_pattern=image.cfa_pattern,
        binning=station.sensor.binning,
    )


@pytest.fixture(scope="module")
def sweep(bench: BenchOps, lens: LensSpec) -> proc.Sweep:
    proc.ensure_lens(bench, lens)
    # the phone's assist outputs are the sign-off's business: skipping them saves a PTP round trip per frame
    return proc.through_focus(bench, lens, t_stop=lens.t_stop, with_assists=False)


@pytest.fixture(scope="module")
def camera(grid: tuple[Frame, DotGridFit], station: StationConfig, lens: LensSpec, unit_serial: str) -> OpenCvCamera:
    _, fit = grid
    return camera_from_fit(
        fit,
        focal_length_mm=lens.focal_length_mm,
        pixel_pitch_um=station.sensor.readout_pitch_um,
        unit_serial=unit_serial,
        lens_id=lens.id,
    )


@pytest.fixture(scope="module")
def profile(
    station: StationConfig,
    lens: LensSpec,
    unit_serial: str,
    flat: Frame,
    shading: ShadingFit,
    sweep: proc.Sweep,
    grid: tuple[Frame, DotGridFit],
    camera: OpenCvCamera,
) -> CalibrationProfile:
    """The unit's profile from the three calibration captures."""
    frame, fit = grid
    f = sweep.flange
    return CalibrationProfile(
        unit_serial=unit_serial,
        station=station.name,
        # the bench calibrates wide open: the f-number the sweep's depth of focus and the flat's shading belong to
        reference_lens=ReferenceLens(id=lens.id, f_number=lens.max_f_number),
        created=utcnow(),
        software_version=__version__,
        flange_offset_um=f.flange_offset_um,
        tilt_x_arcmin=f.tilt_x_arcmin,
        tilt_y_arcmin=f.tilt_y_arcmin,
        optical_center_px=fit.principal_point_px,
        decentre_um=_decentre(frame, fit, station),
        black_level_dn=flat.image.black_level,
        shading=shading.maps,
        geometry=geometry_for_profile(fit, camera),
    )


def _decentre(frame: Frame, fit: DotGridFit, station: StationConfig) -> tuple[float, float]:
    """(x, y) µm from the sensor centre to the dot grid's distortion centre (the optical axis)."""
    return decentre_um(
        fit.principal_point_px,
        width_px=frame.image.width,
        height_px=frame.image.height,
        pixel_pitch_um=station.sensor.readout_pitch_um,
    )


@dataclass
class VerificationLog:
    """verification.json of this run, rewritten as each check completes."""

    folder: Path
    record: outputs.Verification

    def update(self, **fields: object) -> None:
        self.record = self.record.model_copy(update={**fields, "updated": utcnow()})
        # validate what model_copy does not: a wrong type here is a plan bug, caught before it reaches the file
        self.record = outputs.Verification.model_validate(self.record.model_dump())
        outputs.write_verification(self.folder, self.record)


def rejection_reasons(measurements: list[MeasurementRecord]) -> list[str]:
    """Why the profile must not go to the phone: each FAIL of a measurement it stores, with what to do about it.

    e.g. ``re-shim the adapter: flange_offset_um +49.9 um, profile range [-40, 40] um``.
    """
    reasons = []
    for m in measurements:
        if m.verdict is Verdict.FAIL and m.name in PROFILE_MEASUREMENTS and m.value is not None:
            advice = REJECTION_ADVICE.get(m.name, "re-calibrate after repair")
            low = "−∞" if m.low is None else f"{m.low:g}"
            high = "+∞" if m.high is None else f"{m.high:g}"
            reasons.append(f"{advice}: {m.key} {m.value:+.1f} {m.unit}, profile range [{low}, {high}] {m.unit}")
    return reasons


def decide(run: RunRecorder, folder: Path, profile: CalibrationProfile, verdict: CalibrationVerdict,
           reasons: list[str], *, written_to_phone: bool, rework: list[str] | None = None) -> None:  # fmt: skip
    """Write ``verdict.json`` and make the decision the run's outcome."""
    outputs.write_decision(
        folder,
        outputs.CalibrationDecision(
            unit_serial=profile.unit_serial,
            run_id=run.record.run_id,
            verdict=verdict,
            reasons=reasons,
            rework=rework or [],
            written_to_phone=written_to_phone,
            profile_file=(
                outputs.PROFILE_FILE if verdict is CalibrationVerdict.ACCEPTED else outputs.REJECTED_PROFILE_FILE
            ),
            profile_sha256=outputs.profile_sha256(profile),
            decided=utcnow(),
        ),
    )
    run.set_outcome(verdict)


@pytest.fixture(scope="module")
def written(
    bench: BenchOps,
    run: RunRecorder,
    profile: CalibrationProfile,
    camera: OpenCvCamera,
    calibration_folder: Path,
) -> VerificationLog:
    """Export the profile files, write the profile to the phone; the verification log starts here.

    Only a profile whose every stored measurement passed goes to the phone. A FAIL (e.g. a flange beyond the
    ±40 µm a profile may store) rejects it: the profile is kept as ``profile.rejected.json``, ``verdict.json``
    says REJECTED and why, and the steps that verify a written profile are skipped. A stored measurement not taken
    (a step that ended ERROR or was deselected) leaves the profile unverified: it is not written either.
    """
    recorded = {m.name for m in run.record.measurements if m.verdict in (Verdict.PASS, Verdict.FAIL)}
    reasons = rejection_reasons(run.record.measurements)
    if reasons:
        outputs.write_rejected_profile(calibration_folder, profile)
        rework = _REWORKS.get(run.record.run_id)
        verdict = CalibrationVerdict.REJECTED
        if rework is not None:
            if rework.succeeded:
                verdict = CalibrationVerdict.REWORK
                reasons = [*reasons, "mount re-shimmed and verified within the sign-off limits: calibrate again"]
            else:
                reasons = [*reasons, f"mount rework did not succeed: {rework.reason}"]
        decide(
            run,
            calibration_folder,
            profile,
            verdict,
            reasons,
            written_to_phone=False,
            rework=[_round_text(r) for r in rework.rounds] if rework is not None else None,
        )
        pytest.skip(f"profile {verdict.value}, not written to the phone: {'; '.join(reasons)}")
    unmeasured = [name for name in PROFILE_MEASUREMENTS if name not in recorded]
    if unmeasured:
        raise MeasurementError(f"not writing an unverified profile to the phone: {', '.join(unmeasured)} not measured")
    outputs.supersede_rejection(calibration_folder)
    outputs.write_profile_files(calibration_folder, profile, camera)
    bench.phone.write_profile(profile.to_json())
    log = VerificationLog(
        calibration_folder,
        outputs.Verification(
            unit_serial=profile.unit_serial,
            run_id=run.record.run_id,
            profile_sha256=outputs.profile_sha256(profile),
            updated=utcnow(),
        ),
    )
    outputs.write_verification(calibration_folder, log.record)
    return log


@pytest.fixture(scope="module", autouse=True)
def acceptance(run: RunRecorder, calibration_folder: Path) -> Iterator[None]:
    """After the last step, decide about a profile this run wrote: every declared measurement PASS → ACCEPTED; a
    FAIL after writing (read-back, residuals) → REJECTED; an ERROR or a measurement not taken decides nothing
    (resume the run)."""
    yield
    verification = calibration_folder / outputs.VERIFICATION_FILE
    if run.record.outcome is not None or not verification.is_file():
        return
    if outputs.read_verification(verification).run_id != run.record.run_id:
        return  # the profile in the folder is an earlier run's: this one wrote none
    profile = outputs.read_profile_file(calibration_folder / outputs.PROFILE_FILE)
    failed = [m for m in run.record.measurements if m.verdict is Verdict.FAIL]
    if failed:
        reasons = [f"after writing: {m.key} = {m.value:.4g} {m.unit} outside [{m.low}, {m.high}]" for m in failed]
        decide(run, calibration_folder, profile, CalibrationVerdict.REJECTED, reasons, written_to_phone=True)
    elif not any(m.verdict is Verdict.ERROR for m in run.record.measurements) and not run.missing_measurements():
        decide(run, calibration_folder, profile, CalibrationVerdict.ACCEPTED, [], written_to_phone=True)


# --------------------------------------------------------------------------------------------- report plots
def _gain_heatmaps(run: RunRecorder, fit: ShadingFit) -> None:
    gains = fit.maps.gains_array()
    for name, channel in zip(BAYER_CHANNELS, gains, strict=True):
        run.add_plot(
            HeatmapPlot(
                name=f"gain_map_{name}",
                title=f"Lens-shading gain map, {name}",
                values=np.round(channel, 4).tolist(),
                unit="×",
                annotate=False,
                caption=f"{fit.maps.map_points_v}×{fit.maps.map_points_h} points edge to edge; falloff "
                f"{fit.falloff_pct[name]:.1f} %, fit rms {fit.fit_rms_pct[name]:.2f} % of peak",
            )
        )


def _through_focus_plot(name: str, title: str, sweep: proc.Sweep) -> CurvesPlot:
    """MTF50 against image-side focus (µm from the nominal image plane): per zone, the edges nearest to and
    farthest from the centre (tilt shows as corners peaking at different focus)."""
    flange = sweep.flange
    by_zone: dict[str, list[EdgeFocus]] = {}
    for edge in flange.edges:
        if edge.best is not None:
            by_zone.setdefault(str(edge.roi.zone), []).append(edge)
    series: list[Series] = []
    for zone, edges in sorted(by_zone.items()):
        ordered = sorted(edges, key=lambda e: math.hypot(e.x_um, e.y_um))
        for edge in ordered[:1] + ordered[1:][-1:]:
            x = np.asarray(edge.rail_mm) * sweep.rail_um_per_mm  # rail from the focus position → image side
            y = [float(v) if math.isfinite(v) else None for v in edge.mtf50_cy_px]
            label = f"{zone} ({edge.x_um / 1000:+.1f}, {edge.y_um / 1000:+.1f}) mm"
            series.append(Series(label=label, x=x.tolist(), y=y, zone=zone))
    return CurvesPlot(
        name=name,
        title=title,
        x_label="image-side focus",
        x_unit="µm",
        y_label="MTF50",
        y_unit="cy/px",
        series=series or [Series(label="no edge", x=[0.0], y=[None])],
        vlines=[RefLine(value=flange.flange_offset_um, label=f"flange {flange.flange_offset_um:+.2f} µm")],
        caption=f"{flange.edges_used} of {flange.edges_total} edges in the plane fit, rms {flange.fit_rms_um:.2f} µm",
    )


# --------------------------------------------------------------------------------------------- steps
def test_lens_detection(measure, bench: BenchOps, lens: LensSpec) -> None:
    """The phone reports the reference lens with its catalog 6-bit code (the profile belongs to that lens)."""
    state = proc.ensure_lens(bench, lens)
    measure("lens_detected", 1.0 if state.attached and state.lens_code == lens.lens_code else 0.0)


def test_decentre(measure, station: StationConfig, grid: tuple[Frame, DotGridFit]) -> None:
    """Optical centre from the dot grid's distortion centre (as sign-off measures it) and the distortion fit."""
    frame, fit = grid
    measure("decentre_um", math.hypot(*_decentre(frame, fit, station)), captures=[frame.path])
    measure("distortion_rms_px", fit.rms_residual_px, captures=[frame.path])


def test_shading(measure, run: RunRecorder, flat: Frame, shading: ShadingFit) -> None:
    """Per-Bayer-channel gain maps from the flat field; the largest gain is the noise cost in the corners."""
    _gain_heatmaps(run, shading)
    measure("shading_gain_max", float(shading.maps.gains_array().max()), captures=[flat.path])


def test_flange_alignment(measure, run: RunRecorder, bench: BenchOps, lens: LensSpec, sweep: proc.Sweep) -> None:
    """Flange offset and sensor tilt from the through-focus sweep, as stored in the profile."""
    f = sweep.flange
    caps = [fr.path for fr in sweep.frames]
    run.add_plot(_through_focus_plot("through_focus", "Through focus: MTF50", sweep))
    measure("flange_offset_um", f.flange_offset_um, captures=caps)
    measure("tilt_x_arcmin", f.tilt_x_arcmin, captures=caps)
    measure("tilt_y_arcmin", f.tilt_y_arcmin, captures=caps)
    _rework_beyond_profile_range(measure, run, bench, lens, sweep)


# --------------------------------------------------------------------------------------------- mount rework hook
_REWORKS: dict[str, ReworkOutcome] = {}
"""The mount rework of each run (by run id), for the profile decision that follows the flange step."""


def _round_text(r: ReworkRound) -> str:
    after = r.remeasured
    return (
        f"round {r.index}: {r.recipe.summary()}; re-measured flange {after.flange_offset_um:+.1f} µm, tilt "
        f"{after.tilt_x_arcmin:+.2f}′/{after.tilt_y_arcmin:+.2f}′"
    )


def _rework_beyond_profile_range(measure, run: RunRecorder, bench: BenchOps, lens: LensSpec, sweep: proc.Sweep) -> None:
    """Issue #21: flange or tilt beyond what a profile may store is re-shimmed and verified (rig.bench.rework).

    Records the recipe, the predictions and the re-measurements (``mount_rework.json``, a checks table in the report)
    and ``mount_rework_succeeded``. The profile is still built from the first sweep: the verdict work (REWORK, no
    profile written) decides what a reworked unit's profile is.
    """
    measured = MountMeasurement.from_flange(sweep.flange)

    def inside(name: str, value: float) -> bool:
        bounds = run.limits.get(name).for_zone(None)
        return (bounds.low is None or bounds.low <= value) and (bounds.high is None or value <= bounds.high)

    in_range = (
        inside("flange_offset_um", measured.flange_offset_um)
        and inside("tilt_x_arcmin", measured.tilt_x_arcmin)
        and inside("tilt_y_arcmin", measured.tilt_y_arcmin)
    )
    if in_range:
        measure.skip("mount_rework_succeeded", "flange and tilt within what the profile may store: no rework")
        return
    tolerance = ReworkTolerance.from_settings(bench.station.rework, load_limits("signoff"))
    outcome = rework_mount(bench, lens, measured, tolerance)
    _REWORKS[run.record.run_id] = outcome
    measure.attach("mount_rework.json", json.dumps(outcome.to_dict(), indent=1, default=str).encode())
    run.add_plot(rework_checks(outcome))
    captures = [str(p) for r in outcome.rounds for p in r.captures]
    measure(
        "mount_rework_succeeded",
        1.0 if outcome.succeeded else 0.0,
        captures=captures,
        error=None if outcome.succeeded else outcome.reason,
    )


def test_profile_readback(measure, bench: BenchOps, profile: CalibrationProfile, written: VerificationLog) -> None:
    """The profile read back from the phone is byte-identical to the one written (and to profile.json)."""
    comparison = compare_profiles(profile, bench.phone.read_profile(), source="profile read back from the phone")
    written.update(readback_byte_identical=comparison.byte_identical, readback_differences=list(comparison.differences))
    measure(
        "profile_readback_match",
        1.0 if comparison.byte_identical else 0.0,
        error=None if comparison.byte_identical else "; ".join(comparison.differences[:5]) or "bytes differ",
    )


def test_flange_verification(
    measure,
    run: RunRecorder,
    bench: BenchOps,
    station: StationConfig,
    lens: LensSpec,
    profile: CalibrationProfile,
    written: VerificationLog,
) -> None:
    """A short sweep centred on the focus the profile predicts finds the flange where the profile says it is."""
    k = rail_defocus_um_per_mm(
        focal_length_mm=lens.focal_length_mm, collimator_focal_length_mm=station.optics.collimator_focal_length_mm
    )
    image_um = profile.flange_offset_um + np.linspace(-VERIFY_HALF_RANGE_UM, VERIFY_HALF_RANGE_UM, VERIFY_STEPS)
    check = proc.through_focus_at(bench, lens, image_um / k, t_stop=lens.t_stop, tag="verify-focus", with_assists=False)
    f = check.flange
    residual = f.flange_offset_um - profile.flange_offset_um
    written.update(
        flange_profile_um=profile.flange_offset_um,
        flange_remeasured_um=f.flange_offset_um,
        flange_residual_um=residual,
        tilt_x_remeasured_arcmin=f.tilt_x_arcmin,
        tilt_y_remeasured_arcmin=f.tilt_y_arcmin,
    )
    run.add_plot(_through_focus_plot("through_focus_verify", "Verification sweep about the profile's focus", check))
    measure("flange_residual_um", residual, captures=[fr.path for fr in check.frames])


def test_shading_verification(
    measure, run: RunRecorder, bench: BenchOps, lens: LensSpec, written: VerificationLog
) -> None:
    """A new flat field, corrected by the GainMaps the phone embeds in its own DNG, is flat within 1 %."""
    proc.ensure_lens(bench, lens)
    frame = proc.flat_field(bench, t_stop=lens.t_stop, tag="verify-flat")
    image = frame.image
    if image.opcode_list2 is None:
        raise MeasurementError(f"{frame.path}: the phone embedded no OpcodeList2: it does not apply the profile")
    opcodes = decode_opcode_list(image.opcode_list2, source=f"{frame.path} OpcodeList2")
    if sum(isinstance(op, GainMap) for op in opcodes) != len(BAYER_CHANNELS):
        raise MeasurementError(
            f"{frame.path}: OpcodeList2 holds {len(opcodes)} opcodes, expected one GainMap per Bayer channel"
        )
    corrected = apply_opcode_list(frame.raw.astype(np.float64) - image.black_level, opcodes, source=frame.path)
    residual = residual_shading(corrected, cfa_pattern=image.cfa_pattern)
    written.update(shading_residual_pct=residual.max_abs_pct, shading_residual_worst_pct=residual.worst_pct)
    measure("shading_residual_pct", residual.worst_pct, captures=[frame.path])
