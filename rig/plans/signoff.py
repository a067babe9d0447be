"""QA sign-off of one unit (issue #6): every claim of the phone measured against ``fixtures/limits/signoff.toml``.

Steps follow the bench with the fewest moves and lens changes: the native camera's flat field is taken before the
lens goes on; the flat-field ramp serves bit depth, light intake and zebras; one through-focus sweep serves flange,
tilt, sharpness and peaking; the stability series run last at the best focus the sweep found.

Every test asks for ``measure`` first, so a fault while the bench is being prepared is recorded against the step.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from rig.bench import figures
from rig.bench import procedures as proc
from rig.bench.ops import BenchOps, Frame
from rig.bench.recording import RunRecorder
from rig.calibrate.geometry import decentre_um
from rig.config.lenses import LensCatalog, LensSpec
from rig.measure import assist, stability, uniformity
from rig.measure.edges import measure_chart
from rig.results.reportdata import RefLine
from rig.spec.types import AssistOutputs

PLAN = "signoff"

RAMP_FRACTIONS = (0.12, 0.3, 0.5, 0.7, 0.88)
"""Flat-field exposure ramp (fraction of white − black at the centre): bit depth needs codes over the range."""
PITCHES_DEG = (-90.0, -45.0, 0.0, 45.0, 90.0)
REMOUNTS = 5
BURST_FRAMES = 16
BURST_INTERVAL_S = 0.006
SETTLING_UPSAMPLE = 25
ZONES = ("center", "mid", "corner")


# --------------------------------------------------------------------------------------------- shared captures
@pytest.fixture(scope="module")
def native_flat(bench: BenchOps, lenses: LensCatalog, lens: LensSpec) -> Frame:
    """The flat chart through the phone's own f/1.9 lens: the reference for light intake."""
    was_on = bench.phone.lens_state().attached
    proc.ensure_no_lens(bench)
    native = lenses.native
    frame = proc.flat_field(bench, t_stop=native.f_number / math.sqrt(native.transmission), tag="native-flat")
    if was_on:
        proc.ensure_lens(bench, lens)
    return frame


@pytest.fixture(scope="module")
def flat_ramp(bench: BenchOps, lens: LensSpec) -> list[Frame]:
    proc.ensure_lens(bench, lens)
    return [
        proc.flat_field(bench, t_stop=lens.t_stop, fraction=f, tag=f"flat-{round(f * 100):02d}") for f in RAMP_FRACTIONS
    ]


@pytest.fixture(scope="module")
def sweep(bench: BenchOps, lens: LensSpec) -> proc.Sweep:
    proc.ensure_lens(bench, lens)
    return proc.through_focus(bench, lens, t_stop=lens.t_stop)


@pytest.fixture(scope="module")
def best_frame(bench: BenchOps, sweep: proc.Sweep) -> tuple[Frame, AssistOutputs]:
    """The chart at the sweep's best focus, and the phone's assists computed on exactly that frame."""
    exposure = sweep.frames[0].exposure_time_s
    frame = bench.shoot(
        chart="sfr", tag="best-focus", rail_mm=sweep.best_rail_mm(), light=proc.LIGHT_LEVEL, exposure_time_s=exposure
    )
    return frame, bench.phone.assist_outputs()


def _thumbnail(run: RunRecorder, frame: Frame, caption: str) -> None:
    png = figures.preview_png(frame.raw, black_level=frame.image.black_level, white_level=frame.image.white_level)
    run.add_thumbnail(run.save_file(frame.path.replace(".dng", ".png"), png), caption)


def _since_ms(stamps_ms: list[float | None], origin_ms: float) -> np.ndarray:
    """Phone times relative to ``origin_ms`` (ms), NaN where a frame has none. Computed on the phone's µs grid:
    ms since the epoch as floats carry representation errors that depend on the absolute time, so a plain
    difference would differ in its last bits from run to run for the same relative times."""
    origin_us = round(origin_ms * 1000)
    return np.array([math.nan if s is None else (round(s * 1000) - origin_us) / 1000 for s in stamps_ms])


def _mid(frames: list[Frame]) -> Frame:
    return frames[len(frames) // 2]


# --------------------------------------------------------------------------------------------- steps
def test_lens_detection(measure, bench: BenchOps, native_flat: Frame, lens: LensSpec) -> None:
    """The phone sees the lens go on, reads its 6-bit code and switches to the M-mount sensor in time."""
    proc.ensure_no_lens(bench)
    bench.operator.mount_lens(lens.id)
    state = proc.wait_for_sensor(bench.phone, attached=True, timeout_s=bench.station.phone.lens_change_timeout_s)
    measure("lens_detected", 1.0 if state.attached and state.lens_code == lens.lens_code else 0.0)
    measure("sensor_switch_latency_ms", assist.sensor_switch_latency(state).latency_ms)


def test_raw_bit_depth(measure, run: RunRecorder, flat_ramp: list[Frame]) -> None:
    """The RAW frames use every code of a 10-bit range (a dropped bit halves the codes)."""
    # per frame: each flat covers a continuous run of codes (shading + noise); between ramp levels codes are
    # simply not exposed, which says nothing about the bit depth
    depths = [
        assist.raw_bit_depth(f.raw, black_level=f.image.black_level, white_level=f.image.white_level) for f in flat_ramp
    ]
    paths = [f.path for f in flat_ramp]
    effective = float(np.median([d.effective_bits for d in depths]))
    measure("raw_effective_bits", effective, captures=paths)
    measure("raw_missing_codes", float(sum(d.missing_codes for d in depths)), captures=paths)
    run.add_plot(
        figures.trace(
            "bit_depth",
            "RAW codes used per flat-field level",
            [float(np.mean(d.code_range)) for d in depths],
            {"effective bits": [d.effective_bits for d in depths]},
            x_label="mean level above black",
            x_unit="DN",
            y_label="effective bits",
            y_unit="bit",
        )
    )


def test_light_intake(
    measure, run: RunRecorder, bench: BenchOps, flat_ramp: list[Frame], native_flat: Frame, lens: LensSpec
) -> None:
    """T-stop, gain over the native lens, relative illumination, falloff centre, colour shading."""
    flat = _mid(flat_ramp)
    # a T-stop is a luminance measurement: the panel must hold its level (issue #8, flicker or drift = ERROR)
    proc.check_light_steady(bench, flat, tag="flat-repeat")
    image = flat.image
    pitch = bench.station.sensor.readout_pitch_um
    u = uniformity.measure_uniformity(
        flat.raw,
        black_level=image.black_level,
        white_level=image.white_level,
        pixel_pitch_um=pitch,
        cfa_pattern=image.cfa_pattern,
    )
    light = bench.station.light
    t = uniformity.t_stop(
        u.centre_signal_dn,
        response_dn_per_cd_m2_s=light.response_dn_per_cd_m2_s,
        luminance_cd_m2=flat.light_level * light.luminance_cd_m2_at_max,
        exposure_time_s=flat.exposure_time_s,
        iso=flat.iso,
    )
    gain = uniformity.light_gain(
        flat.raw,
        native_flat.raw,
        black_level=image.black_level,
        white_level=image.white_level,
        pixel_pitch_um=pitch,
        exposure_ratio=(flat.exposure_time_s * flat.iso) / (native_flat.exposure_time_s * native_flat.iso),
        cfa_pattern=image.cfa_pattern,
    )
    caps = [flat.path]
    measure("t_stop_error_stops", 2 * math.log2(t.t_stop / lens.t_stop), captures=caps)
    measure("light_gain_over_native_x", gain.gain_x, captures=[flat.path, native_flat.path])
    measure("corner_falloff_stops", u.corner_falloff_stops[0.9], captures=caps)
    measure("shading_centre_offset_um", math.hypot(u.decentre_x_um, u.decentre_y_um), captures=caps)
    measure("colour_shading_pct", u.colour_shading_pct, captures=caps)
    run.add_plot(figures.shading_map(u))
    _thumbnail(run, flat, "flat field through the lens")


def test_decentre(measure, run: RunRecorder, bench: BenchOps, lens: LensSpec) -> None:
    """Where the lens's optical axis meets the sensor: the dot grid's distortion centre."""
    proc.ensure_lens(bench, lens)
    frame, fit = proc.dot_grid(bench, t_stop=lens.t_stop)
    dx, dy = decentre_um(
        fit.principal_point_px,
        width_px=frame.image.width,
        height_px=frame.image.height,
        pixel_pitch_um=bench.station.sensor.readout_pitch_um,
    )
    measure("decentre_um", math.hypot(dx, dy), captures=[frame.path])
    measure("distortion_rms_px", fit.rms_residual_px, captures=[frame.path])
    _thumbnail(run, frame, f"dot grid: optical axis {dx:+.1f}, {dy:+.1f} µm from the sensor centre")


def test_zebra(measure, bench: BenchOps, flat_ramp: list[Frame]) -> None:
    """The phone's zebra marks the same quads as ours on a bright flat field (its shading spans the threshold)."""
    bright = flat_ramp[-1]
    frame = bench.shoot(chart="flat", tag="zebra", light=bright.light_level, exposure_time_s=bright.exposure_time_s)
    outputs = bench.phone.assist_outputs()
    image = frame.image
    zebra = assist.zebra_agreement(
        frame.raw,
        outputs.zebra_mask,
        black_level=image.black_level,
        white_level=image.white_level,
        threshold_pct=outputs.zebra_threshold_pct,
    )
    measure("zebra_iou", zebra.iou, captures=[frame.path])


def test_flange_alignment(measure, run: RunRecorder, bench: BenchOps, sweep: proc.Sweep) -> None:
    """Flange focal distance error and sensor tilt from the through-focus sweep."""
    f = sweep.flange
    caps = [fr.path for fr in sweep.frames]
    measure("flange_offset_um", f.flange_offset_um, captures=caps)
    measure("tilt_x_arcmin", f.tilt_x_arcmin, captures=caps)
    measure("tilt_y_arcmin", f.tilt_y_arcmin, captures=caps)
    measure("field_curvature_um", f.field_curvature_um, captures=caps)
    run.add_plot(figures.through_focus_curves(f, sweep.rail_um_per_mm))
    half_diag_um = bench.station.sensor.half_diagonal_mm * 1000
    run.add_plot(figures.focus_field_map(f, half_diagonal_um=half_diag_um))


def test_sharpness(measure, run: RunRecorder, bench: BenchOps, sweep: proc.Sweep, best_frame) -> None:
    """ISO 12233 MTF50 per field zone at each edge's best focus; MTF curves at the sweep's best focus."""
    per_zone = proc.zone_mtf50_at_best_focus(sweep)
    caps = [fr.path for fr in sweep.frames]
    for zone in ZONES:
        measure(
            "mtf50_cy_px", per_zone.get(zone), zone=zone, captures=caps, error=None if zone in per_zone else "no edge"
        )
    frame, _ = best_frame
    image = frame.image
    chart = measure_chart(
        frame.raw,
        cfa_pattern=image.cfa_pattern,
        black_level=image.black_level,
        white_level=image.white_level,
        pixel_pitch_um=bench.station.sensor.readout_pitch_um,
    )
    run.add_plot(figures.mtf_curves(chart))
    _thumbnail(run, frame, "slanted-edge chart at best focus")


def test_focus_assists(measure, run: RunRecorder, sweep: proc.Sweep, best_frame) -> None:
    """Histogram and focus peaking at best focus agree with ours on the same frame."""
    frame, outputs = best_frame
    image = frame.image
    hist = assist.histogram_agreement(
        frame.raw, outputs.histogram, black_level=image.black_level, white_level=image.white_level
    )
    peaking = assist.peaking_agreement(
        frame.raw,
        outputs.peaking_mask,
        black_level=image.black_level,
        white_level=image.white_level,
        threshold=outputs.peaking_threshold,
    )
    measure("histogram_error_bins", hist.bin_offset, captures=[frame.path])
    measure("peaking_iou", peaking.iou, captures=[frame.path])
    rows = [
        ("histogram offset", "0 bins", f"{hist.bin_offset:+d} bins", hist.bin_offset == 0),
        ("peaking IoU", "≥ 0.90", f"{peaking.iou:.3f}", peaking.iou >= 0.9),
    ]
    if sweep.peaking_coverage.size >= 5:
        pf = assist.peaking_focus(sweep.rail_mm, sweep.peaking_coverage, sfr_best_rail_mm=sweep.best_rail_mm())
        diff_um = pf.difference_mm * sweep.rail_um_per_mm
        rows.append(
            ("peaking best focus vs SFR", "within the depth of focus", f"{diff_um:+.1f} µm", abs(diff_um) <= 4.5)
        )
    run.add_plot(figures.checks("feature_checks", "Camera feature checks", rows))


def test_sag(measure, run: RunRecorder, bench: BenchOps, sweep: proc.Sweep, lens: LensSpec) -> None:
    """Image shift and lens tilt under the lens's weight across fixture pitch."""
    frames, shifts = proc.sag_series(bench, sweep, pitches=PITCHES_DEG)
    pitch_um = bench.station.sensor.readout_pitch_um
    sag = stability.sag_vs_pitch(
        list(PITCHES_DEG), shifts, pixel_pitch_um=pitch_um, lever_arm_mm=lens.focal_length_mm - 27.8
    )
    caps = [f.path for f in frames]
    measure("sag_shift_um", sag.sag_um, captures=caps)
    measure("sag_tilt_arcmin", sag.sag_tilt_arcmin, captures=caps)
    run.add_plot(figures.sag_trace("Image shift across fixture pitch", PITCHES_DEG, sag.shift_x_um, sag.shift_y_um))


def test_settling(measure, run: RunRecorder, bench: BenchOps, sweep: proc.Sweep) -> None:
    """After a knock the image stays within 0.25 px after the settling time."""
    exposure = sweep.frames[0].exposure_time_s
    settled = bench.shoot(
        chart="sfr", tag="settled", rail_mm=sweep.best_rail_mm(), light=proc.LIGHT_LEVEL, exposure_time_s=exposure
    )
    # 0.04 px steps: the damped-decay fit over the burst averages far below that, against a 0.25 px band
    tracker = proc.ShiftTracker(bench.pool, settled, upsample=SETTLING_UPSAMPLE)
    knock_ms = proc.knock_and_time(bench, timeout_s=bench.station.phone.lens_change_timeout_s)
    # from the phone's ring buffer, starting two frames before the shock it timed; each frame registers as soon
    # as it is downloaded, while the rest of the burst comes in
    frames = bench.burst(
        BURST_FRAMES,
        tag="knock",
        interval_s=BURST_INTERVAL_S,
        start_ms=knock_ms - 2 * BURST_INTERVAL_S * 1000,
        on_image=lambda index, image: tracker.put(index, image.raw),
    )
    shifts = tracker.shifts()
    t_ms = _since_ms([f.timestamp_ms for f in frames], knock_ms)
    result = stability.settling_time(t_ms.tolist(), shifts, knock_time_ms=0.0)
    measure("settle_time_ms", result.settle_time_ms, captures=[settled.path] + [f.path for f in frames])
    run.add_plot(
        figures.trace(
            "settling",
            "Image motion after a knock",
            t_ms.tolist(),
            {"dx": shifts[:, 0], "dy": shifts[:, 1]},
            x_label="time after the knock",
            x_unit="ms",
            y_label="shift",
            y_unit="px",
            hlines=[RefLine(value=0.25, label="+0.25 px"), RefLine(value=-0.25, label="−0.25 px")],
        )
    )


def test_remount(measure, run: RunRecorder, bench: BenchOps, sweep: proc.Sweep, lens: LensSpec) -> None:
    """The image lands in the same place every time the lens is remounted."""
    exposure = sweep.frames[0].exposure_time_s
    tracker = proc.ShiftTracker(bench.pool)  # each remount's frame registers while the lens is remounted again
    frames = proc.remount_series(
        bench,
        lens,
        rail_mm=sweep.best_rail_mm(),
        exposure_s=exposure,
        count=REMOUNTS,
        tag="remount",
        on_frame=tracker.add,
    )
    shifts = tracker.shifts()
    pitch_um = bench.station.sensor.readout_pitch_um
    rep = stability.remount_repeatability(shifts, pixel_pitch_um=pitch_um)
    caps = [f.path for f in frames]
    measure("remount_sigma_um", rep.sigma_um, captures=caps)
    measure("remount_range_um", rep.range_um, captures=caps)
    run.add_plot(
        figures.trace(
            "remount",
            "Image position per remount",
            list(range(1, len(frames) + 1)),
            {"x": shifts[:, 0] * pitch_um, "y": shifts[:, 1] * pitch_um},
            x_label="mount",
            x_unit="",
            y_label="position",
            y_unit="µm",
        )
    )
