"""Through-focus and flange/tilt fit: analytic curves, an exact plane, and twin sweeps against rig.twin.truth."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rig.config import load_lens_catalog, load_station, load_unit
from rig.config.loader import FIXTURES_DIR
from rig.errors import MeasurementError
from rig.measure.edges import EdgeOrientation, EdgeRoi, Polarity
from rig.measure.focus import (
    BestFocus,
    EdgeFocus,
    best_focus,
    fit_flange,
    measure_flange,
    rail_defocus_um_per_mm,
)
from rig.twin.raster import ChartPose
from rig.twin.render import render
from rig.twin.state import BenchState
from tests.measure.analytic import F, disc_mtf, gaussian_mtf, mtf50, pixel_mtf

FLANGE_TOL_UM = 1.0  # the brief: flange within 1 µm, tilt within 0.5 arcmin of the twin's truth
TILT_TOL_ARCMIN = 0.5


def _mtf50_through_focus(z_mm: np.ndarray, *, z0_mm: float, um_per_mm: float, f_number: float, pitch_um: float):
    """MTF50 (cy/px) of a defocus disc |δ|/N ⊗ a 0.5-px Gaussian ⊗ the pixel, at each rail position."""
    out = []
    for z in z_mm:
        disc_px = abs(z - z0_mm) * um_per_mm / f_number / pitch_um
        out.append(mtf50(F, disc_mtf(F, disc_px) * gaussian_mtf(F, 0.5) * pixel_mtf(F, 5.0)))
    return np.array(out)


def test_best_focus_of_an_analytic_curve_sampled_off_centre() -> None:
    # The model (1/MTF50² quartic in (z − z0)) is not the law that made the curve: a disc ⊗ Gaussian ⊗ pixel.
    rng = np.random.default_rng(31)
    k = rail_defocus_um_per_mm(focal_length_mm=35.0, collimator_focal_length_mm=200.0)
    z = np.linspace(47.0, 53.0, 11)
    for z0 in (48.3, 50.0, 51.9):
        clean = _mtf50_through_focus(z, z0_mm=z0, um_per_mm=k, f_number=1.4, pitch_um=6.4)
        noisy = clean * (1.0 + rng.normal(0.0, 0.01, z.shape))  # 1 % MTF50 noise
        found = best_focus(z, noisy)
        # 1 µm on the image side is 0.033 mm of rail at 35 mm / 200 mm
        assert abs(found.position - z0) * k < 1.0, (z0, found)
        assert found.sigma * k < 1.0
        assert found.peak_mtf50_cy_px == pytest.approx(clean.max(), rel=0.05)


def test_unbracketed_or_short_sweeps_raise() -> None:
    k = rail_defocus_um_per_mm(focal_length_mm=35.0, collimator_focal_length_mm=200.0)
    z = np.linspace(47.0, 50.0, 9)
    curve = _mtf50_through_focus(z, z0_mm=51.0, um_per_mm=k, f_number=1.4, pitch_um=6.4)
    with pytest.raises(MeasurementError, match="not bracketed"):
        best_focus(z, curve)
    with pytest.raises(MeasurementError, match="≥ 6"):
        best_focus(z[:4], curve[:4])


def _edge(x_um: float, y_um: float, s_um: float) -> EdgeFocus:
    roi = EdgeRoi(0, 0, 8, 8, EdgeOrientation.VERTICAL, Polarity.DARK_TO_LIGHT, 0.0, 0.0, 0.0, 0.0, 0, 8.0)
    best = BestFocus(50.0, 0.01, 0.5, 0.01, 11)
    return EdgeFocus(roi, x_um, y_um, np.zeros(1), np.zeros(1), best, s_um, 0.3)


def test_plane_fit_recovers_offset_tilt_and_curvature_and_drops_an_outlier() -> None:
    rng = np.random.default_rng(8)
    half_diag = 8192.0
    flange, tx, ty, curv = 12.5, -2.0, 3.5, 6.0
    edges = []
    for _ in range(60):
        x, y = rng.uniform(-6500, 6500), rng.uniform(-4900, 4900)
        s = flange + x * math.tan(math.radians(ty / 60)) + y * math.tan(math.radians(tx / 60))
        s -= curv * (x * x + y * y) / half_diag**2
        edges.append(_edge(x, y, s + rng.normal(0.0, 0.3)))
    edges.append(_edge(100.0, 100.0, 80.0))  # a misdetected edge
    result = fit_flange(edges, half_diagonal_um=half_diag)
    assert result.edges_used == 60 and result.edges_total == 61
    assert result.flange_offset_um == pytest.approx(flange, abs=0.3)
    assert result.tilt_x_arcmin == pytest.approx(tx, abs=0.1)
    assert result.tilt_y_arcmin == pytest.approx(ty, abs=0.1)
    assert result.field_curvature_um == pytest.approx(curv, abs=0.5)
    assert result.fit_rms_um == pytest.approx(0.3, abs=0.1)


def _sweep(unit, station, catalog, *, f_number: float, rails: np.ndarray, chart_pose: ChartPose, seed: int):
    lens = catalog.get(unit.lens.id)
    state = BenchState()
    state.update(carousel_mm=station.carousel.slots["sfr"], light_pwm=1000, exposure_time_s=0.02, f_number=f_number)
    state.mount_lens(lens.id)
    rng = np.random.default_rng(seed)
    frames, truth = [], None
    for z in rails:
        state.update(rail_mm=float(z))
        rendering = render(station, unit, catalog, state.snapshot(), lens=lens, chart_pose=chart_pose, rng=rng)
        frames.append(rendering.raw)
        truth = rendering.truth
    return frames, truth, lens


@pytest.mark.slow
@pytest.mark.parametrize(("f_number", "seed"), [(1.4, 101), (1.4, 202), (2.8, 303)])
def test_flange_and_tilt_of_random_twin_units(f_number: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    station = load_station()  # 4× binned read-out, 6.4 µm pixels, f_c = 200 mm
    catalog = load_lens_catalog()
    golden = load_unit(FIXTURES_DIR / "units" / "golden.toml")
    mount = golden.mount.model_copy(
        update={
            "flange_offset_um": float(rng.uniform(-40, 40)),
            "tilt_x_arcmin": float(rng.uniform(-5, 5)),
            "tilt_y_arcmin": float(rng.uniform(-5, 5)),
        }
    )
    unit = golden.model_copy(update={"mount": mount})
    pose = ChartPose(rotation_deg=float(rng.uniform(-2, 2)), scale=float(rng.uniform(0.95, 1.02)))
    # ±3 mm of rail is ±92 µm of image focus at 35 mm: brackets ±40 µm of flange plus ±10 µm of tilt at the
    # corners with ≥ 1.3 mm to spare; 11 frames, 0.6 mm (18 µm) apart, noise on.
    rails = station.rail.focus_mm + np.linspace(-3.0, 3.0, 11)
    frames, truth, lens = _sweep(unit, station, catalog, f_number=f_number, rails=rails, chart_pose=pose, seed=seed)
    sensor = station.sensor
    result = measure_flange(
        frames,
        rails - station.rail.focus_mm,  # the twin's state is absolute (GRBL Z); rig measures from the focus position
        focal_length_mm=lens.focal_length_mm,
        collimator_focal_length_mm=station.optics.collimator_focal_length_mm,
        pixel_pitch_um=sensor.readout_pitch_um,
        cfa_pattern=sensor.cfa_pattern,
        black_level=sensor.black_level_dn,
        white_level=sensor.white_level_dn,
    )
    where = f"f/{f_number} unit {mount.flange_offset_um:.1f} µm, {mount.tilt_x_arcmin:.2f}'/{mount.tilt_y_arcmin:.2f}'"
    assert result.edges_used >= 50, where
    assert abs(result.flange_offset_um - truth.flange_offset_um) <= FLANGE_TOL_UM, (where, result.flange_offset_um)
    assert abs(result.tilt_x_arcmin - truth.tilt_x_arcmin) <= TILT_TOL_ARCMIN, (where, result.tilt_x_arcmin)
    assert abs(result.tilt_y_arcmin - truth.tilt_y_arcmin) <= TILT_TOL_ARCMIN, (where, result.tilt_y_arcmin)
    assert abs(result.field_curvature_um - truth.field_curvature_um) <= 2.0, where
    # each edge's best focus against the twin's own best-focus rail position at that point of the sensor
    k = truth.rail_defocus_um_per_mm
    errors = [
        (e.best.position + station.rail.focus_mm - truth.best_focus_rail_mm(e.x_um, e.y_um)) * k
        for e in result.edges
        if e.best is not None
    ]
    assert np.percentile(np.abs(errors), 95) <= 2.0, where
