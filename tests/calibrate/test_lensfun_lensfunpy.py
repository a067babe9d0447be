"""The lensfun database the certification writes, checked with released lensfun itself (lensfunpy bundles 0.3.4).

A twin phone with the golden unit's lens captures the dot grid and a flat field; the bench's own fits (ptlens from
:func:`rig.measure.dotgrid.fit_dot_grid`, pa from the certification's radial profile) go into the database through
the certification's writer. lensfun must load it, match the phone by its DNG's Make and Model and offer the lens;
its Modifier must then straighten the dot grid and flatten the raw flat field, while the same vignetting applied on
top of the phone's GainMap (the double correction the file's guidance forbids) brightens the corners measurably.
The poly3 TCA the bench measures from the dot grid's colour planes (:mod:`rig.measure.lateral_colour`) must load as
lensfun reads it and, applied by the Modifier's subpixel correction to a twin frame of a lens with a known lateral
colour, bring the red and blue dots onto the green ones.
"""

from __future__ import annotations

import cv2
import lensfunpy
import numpy as np
import pytest
from scipy.spatial import cKDTree

from rig.bench.ops import Frame
from rig.calibrate.certificate import LENSFUN_INFINITY_M, lensfun_entry
from rig.calibrate.lensfun import CORRECTION_GUIDE, PHONE_CROP_FACTOR, fit_pa_vignetting, lensfun_xml, phone_camera
from rig.calibrate.shading import fit_shading
from rig.config import load_chart, load_lens_catalog, load_station, load_unit
from rig.config.loader import FIXTURES_DIR
from rig.measure.dotgrid import detect_dots, fit_dot_grid
from rig.measure.lateral_colour import (
    ColourDotCentres,
    LateralColourFit,
    fit_lateral_colour,
    measure_lateral_colour,
    precise_dot_centres,
)
from rig.plans.certification import radial_relative_illumination
from rig.spec.dng import DngImage, read_dng
from rig.spec.gainmap import apply_opcode_list, gain_maps_for_shading
from rig.twin.world import TwinBench

TCA_BEFORE_MIN_PX = 0.5  # the Elmar-M 24's catalogue lateral colour at the 6.4 µm read-out's corner: ≈ 0.6 px
TCA_AFTER_MAX_PX = 0.05  # what lensfun's subpixel correction may leave at the corner
STRAIGHT_RMS_PX = 0.1  # residual of the corrected dots to a straight (projective) grid, px of the half-size grey
CORNER_STOPS_TOL = 0.05  # issue #14: corner/centre within ±0.05 stops of 1 on the right data
DOUBLE_CORRECTION_MIN_STOPS = 0.1  # lensfun vignetting on GainMap-corrected data: corners visibly too bright


class _Clock:
    now_ns = 1_780_000_000 * 10**9

    def __call__(self) -> int:
        return self.now_ns


@pytest.fixture(scope="module")
def bench() -> TwinBench:
    station = load_station()
    unit = load_unit(FIXTURES_DIR / "units" / "golden.toml")
    bench = TwinBench(station, unit, load_lens_catalog(), seed=9)
    clock = _Clock()
    bench.state.clock = clock
    bench.state.mount_lens(unit.lens.id)
    clock.now_ns += 5_000_000_000  # past the sensor switch
    bench.state.update(rail_mm=station.rail.focus_mm, light_pwm=1000)
    return bench


def _capture(bench: TwinBench, chart: str, exposure_time_s: float) -> DngImage:
    bench.state.update(carousel_mm=bench.station.carousel.slots[chart], exposure_time_s=exposure_time_s)
    return read_dng(bench.capture().dng, name=f"{chart}.dng")


@pytest.fixture(scope="module")
def grid_image(bench: TwinBench) -> DngImage:
    return _capture(bench, "dotgrid", 0.012)


@pytest.fixture(scope="module")
def flat_image(bench: TwinBench) -> DngImage:
    probe = _capture(bench, "flat", 0.01)
    h, w = probe.raw.shape
    centre = float(probe.raw[h // 2 - 32 : h // 2 + 32, w // 2 - 32 : w // 2 + 32].mean()) - probe.black_level
    return _capture(bench, "flat", 0.01 * 500.0 / centre)  # half scale at the centre, as the certification does


@pytest.fixture(scope="module")
def database(bench: TwinBench, grid_image: DngImage, flat_image: DngImage) -> lensfunpy.Database:
    lens = bench.lens_spec()
    assert lens is not None
    chart = load_chart("dotgrid")
    assert chart.dots is not None
    fit = fit_dot_grid(detect_dots(grid_image.raw, cfa=True, black_level_dn=grid_image.black_level),
                       pitch=chart.dots.pitch)  # fmt: skip
    frame = Frame(path="flat.dng", image=flat_image, chart="flat", rail_mm=0.0, pitch_deg=0.0, light_level=1.0,
                  exposure_time_s=0.01, iso=100, timestamp_ms=None)  # fmt: skip
    r, ri, count = radial_relative_illumination(frame)
    n = flat_image.f_number
    assert n is not None
    tca = _lateral_colour(bench, grid_image)
    entry = lensfun_entry(lens, distortion_abc=(fit.ptlens_a, fit.ptlens_b, fit.ptlens_c),
                          vignetting={n: fit_pa_vignetting(r, ri, weights=count)}, tca=tca)  # fmt: skip
    camera = phone_camera(grid_image.make or "", grid_image.model or "",
                          sensor_diagonal_mm=2 * bench.station.sensor.half_diagonal_mm)  # fmt: skip
    text = lensfun_xml([entry], cameras=[camera])
    assert CORRECTION_GUIDE in text and 'version="1"' in text
    return lensfunpy.Database(xml=text, load_common=False, load_bundled=False)


def _lateral_colour(bench: TwinBench, image: DngImage) -> LateralColourFit:
    return measure_lateral_colour(image.raw, cfa_pattern=image.cfa_pattern, black_level_dn=image.black_level,
                                  pixel_pitch_um=bench.station.sensor.readout_pitch_um)  # fmt: skip


def _found(database: lensfunpy.Database, bench: TwinBench, image: DngImage) -> tuple[lensfunpy.Camera, lensfunpy.Lens]:
    lens = bench.lens_spec()
    assert lens is not None and image.make and image.model
    (camera,) = database.find_cameras(image.make, image.model)  # matched by the DNG's Exif Make and Model
    found = database.find_lenses(camera, lens.maker, image.lens_model)
    assert found, f"lensfun offers no lens {image.lens_model!r} for {camera}"
    return camera, found[0]


def test_released_lensfun_loads_the_database_and_matches_phone_and_lens(
    database: lensfunpy.Database, bench: TwinBench, grid_image: DngImage
) -> None:
    camera, lens = _found(database, bench, grid_image)
    assert (camera.maker, camera.model, camera.mount) == ("Xiaomi", grid_image.model, "Leica M")
    assert camera.crop_factor == pytest.approx(PHONE_CROP_FACTOR, abs=1e-4)  # 43.27 mm / 16.38 mm
    assert lens.model == grid_image.lens_model and lens.crop_factor == pytest.approx(camera.crop_factor, abs=1e-4)


def _binned(image: DngImage | np.ndarray, *, green_only: bool = False, black: float | None = None) -> np.ndarray:
    """A CFA mosaic as a half-size image, black subtracted, float32: the mean of each 2×2 quad, or of its two
    greens (the luminance the pa model is fitted on; it cannot hold the sensor's colour shading)."""
    if isinstance(image, DngImage):
        raw, black = image.raw.astype(np.float32), float(image.black_level)
    else:
        raw = image.astype(np.float32)
    raw = raw - (black or 0.0)
    greens = raw[0::2, 1::2] + raw[1::2, 0::2]
    return (0.5 * greens if green_only else 0.25 * (greens + raw[0::2, 0::2] + raw[1::2, 1::2])).astype(np.float32)


def _straightness_rms_px(grey: np.ndarray, pitch: float) -> float:
    """rms distance of the detected dots from the best projective (straight-line) grid, px."""
    fit = fit_dot_grid(detect_dots(grey), pitch=pitch)
    grid = fit.grid_indices.astype(np.float64)
    centres = fit.centres_px.astype(np.float64)
    homography, _ = cv2.findHomography(grid, centres, method=0)
    mapped = cv2.perspectiveTransform(grid[None], homography)[0]
    return float(np.sqrt(np.mean(np.sum((mapped - centres) ** 2, axis=1))))


def test_the_modifier_straightens_the_dot_grid(
    database: lensfunpy.Database, bench: TwinBench, grid_image: DngImage
) -> None:
    camera, lens = _found(database, bench, grid_image)
    grey = _binned(grid_image)
    h, w = grey.shape
    modifier = lensfunpy.Modifier(lens, camera.crop_factor, w, h)
    modifier.initialize(grid_image.focal_length_mm, grid_image.f_number, LENSFUN_INFINITY_M, scale=1.0,
                        pixel_format=np.float32, flags=lensfunpy.ModifyFlags.DISTORTION)  # fmt: skip
    coords = modifier.apply_geometry_distortion()
    corrected = cv2.remap(grey, coords[..., 0], coords[..., 1], cv2.INTER_LANCZOS4, borderMode=cv2.BORDER_REPLICATE)
    pitch = load_chart("dotgrid").dots.pitch  # type: ignore[union-attr]
    before = _straightness_rms_px(grey, pitch)
    after = _straightness_rms_px(corrected, pitch)
    print(f"dot grid straightness: {before:.3f} px before, {after:.3f} px after lensfun's Modifier")
    assert before > 5 * STRAIGHT_RMS_PX  # the lens really bends the grid (golden lens: ptlens b = −0.004)
    assert after < STRAIGHT_RMS_PX


def _corner_centre_stops(grey: np.ndarray, frac: float = 0.04) -> list[float]:
    h, w = grey.shape
    s = max(round(frac * min(h, w)), 4)
    centre = grey[h // 2 - s // 2 : h // 2 + s // 2, w // 2 - s // 2 : w // 2 + s // 2].mean()
    corners = [grey[:s, :s], grey[:s, -s:], grey[-s:, :s], grey[-s:, -s:]]
    return [float(np.log2(c.mean() / centre)) for c in corners]


def _lensfun_vignetting(database, bench, image: DngImage, grey: np.ndarray) -> np.ndarray:  # type: ignore[no-untyped-def]
    camera, lens = _found(database, bench, image)
    h, w = grey.shape
    modifier = lensfunpy.Modifier(lens, camera.crop_factor, w, h)
    modifier.initialize(image.focal_length_mm, image.f_number, LENSFUN_INFINITY_M, pixel_format=np.float32,
                        flags=lensfunpy.ModifyFlags.VIGNETTING)  # fmt: skip
    rgb = np.repeat(grey[:, :, None], 3, axis=2).astype(np.float32)
    assert modifier.apply_color_modification(rgb)
    return rgb[:, :, 1]


def test_the_modifier_flattens_the_raw_flat_field_and_double_correction_overshoots(
    database: lensfunpy.Database, bench: TwinBench, flat_image: DngImage
) -> None:
    grey = _binned(flat_image, green_only=True)
    raw_stops = _corner_centre_stops(grey)
    assert min(raw_stops) < -0.3  # the lens and sensor really fall off towards the corners
    # the right data for lensfun's vignetting: raw, without the GainMap (RawTherapee, LibRaw)
    flattened = _corner_centre_stops(_lensfun_vignetting(database, bench, flat_image, grey))
    print(f"flat corners/centre: raw {raw_stops}, lensfun pa {flattened} stops")
    assert all(abs(s) <= CORNER_STOPS_TOL for s in flattened), flattened
    # the wrong path the guidance rules out: a DNG-SDK reader has applied the phone's GainMap already
    sensor = bench.station.sensor
    shading = fit_shading(flat_image.raw, black_level_dn=flat_image.black_level, binning=sensor.binning).maps
    linear = apply_opcode_list(
        flat_image.raw.astype(float) - flat_image.black_level,
        gain_maps_for_shading(shading, width_px=sensor.width_px, height_px=sensor.height_px),
    )
    gain_mapped = _binned(linear, green_only=True)
    assert all(abs(s) <= 0.02 for s in _corner_centre_stops(gain_mapped))  # the GainMap alone: flat
    double = _corner_centre_stops(_lensfun_vignetting(database, bench, flat_image, gain_mapped))
    print(f"GainMap + lensfun pa (double correction): {double} stops")
    assert min(double) > DOUBLE_CORRECTION_MIN_STOPS


# --------------------------------------------------------------------------------------------- TCA
TCA_LENS = "elmar-m-24-f3.8-asph"  # the catalogue's largest lateral colour: red +500, blue −420 ppm


@pytest.fixture(scope="module")
def tca_bench() -> TwinBench:
    station = load_station()
    unit = load_unit(FIXTURES_DIR / "units" / "golden.toml")
    bench = TwinBench(station, unit, load_lens_catalog(), seed=21)
    clock = _Clock()
    bench.state.clock = clock
    bench.state.mount_lens(TCA_LENS)
    clock.now_ns += 5_000_000_000
    bench.state.update(rail_mm=station.rail.focus_mm, light_pwm=1000)
    return bench


@pytest.fixture(scope="module")
def tca_image(tca_bench: TwinBench) -> DngImage:
    lens = tca_bench.lens_spec()
    assert lens is not None and lens.id == TCA_LENS
    return _capture(tca_bench, "dotgrid", 0.012 * (lens.max_f_number / 1.4) ** 2)  # the golden frame's exposure


def _demosaic(image: DngImage) -> np.ndarray:
    """Bilinear demosaic (OpenCV) to float32 RGB, black subtracted: the image lensfun's Modifier is applied to."""
    assert image.cfa_pattern == "RGGB"
    return cv2.cvtColor(image.raw, cv2.COLOR_BayerRGGB2RGB).astype(np.float32) - np.float32(image.black_level)


def _rgb_lateral_colour(rgb: np.ndarray, pitch_um: float) -> LateralColourFit:
    """Red and blue against green on an RGB frame: each channel's dot centres, matched, fitted as lensfun's poly3."""
    red, green, blue = (precise_dot_centres(rgb[:, :, k]) for k in range(3))
    keep_r, near_r = _nearest(green, red)
    keep_b, near_b = _nearest(green, blue)
    both = keep_r & keep_b
    h, w = rgb.shape[:2]
    centres = ColourDotCentres(green[both], red[near_r[both]], blue[near_b[both]], w, h)
    return fit_lateral_colour(centres, pixel_pitch_um=pitch_um)


def _nearest(reference: np.ndarray, other: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each reference centre: whether ``other`` has one within 5 px (the same dot), and its index."""
    dist, index = cKDTree(other).query(reference)
    return dist < 5.0, index


def test_the_tca_entry_loads_as_measured(database: lensfunpy.Database, bench: TwinBench, grid_image: DngImage) -> None:
    _, lens = _found(database, bench, grid_image)
    fit = _lateral_colour(bench, grid_image)
    (calib,) = lens.calib_tca
    assert calib.model == lensfunpy.TCAModel.POLY3 and calib.focal == pytest.approx(grid_image.focal_length_mm)
    # lensfun keeps the terms as float (vr, vb, cr, cb, br, bb): 1e-7 relative
    want = [fit.red.v, fit.blue.v, fit.red.c, fit.blue.c, fit.red.b, fit.blue.b]
    np.testing.assert_allclose(calib.terms, want, rtol=0, atol=1e-7)
    assert fit.red.v > 1.0 > fit.blue.v  # the golden lens's lateral colour, found


def test_the_modifier_brings_red_and_blue_onto_green(tca_bench: TwinBench, tca_image: DngImage) -> None:
    pitch = tca_bench.station.sensor.readout_pitch_um
    spec = tca_bench.lens_spec()
    assert spec is not None
    measured = _lateral_colour(tca_bench, tca_image)
    entry = lensfun_entry(spec, distortion_abc=(0.0, 0.0, 0.0), vignetting={}, tca=measured)
    camera_entry = phone_camera(tca_image.make or "", tca_image.model or "",
                                sensor_diagonal_mm=2 * tca_bench.station.sensor.half_diagonal_mm)  # fmt: skip
    database = lensfunpy.Database(xml=lensfun_xml([entry], cameras=[camera_entry]), load_common=False,
                                  load_bundled=False)  # fmt: skip
    camera, lens = _found(database, tca_bench, tca_image)
    rgb = _demosaic(tca_image)
    h, w = rgb.shape[:2]
    modifier = lensfunpy.Modifier(lens, camera.crop_factor, w, h)
    modifier.initialize(tca_image.focal_length_mm, tca_image.f_number, LENSFUN_INFINITY_M, pixel_format=np.float32,
                        flags=lensfunpy.ModifyFlags.TCA)  # fmt: skip
    coords = modifier.apply_subpixel_distortion()  # (h, w, 3, 2): where each corrected pixel's R, G, B are read
    assert coords is not None, "lensfun applied no TCA correction"
    corrected = np.stack([cv2.remap(rgb[:, :, k], coords[:, :, k, 0], coords[:, :, k, 1], cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_REPLICATE) for k in range(3)], axis=2)  # fmt: skip
    before = _rgb_lateral_colour(rgb, pitch)
    after = _rgb_lateral_colour(corrected, pitch)
    print(f"red/blue against green at the corner: {before.red.corner_shift_px:+.4f} / "
          f"{before.blue.corner_shift_px:+.4f} px before, {after.red.corner_shift_px:+.4f} / "
          f"{after.blue.corner_shift_px:+.4f} px after lensfun's TCA correction ({after.dots_used} dots)")  # fmt: skip
    assert before.red.corner_shift_px > TCA_BEFORE_MIN_PX and before.blue.corner_shift_px < -TCA_BEFORE_MIN_PX
    assert abs(after.red.corner_shift_px) < TCA_AFTER_MAX_PX and abs(after.blue.corner_shift_px) < TCA_AFTER_MAX_PX
    # and dot by dot in the outer field, where the fringe was: the mean radial offset from green has gone
    centre = np.array([(w - 1) / 2.0, (h - 1) / 2.0])
    outer_before = _outer_radial_offset_px(rgb, centre)
    outer_after = _outer_radial_offset_px(corrected, centre)
    print(f"mean radial offset beyond r = 0.7: {outer_before} px before, {outer_after} px after")
    assert outer_before[0] > 0.4 and outer_before[1] < -0.3
    assert all(abs(v) < TCA_AFTER_MAX_PX for v in outer_after)


def _outer_radial_offset_px(rgb: np.ndarray, centre: np.ndarray) -> tuple[float, float]:
    """Mean radial offset of the red and of the blue dot centres from green beyond 0.7 of the half diagonal (px)."""
    red, green, blue = (precise_dot_centres(rgb[:, :, k]) for k in range(3))
    rel = green - centre
    radius = np.hypot(rel[:, 0], rel[:, 1])
    outer = radius > 0.7 * np.hypot(*centre)
    out = []
    for colour in (red, blue):
        keep, near = _nearest(green, colour)
        sel = keep & outer
        offset = colour[near[sel]] - green[sel]
        out.append(round(float(np.mean(np.sum(offset * rel[sel], axis=1) / radius[sel])), 4))
    return out[0], out[1]
