"""Blur of the twin against the analytic laws: defocus disc |δ|/N, diffraction × pixel aperture, tilt θ·x."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rig.config import LensCatalog, StationConfig, TwinUnit
from rig.config.charts import ChartSpec
from rig.twin.optics import BlurSpec
from rig.twin.raster import PixelGrid, rasterise, square_vertices
from rig.twin.render import render
from rig.twin.state import BenchState
from tests.twin.conftest import (
    edge_profile,
    fit_disc_diameter,
    ideal_unit,
    mtf_from_esf,
    with_lens,
)

DIAMETER_RTOL = 0.05  # the brief's acceptance: blur diameter within 5 % of |δ|/N
MTF_ATOL = 0.03  # in-focus MTF within 0.03 of diffraction × pixel sinc (3 % of full scale)
LAMBDA_UM = 0.55
PITCH_UM = 1.6
EDGE_DEG = 5.0
SCALE_UM = 1000.0  # chart unit → µm in the optics-layer tests (identity geometry)


def _diffraction(freqs: np.ndarray, n: float) -> np.ndarray:
    s = np.minimum(freqs * LAMBDA_UM * n, 1.0)
    return (2 / np.pi) * (np.arccos(s) - s * np.sqrt(1 - s * s))


def _render_left_edge(blur: BlurSpec) -> tuple[np.ndarray, PixelGrid, tuple[float, float], tuple[float, float]]:
    """A dark square (0) on white (1) whose left edge crosses a 512×384 full-pitch grid; returns the edge."""
    grid = PixelGrid(512, 384, PITCH_UM)
    chart = ChartSpec.model_validate(
        {
            "name": "edge",
            "kind": "slanted_edge",
            "background": 1.0,
            "foreground": 0.0,
            "squares": [{"x": 0.45, "y": 0.0, "size": 0.9, "angle_deg": EDGE_DEG}],
        }
    )
    image = rasterise(
        chart,
        grid=grid,
        to_sensor_um=lambda x, y: (np.asarray(x) * SCALE_UM, np.asarray(y) * SCALE_UM),
        blur_at=lambda x, y: blur,
    )
    vx, vy = square_vertices(0.45, 0.0, 0.9, EDGE_DEG)
    # left edge: corners 3 → 0 (u = −half); outward normal points to −x rotated by the square's angle
    mid = (0.5 * (vx[0] + vx[3]) * SCALE_UM, 0.5 * (vy[0] + vy[3]) * SCALE_UM)
    a = math.radians(EDGE_DEG)
    inward = (math.cos(a), math.sin(a))
    return image, grid, mid, inward


def _edge_mtf(blur: BlurSpec, half_width_um: float) -> tuple[np.ndarray, np.ndarray]:
    image, grid, mid, inward = _render_left_edge(blur)
    origin = (float(grid.x_um(np.array(0.0))), float(grid.y_um(np.array(0.0))))
    # value = 1 outside (bright background) → 0 inside: flip so the profile rises along the outward normal
    _, esf = edge_profile(
        1.0 - image,
        pitch_um=grid.pitch_um,
        origin_um=origin,
        point_um=mid,
        normal=inward,
        half_length_um=250.0,
        half_width_um=half_width_um,
        step_um=0.05,
    )
    return mtf_from_esf(esf, 0.05)


def _pixel_sinc(freqs: np.ndarray, pitch_um: float = PITCH_UM) -> np.ndarray:
    """Box pixel aperture seen across an edge at EDGE_DEG: sinc(p·ν·cos a)·sinc(p·ν·sin a)."""
    a = math.radians(EDGE_DEG)
    return np.abs(np.sinc(pitch_um * freqs * math.cos(a)) * np.sinc(pitch_um * freqs * math.sin(a)))


@pytest.mark.parametrize("f_number", [1.4, 2.8])
def test_in_focus_edge_mtf_is_diffraction_times_pixel_aperture(f_number: float) -> None:
    freqs, mtf = _edge_mtf(BlurSpec(f_number=f_number, pixel_pitch_um=PITCH_UM), half_width_um=60.0)
    band = freqs <= 1.0 / PITCH_UM  # up to 1 cycle/pixel (twice Nyquist)
    expected = _diffraction(freqs, f_number) * _pixel_sinc(freqs)
    worst = float(np.max(np.abs(mtf[band] - expected[band])))
    assert worst < MTF_ATOL, f"f/{f_number}: MTF differs from diffraction×sinc by {worst:.4f}"


@pytest.mark.parametrize("f_number", [1.4, 2.8])
@pytest.mark.parametrize("defocus_um", [5.0, 15.0, 30.0, 60.0])
def test_defocus_blur_diameter_is_defocus_over_f_number(f_number: float, defocus_um: float) -> None:
    expected_d = defocus_um / f_number
    blur = BlurSpec(f_number=f_number, defocus_um=-defocus_um if defocus_um > 20 else defocus_um)
    freqs, mtf = _edge_mtf(blur, half_width_um=min(3.0 * expected_d + 30.0, 200.0))
    known = _diffraction(freqs, f_number) * _pixel_sinc(freqs)
    # divide out what is not the disc where it is well above zero, up to ~2.5 disc zeros
    band = (freqs > 0) & (known > 0.2) & (freqs < 3.0 / expected_d)
    measured = fit_disc_diameter(freqs[band], mtf[band] / known[band], guess_um=expected_d)
    assert measured == pytest.approx(expected_d, rel=DIAMETER_RTOL), (
        f"δ={defocus_um} µm f/{f_number}: blur diameter {measured:.2f} µm, expected |δ|/N = {expected_d:.2f} µm"
    )


def test_tilt_defocus_follows_theta_times_x(station: StationConfig, catalog: LensCatalog, golden: TwinUnit) -> None:
    """Tilt about y of 20′: δ(x) = δ₀ − tan θ·x at three squares along the x axis, measured from blur size."""
    tilt_arcmin = 20.0
    unit = ideal_unit(golden, tilt_y_arcmin=tilt_arcmin)
    unit = unit.model_copy(update={"lens": unit.lens.model_copy(update={"f_number": 1.4})})
    lens_id = unit.lens.id
    # no curvature, distortion or residual blur: the blur is diffraction × disc × pixel, the geometry is known
    cat = with_lens(
        catalog,
        lens_id,
        field_curvature_um=0.0,
        residual_blur_um=0.0,
        distortion={"a": 0.0, "b": 0.0, "c": 0.0},
    )
    lens = cat.get(lens_id)
    k_rail = (lens.focal_length_mm / station.optics.collimator_focal_length_mm) ** 2 * 1000.0
    delta0 = 45.0  # image 45 µm behind the sensor at the centre: δ stays > 0 over the field, so |δ| = δ
    state = BenchState()
    state.update(
        rail_mm=station.rail.focus_mm + delta0 / k_rail, carousel_mm=station.carousel.slots["sfr"], light_pwm=1000
    )
    state.update(lens_attached=True, lens_id=lens_id, exposure_time_s=0.01)
    rendering = render(station, unit, cat, state.snapshot(), lens=lens, noise=False)
    image = rendering.signal_dn
    pitch = station.sensor.readout_pitch_um
    half_diag = station.sensor.half_diagonal_mm * 1000.0
    origin = (
        -0.5 * station.sensor.width_px * pitch + 0.5 * pitch,
        -0.5 * station.sensor.height_px * pitch + 0.5 * pitch,
    )
    size_um = 0.08 * half_diag
    a = math.radians(5.0)
    theta = math.radians(tilt_arcmin / 60.0)
    for x_norm in (-0.7, 0.0, 0.7):
        cx = x_norm * half_diag
        # left edge of the square at (x_norm, 0): its midpoint and inward normal from the chart's own numbers
        mid = (cx - 0.5 * size_um * math.cos(a), -0.5 * size_um * math.sin(a))
        _, esf = edge_profile(
            image.max() - image,
            pitch_um=pitch,
            origin_um=origin,
            point_um=mid,
            normal=(math.cos(a), math.sin(a)),
            half_length_um=0.3 * size_um,
            half_width_um=150.0,
            step_um=0.2,
        )
        freqs, mtf = mtf_from_esf(esf - esf[:20].mean(), 0.2)
        known = _diffraction(freqs, 1.4) * _pixel_sinc(freqs, pitch)
        # the blur of a target is the one at its centre (the PSF is evaluated per target)
        expected_delta = delta0 - math.tan(theta) * cx
        guess = expected_delta / 1.4
        band = (freqs > 0) & (known > 0.2) & (freqs < 3.0 / guess)
        diameter = fit_disc_diameter(freqs[band], mtf[band] / known[band], guess_um=guess)
        assert 1.4 * diameter == pytest.approx(expected_delta, rel=DIAMETER_RTOL), (
            f"x = {cx:.0f} µm: measured δ {1.4 * diameter:.1f} µm, expected δ₀ − tanθ·x = {expected_delta:.1f} µm"
        )
