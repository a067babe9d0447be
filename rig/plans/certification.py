"""Lens compatibility certification (issue #6.5): does a catalog Leica M lens work on this phone, and how well?

``rig certify --lens ID [--unit U]`` or ``pytest --pyargs rig.plans.certification --lens ID``. Every number is
recorded against ``fixtures/limits/certification.toml`` (the run's PASS / FAIL / ERROR); the last step grades the
failures into a certificate (CERTIFIED / CERTIFIED WITH LIMITATIONS / NOT CERTIFIED with reasons, rules in
:mod:`rig.calibrate.certificate`) written as ``certificate.json``, and a lensfun entry (ptlens distortion from the
dot grid, poly3 TCA from the dot grid's colour planes, pa vignetting per aperture from the flat fields) written as
``lensfun.xml`` in the run folder.

Apertures: the lens's widest stop, f/2.8 and f/5.6 where the ring has them (:func:`apertures_for`): wide open is
where focus, sharpness and vignetting are hardest; f/5.6 is where a lens is usually at its best and mechanical
vignetting has faded; f/2.8 is the common working stop between them. The aperture is set through the operator
(the ring is manual).

Steps follow the bench with the fewest moves: detection as the lens goes on; the flat chart at every aperture
(T-stop, vignetting); the dot grid (distortion, lateral colour); the slanted-edge chart through focus wide open
(flange, infinity, sharpness, corner symmetry), then at each smaller stop one frame at the best focus found and a
sweep of its own (focus shift); the pitch series (sag); the certificate.

Two lens-side defects a certification lab meets have measurements of their own (issue #16):

* **focus shift** (``focus_shift_um`` per smaller stop): a lens with under-corrected spherical aberration focuses
  farther from the lens as it is stopped down, because the marginal zones it loses focus nearer than the
  paraxial ones (V. N. Mahajan, *Optical Imaging and Aberrations*, Part I, SPIE 1998, balanced primary
  aberrations: W040ρ⁴ is balanced by W020 = −W040 for the least wavefront variance; minimising the mean square
  ray error ⟨|∇W|²⟩ instead gives −4/3·W040, the least rms spot; :func:`rig.twin.wavefront.focus_shift_um`).
  A picture focused wide open and taken stopped down is out of focus when that shift exceeds the depth of focus
  N·c at the working stop. The binned read-out's MTF50 barely shows it (a 10 µm defocus at f/2.8 is a 3.6 µm
  blur under a 6.4 µm pixel), so each smaller stop is swept through focus and its best focus compared with wide
  open's.
* **a decentred element** (``corner_mtf50_ratio``): one corner softer than the opposite one, each edge at its own
  best focus so the mount's tilt is not blamed on the lens (:mod:`rig.measure.field_symmetry`).

Sharpness is graded on the sensor's own 1.6 µm pixels (issue #16 scope 3), whatever the station's binning: the
binned sweep finds the chart's squares, their edges and each edge's best focus, then the phone reads out a window
at the native pitch around each square (vendor property ``ReadoutWindows``, ``docs/readout-windows.md``) and the
e-SFR runs on the edges' ROIs scaled into the windows: wide open each edge at its own best focus (to N·c/8), at
each smaller stop at that stop's best focus. ``mtf50_cy_px`` (cycles per native pixel, recorded with
``readout_binning=1``: the limits' plain zones) and ``corner_mtf50_ratio`` come from those; a 6.4 µm pixel's box
filter hid most of what a lens does. Focus shift and flange stay on the binned sweeps: a best focus is a rail
position, whatever the pixel.

The flange offset (information) and the infinity margin are those of the *widest stop*: both carry its zone
(``f1.4``); with focus shift the best focus, and so the flange a sweep sees, depends on the aperture.

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
from rig.calibrate.certificate import (
    CERTIFICATE_FILE,
    LENSFUN_FILE,
    aperture_zone,
    certificate_checks,
    issue_certificate,
    lensfun_entry,
)
from rig.calibrate.lensfun import PaFit, fit_pa_vignetting, lensfun_xml, phone_camera
from rig.config.lenses import LensSpec
from rig.config.station import StationConfig
from rig.errors import DeviceTimeout
from rig.measure import stability, uniformity
from rig.measure.dotgrid import DotGridFit
from rig.measure.edges import ChartEdge, ChartResult
from rig.measure.field_symmetry import corner_symmetry
from rig.measure.focus import FlangeResult
from rig.measure.lateral_colour import LateralColourFit, measure_lateral_colour

PLAN = "certification"

WORKING_STOPS = (2.8, 5.6)
"""Stops certified besides wide open, where the lens's ring has them."""
COC_FULL_PIXELS = 2.0
"""Circle of confusion in full-resolution pixels (2 × 1.6 µm = 3.2 µm, DESIGN.md §1): the depth of focus is ±N·c
whatever read-out binning the bench uses, because a user shoots at full resolution."""
PITCHES_DEG = (-90.0, 0.0, 90.0)
"""Lens up, level, lens down: sag goes as cos(pitch), so these three poses span it fully (0, 1, 0)."""
FLANGE_FOCAL_DISTANCE_MM = 27.8
"""Leica M flange focal distance: the lens droops about the flange, its image moves by (f − 27.8 mm)·angle."""
MIN_LEVER_ARM_MM = 0.5
"""Below this |f − 27.8 mm| :func:`rig.measure.stability.sag_vs_pitch` refuses to derive a tilt from a shift: the
rear nodal point sits at the pivot, so the image does not move however the lens droops (28 mm lenses)."""
RADIAL_BINS = 40
ZONES = ("center", "mid", "corner")
NATIVE_BINNING = 1
"""Sharpness is graded on the sensor's own pixels (read-out windows, 1.6 µm), whatever the station's binning: the
limits' plain zones are for them."""


def apertures_for(lens: LensSpec) -> tuple[float, ...]:
    """The stops certified: wide open, then f/2.8 and f/5.6 where marked and smaller than wide open."""
    marked = [n for n in WORKING_STOPS if any(abs(n - m) < 1e-6 for m in lens.f_numbers)]
    return (lens.max_f_number, *(n for n in marked if n > lens.max_f_number + 1e-6))


def t_stop_at(lens: LensSpec, f_number: float) -> float:
    """Nominal T-stop N/√T at ``f_number`` (exposure planning)."""
    return f_number / math.sqrt(lens.transmission)


def set_aperture(bench: BenchOps, f_number: float) -> None:
    bench.operator.set_aperture(f_number)


def depth_of_focus_um(bench: BenchOps, f_number: float) -> float:
    """Half depth of focus N·c (µm) with c = 2 full-resolution pixels."""
    return f_number * COC_FULL_PIXELS * bench.station.sensor.pixel_pitch_um


def radial_relative_illumination(frame: Frame, *, bins: int = RADIAL_BINS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Green relative illumination of a flat field against the radius from the frame centre.

    The radius is measured from the frame centre, not the optical axis, because that is where lensfun applies its
    correction (the entry carries no centre). Returns (r, RI, pixel count) per radial bin, r = 1 at the half
    diagonal (rms radius of the bin, so an r² law is sampled without bias), RI relative to the centre bin.
    """
    image = frame.image
    planes = uniformity.bayer_planes(frame.raw, black_level=image.black_level, cfa_pattern=image.cfa_pattern)
    green = 0.5 * (planes["Gr"] + planes["Gb"])
    gh, gw = green.shape
    h, w = frame.raw.shape
    # green-plane sample (i, j) sits at raw (2j + 0.5, 2i + 0.5): the centre of its quad
    x = 2.0 * np.arange(gw) + 0.5 - (w - 1) / 2.0
    y = 2.0 * np.arange(gh) + 0.5 - (h - 1) / 2.0
    r2 = (x[None, :] ** 2 + y[:, None] ** 2) / (0.25 * (w * w + h * h))
    index = np.minimum((np.sqrt(r2) * bins).astype(np.int64), bins - 1).ravel()
    count = np.bincount(index, minlength=bins).astype(np.float64)
    total = np.bincount(index, weights=green.ravel().astype(np.float64), minlength=bins)
    r2_sum = np.bincount(index, weights=r2.ravel(), minlength=bins)
    ok = count > 0
    mean = total[ok] / count[ok]
    return np.sqrt(r2_sum[ok] / count[ok]), mean / mean[0], count[ok]


# --------------------------------------------------------------------------------------------- shared captures
@pytest.fixture(scope="module")
def stops(lens: LensSpec) -> tuple[float, ...]:
    return apertures_for(lens)


@pytest.fixture(scope="module")
def flats(bench: BenchOps, lens: LensSpec, stops: tuple[float, ...]) -> dict[float, Frame]:
    """The flat chart at every certified aperture (exposed to half scale at the centre), left wide open."""
    proc.ensure_lens(bench, lens)
    out = {}
    for n in stops:
        set_aperture(bench, n)
        out[n] = proc.flat_field(bench, t_stop=t_stop_at(lens, n), tag=f"flat-f{n:g}")
    set_aperture(bench, stops[0])
    return out


@pytest.fixture(scope="module")
def vignetting_fits(flats: dict[float, Frame]) -> dict[float, PaFit]:
    """lensfun pa coefficients per aperture from each flat's radial green falloff."""
    fits = {}
    for n, frame in flats.items():
        r, ri, count = radial_relative_illumination(frame)
        fits[n] = fit_pa_vignetting(r, ri, weights=count)
    return fits


@pytest.fixture(scope="module")
def grid(bench: BenchOps, lens: LensSpec, stops: tuple[float, ...]) -> tuple[Frame, DotGridFit]:
    proc.ensure_lens(bench, lens)
    set_aperture(bench, stops[0])
    return proc.dot_grid(bench, t_stop=lens.t_stop)


@pytest.fixture(scope="module")
def lateral_colour(bench: BenchOps, grid: tuple[Frame, DotGridFit]) -> LateralColourFit:
    """Red and blue against green from the dot grid's colour planes (lensfun poly3 TCA)."""
    frame, _ = grid
    image = frame.image
    return measure_lateral_colour(
        frame.raw,
        cfa_pattern=image.cfa_pattern,
        black_level_dn=image.black_level,
        pixel_pitch_um=bench.station.sensor.readout_pitch_um,
    )


@pytest.fixture(scope="module")
def sweep(bench: BenchOps, lens: LensSpec, stops: tuple[float, ...]) -> proc.Sweep:
    """Through focus wide open, where the depth of focus is smallest (focus assists are not certified)."""
    proc.ensure_lens(bench, lens)
    set_aperture(bench, stops[0])
    return proc.through_focus(bench, lens, t_stop=lens.t_stop, with_assists=False)


@pytest.fixture(scope="module")
def wide_open_native(
    bench: BenchOps, lens: LensSpec, stops: tuple[float, ...], sweep: proc.Sweep
) -> proc.NativeSharpness:
    """Every edge of the wide-open sweep at the native pitch, each at its own best focus (to N·c/8).

    The binned sweep found the edges and their best foci; the edges whose foci agree to a quarter of the depth of
    focus are read out together, a window around each square, midway between them
    (:func:`rig.bench.procedures.focus_groups`).
    """
    proc.ensure_lens(bench, lens)
    set_aperture(bench, stops[0])
    groups = proc.focus_groups(sweep, depth_of_focus_um=depth_of_focus_um(bench, stops[0]))
    return proc.native_sharpness(
        bench, groups, exposure_time_s=sweep.frames[0].exposure_time_s, tag=f"sharp-f{stops[0]:g}"
    )


@pytest.fixture(scope="module")
def stopped_down(
    bench: BenchOps, lens: LensSpec, stops: tuple[float, ...], stopped_sweeps: dict[float, proc.Sweep]
) -> dict[float, proc.NativeSharpness]:
    """Every edge at the native pitch per smaller stop, at that stop's own best focus (its sweep's).

    One focus is enough per stop: from f/2.8 on the depth of focus (±N·c ≥ ±9 µm) covers the field curvature and
    tilt of a lens that passes wide open. At its own best focus, a stop's sharpness is the lens's at that stop; how
    far the best focus moves from wide open is graded on its own (:func:`test_focus_shift`): on native pixels a
    focus left where it was wide open would charge a focus shift to sharpness as well.
    """
    out = {}
    for n, stopped in stopped_sweeps.items():
        set_aperture(bench, n)
        out[n] = proc.native_sharpness(
            bench,
            [(stopped.best_rail_mm(), list(stopped.flange.edges))],
            exposure_time_s=stopped.frames[0].exposure_time_s,
            tag=f"sharp-f{n:g}",
        )
    set_aperture(bench, stops[0])
    return out


@pytest.fixture(scope="module")
def stopped_sweeps(
    bench: BenchOps, lens: LensSpec, stops: tuple[float, ...], sweep: proc.Sweep
) -> dict[float, proc.Sweep]:
    """A through-focus sweep at each smaller stop, over the wide-open sweep's range about its best focus.

    The same range and steps as wide open: the through-focus curve only broadens when stopped down (blur |δ|/N),
    so a shift that the range brackets wide open is bracketed here too, and the fits are alike.
    """
    proc.ensure_lens(bench, lens)
    rails = proc.sweep_rails(bench.station, lens, half_range_um=proc.SWEEP_HALF_RANGE_UM, steps=proc.SWEEP_STEPS)
    out = {}
    for n in stops[1:]:
        set_aperture(bench, n)
        out[n] = proc.through_focus_at(
            bench, lens, rails + sweep.best_rail_mm(), t_stop=t_stop_at(lens, n), tag=f"focus-f{n:g}",
            with_assists=False,
        )  # fmt: skip
    set_aperture(bench, stops[0])
    return out


def focus_shift_um(wide_open: FlangeResult, stopped: FlangeResult) -> float:
    """How far the best focus on axis moves from wide open to a smaller stop (µm on the image).

    + = the image moves away from the lens (the sensor would have to move back): ``s(N_max) − s(N)``, with s the
    sensor's position against the image, :attr:`FlangeResult.flange_offset_um` of each aperture's sweep.
    """
    return wide_open.flange_offset_um - stopped.flange_offset_um


def _thumbnail(run: RunRecorder, frame: Frame, caption: str) -> None:
    png = figures.preview_png(frame.raw, black_level=frame.image.black_level, white_level=frame.image.white_level)
    run.add_thumbnail(run.save_file(frame.path.replace(".dng", ".png"), png), caption)


# --------------------------------------------------------------------------------------------- steps
def test_lens_detection(measure, bench: BenchOps, lens: LensSpec) -> None:
    """The phone sees the lens go on, reads its 6-bit code and switches to the M-mount sensor."""
    proc.ensure_no_lens(bench)
    bench.operator.mount_lens(lens.id)
    try:
        state = proc.wait_for_sensor(bench.phone, attached=True, timeout_s=bench.station.phone.lens_change_timeout_s)
    except DeviceTimeout as exc:
        # the phone answers but never reports this lens: that is the lens not detected, not a bench fault
        measure("lens_detected", 0.0, error=str(exc))
        return
    measure("lens_detected", 1.0 if state.attached and state.lens_code == lens.lens_code else 0.0)


def test_light_intake(
    measure, run: RunRecorder, bench: BenchOps, flats: dict[float, Frame], vignetting_fits: dict[float, PaFit],
    lens: LensSpec, stops: tuple[float, ...],
) -> None:  # fmt: skip
    """T-stop at full aperture; corner falloff and the lensfun pa fit per aperture."""
    pitch = bench.station.sensor.readout_pitch_um
    light = bench.station.light
    series: dict[str, list[float]] = {}
    for n in stops:
        flat = flats[n]
        image = flat.image
        u = uniformity.measure_uniformity(
            flat.raw,
            black_level=image.black_level,
            white_level=image.white_level,
            pixel_pitch_um=pitch,
            cfa_pattern=image.cfa_pattern,
        )
        if n == stops[0]:
            t = uniformity.t_stop(
                u.centre_signal_dn,
                response_dn_per_cd_m2_s=light.response_dn_per_cd_m2_s,
                luminance_cd_m2=flat.light_level * light.luminance_cd_m2_at_max,
                exposure_time_s=flat.exposure_time_s,
                iso=flat.iso,
            )
            measure("t_stop_error_stops", 2 * math.log2(t.t_stop / lens.t_stop), captures=[flat.path])
            run.add_plot(figures.shading_map(u))
            _thumbnail(run, flat, f"flat field at f/{n:g}")
        measure("corner_falloff_stops", u.corner_falloff_stops[0.9], zone=aperture_zone(n), captures=[flat.path])
        fit = vignetting_fits[n]
        radii = np.linspace(0.0, 1.0, 21)
        series[f"f/{n:g} (pa fit, rms {fit.rms_residual:.4f})"] = list(
            1.0 + fit.k1 * radii**2 + fit.k2 * radii**4 + fit.k3 * radii**6
        )
    run.add_plot(
        figures.trace(
            "vignetting",
            "Relative illumination per aperture (lensfun pa fit)",
            np.linspace(0.0, 1.0, 21),
            series,
            x_label="field radius (1 = half diagonal)",
            x_unit="",
            y_label="relative illumination",
            y_unit="×",
        )
    )


def test_distortion(measure, run: RunRecorder, grid: tuple[Frame, DotGridFit]) -> None:
    """ptlens distortion from the dot grid (for the lensfun entry); the residual says how well ptlens fits."""
    frame, fit = grid
    measure("distortion_rms_px", fit.rms_residual_px, captures=[frame.path])
    _thumbnail(run, frame, f"dot grid: ptlens a {fit.ptlens_a:+.5f}, b {fit.ptlens_b:+.5f}, c {fit.ptlens_c:+.5f}")


def test_lateral_colour(
    measure, run: RunRecorder, grid: tuple[Frame, DotGridFit], lateral_colour: LateralColourFit
) -> None:
    """Transverse chromatic aberration from the dot grid (for the lensfun TCA entry): how far red and blue land
    from green at the frame corner, and how well lensfun's poly3 model follows it."""
    frame, _ = grid
    fit = lateral_colour
    for zone, channel in (("red", fit.red), ("blue", fit.blue)):
        measure("lateral_colour_um", channel.corner_shift_um, zone=zone, captures=[frame.path])
        measure("tca_residual_px", channel.rms_residual_px, zone=zone, captures=[frame.path])
    radii = np.linspace(0.0, 1.0, 21)
    series = {
        f"{name} (poly3 v {channel.v:.6f}, b {channel.b:+.2e})": list(fit.radial_shift_um(channel, radii))
        for name, channel in (("red", fit.red), ("blue", fit.blue))
    }
    run.add_plot(
        figures.trace(
            "lateral_colour",
            "Lateral colour against green (lensfun poly3 TCA fit)",
            radii,
            series,
            x_label="field radius (1 = half diagonal)",
            x_unit="",
            y_label="radial shift",
            y_unit="µm",
        )
    )


def test_infinity_focus(
    measure, run: RunRecorder, bench: BenchOps, sweep: proc.Sweep, stops: tuple[float, ...]
) -> None:
    """Infinity focus reachable with this unit's flange: margin = flange offset + N·c per aperture.

    The bench's chart at the collimator focus is a subject at infinity, so the sweep's best focus on axis is
    where the lens's infinity image lands relative to the sensor (flange offset, + = sensor too far back). A
    sensor too far back is compensated by racking the focus ring out (the lens moves forward from its infinity
    stop). A sensor too close cannot be: the lens would have to move behind its infinity stop. Within the depth
    of focus ±N·c the image is sharp anyway, so infinity is reachable while flange + N·c ≥ 0.
    """
    caps = [fr.path for fr in sweep.frames]
    flange = sweep.flange.flange_offset_um
    # the sweep is taken wide open: with focus shift the flange a sweep sees depends on the aperture
    measure("flange_offset_um", flange, zone=aperture_zone(stops[0]), captures=caps)
    for n in stops:
        measure("infinity_focus_margin_um", flange + depth_of_focus_um(bench, n), zone=aperture_zone(n), captures=caps)
    run.add_plot(figures.through_focus_curves(sweep.flange, sweep.rail_um_per_mm))


def test_sharpness(
    measure, run: RunRecorder, wide_open_native: proc.NativeSharpness,
    stopped_down: dict[float, proc.NativeSharpness], stops: tuple[float, ...],
) -> None:  # fmt: skip
    """MTF50 per field zone and aperture at the sensor's native pitch (read-out windows around each square): wide
    open at each edge's best focus, stopped down at the best focus."""
    for n, native in ((stops[0], wide_open_native), *stopped_down.items()):
        medians = native.zone_mtf50()
        caps = [fr.path for fr in native.frames]
        for zone in ZONES:
            measure(
                "mtf50_cy_px",
                medians.get(zone),
                zone=aperture_zone(n, zone),
                captures=caps,
                error=None if zone in medians else "no edge",
                readout_binning=NATIVE_BINNING,
            )
        if n == stops[-1] or n == stops[0]:
            chart = ChartResult(tuple(ChartEdge(e.focus.roi, e.sfr, e.error) for e in native.edges))
            run.add_plot(
                figures.mtf_curves(
                    chart, name=f"mtf-f{n:g}", title=f"MTF at f/{n:g}, native {native.pixel_pitch_um:g} µm pixels"
                )
            )


def test_field_symmetry(
    measure, run: RunRecorder, sweep: proc.Sweep, wide_open_native: proc.NativeSharpness, stops: tuple[float, ...]
) -> None:
    """Softest corner against the sharpest, wide open, each edge at its own best focus (a decentred element), at
    the native pitch."""
    height, width = sweep.frames[0].raw.shape
    symmetry = corner_symmetry(wide_open_native.as_focused_edges(), width_px=width, height_px=height)
    caps = [fr.path for fr in (*sweep.frames, *wide_open_native.frames)]
    measure("corner_mtf50_ratio", symmetry.ratio, zone=aperture_zone(stops[0]), captures=caps)
    corners = list(symmetry.mtf50_cy_px)
    run.add_plot(
        figures.trace(
            "corner_symmetry",
            f"Corner MTF50 at best focus, f/{stops[0]:g} (softest {symmetry.softest}, ratio {symmetry.ratio:.2f})",
            list(range(len(corners))),
            {"MTF50 at best focus (median of the corner's edges)": [symmetry.mtf50_cy_px[c] for c in corners]},
            x_label=f"corner ({', '.join(str(c) for c in corners)})",
            x_unit="",
            y_label="MTF50",
            y_unit="cy/native px",
        )
    )


def test_focus_shift(
    measure, run: RunRecorder, bench: BenchOps, sweep: proc.Sweep, stopped_sweeps: dict[float, proc.Sweep],
    stops: tuple[float, ...],
) -> None:  # fmt: skip
    """Best focus on axis at each smaller stop against wide open (µm on the image, + = away from the lens).

    Graded against the depth of focus ±N·c of that stop: beyond it, a picture focused wide open and taken there is
    out of focus.
    """
    shifts = [0.0]
    for n, stopped in stopped_sweeps.items():
        shift = focus_shift_um(sweep.flange, stopped.flange)
        shifts.append(shift)
        caps = [fr.path for fr in (*sweep.frames, *stopped.frames)]
        measure("focus_shift_um", shift, zone=aperture_zone(n), captures=caps)
    dof = [depth_of_focus_um(bench, n) for n in stops]
    run.add_plot(
        figures.trace(
            "focus_shift",
            "Best focus on axis against wide open, with the depth of focus ±N·c",
            list(stops),
            {"best focus": shifts, "+N·c": dof, "−N·c": [-d for d in dof]},
            x_label="f-number",
            x_unit="",
            y_label="focus shift (+ = away from the lens)",
            y_unit="µm",
        )
    )


def sag_tilt_measurable(lens: LensSpec) -> bool:
    return abs(lens.focal_length_mm - FLANGE_FOCAL_DISTANCE_MM) >= MIN_LEVER_ARM_MM


def certificate_notes(lens: LensSpec) -> list[str]:
    """What the plan cannot apply to this lens, stated on its certificate."""
    notes = []
    if not sag_tilt_measurable(lens):
        lever = abs(lens.focal_length_mm - FLANGE_FOCAL_DISTANCE_MM)
        notes.append(
            f"Sag tilt not measured: the {lens.focal_length_mm:g} mm lens's rear nodal point sits {lever:.1f} mm "
            "from the flange, so a droop barely moves the image; only the image shift under its weight is graded."
        )
    return notes


def test_sag(
    measure, run: RunRecorder, bench: BenchOps, sweep: proc.Sweep, lens: LensSpec, stops: tuple[float, ...]
) -> None:
    """Image shift and lens tilt under the lens's weight across fixture pitch (lens up, level, down).

    The shift is the largest displacement from the lens-up frame. The tilt is derived from the shift through the
    lever f − 27.8 mm; for a lens whose lever is shorter than 0.5 mm (28 mm lenses) a droop does not move the
    image, so only the shift is measured and the certificate says so.
    """
    set_aperture(bench, stops[0])
    frames, shifts = proc.sag_series(bench, sweep, pitches=PITCHES_DEG)
    pitch_um = bench.station.sensor.readout_pitch_um
    shift_um = (shifts - shifts[0]) * pitch_um
    caps = [f.path for f in frames]
    measure("sag_shift_um", float(np.max(np.hypot(shift_um[:, 0], shift_um[:, 1]))), captures=caps)
    if sag_tilt_measurable(lens):
        sag = stability.sag_vs_pitch(
            list(PITCHES_DEG),
            shifts,
            pixel_pitch_um=pitch_um,
            lever_arm_mm=lens.focal_length_mm - FLANGE_FOCAL_DISTANCE_MM,
        )
        measure("sag_tilt_arcmin", sag.sag_tilt_arcmin, captures=caps)
    else:
        lever = abs(lens.focal_length_mm - FLANGE_FOCAL_DISTANCE_MM)
        why = f"rear nodal point {lever:.1f} mm from the flange: a droop cannot move the image"
        measure.skip("sag_tilt_arcmin", why)
    run.add_plot(
        figures.sag_trace(
            "Image shift across fixture pitch (from lens up)", PITCHES_DEG, shift_um[:, 0], shift_um[:, 1]
        )
    )


def test_lensfun_profile(
    measure,
    station: StationConfig,
    lens: LensSpec,
    grid: tuple[Frame, DotGridFit],
    lateral_colour: LateralColourFit,
    vignetting_fits: dict[float, PaFit],
) -> None:
    """The lensfun database of the lens on this phone: the phone's camera entry (as its DNGs name it) and the lens
    with ptlens distortion, poly3 TCA and pa vignetting per aperture."""
    frame, fit = grid
    entry = lensfun_entry(
        lens,
        distortion_abc=(fit.ptlens_a, fit.ptlens_b, fit.ptlens_c),
        vignetting=vignetting_fits,
        tca=lateral_colour,
    )
    camera = phone_camera(
        frame.image.make or "", frame.image.model or "", sensor_diagonal_mm=2 * station.sensor.half_diagonal_mm
    )
    measure.attach(LENSFUN_FILE, lensfun_xml([entry], cameras=[camera]).encode("utf-8"))


def test_certificate(measure, run: RunRecorder, lens: LensSpec, stops: tuple[float, ...]) -> None:
    """Grade the run so far into the certificate (last step: it reads every other step's measurements).

    The level is the run's answer (:attr:`RunRecord.outcome`): the report banner, the CLI's last line and exit
    status, JUnit and the store all say CERTIFIED, CERTIFIED WITH LIMITATIONS or NOT CERTIFIED.
    """
    cert = issue_certificate(run.record, lens, apertures=stops, notes=certificate_notes(lens))
    measure.attach(CERTIFICATE_FILE, cert.to_json().encode("utf-8"))
    run.set_outcome(cert.level)
    run.add_plot(certificate_checks(cert))
