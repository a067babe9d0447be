"""Uniformity against flat fields rendered here from a known law: cos⁴ of the field angle × the lensfun "pa"
vignetting polynomial, about a known optical centre, with photon and read noise from a seeded generator."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rig.errors import MeasurementError
from rig.measure.uniformity import light_gain, measure_uniformity, t_stop

BLACK, WHITE = 64, 1023
W, H, PITCH_UM = 2048, 1536, 6.4  # the binned test size: same 13.1 × 9.8 mm sensor
CENTRE_TOL_PX = 2.0  # brief: optical centre within 2 px
FALLOFF_TOL_STOPS = 0.05  # brief: corner falloff within 0.05 stops
RESPONSE = 790.0  # DN per cd/m²·s at ISO 100 through T/1 (the twin station's calibration)


def _law(cx: float, cy: float, focal_mm: float, k1: float, colour_k: dict[str, float] | None = None):
    half_diag_px = 0.5 * math.hypot(W, H)
    y, x = np.mgrid[0:H, 0:W].astype(np.float64)
    r_px = np.hypot(x - cx, y - cy)
    rho2 = (r_px / half_diag_px) ** 2
    relative = np.cos(np.arctan(r_px * PITCH_UM / 1000 / focal_mm)) ** 4 * (1 + k1 * rho2)
    colour = np.ones((H, W))
    if colour_k:
        colour[0::2, 0::2] = 1 + colour_k["R"] * rho2[0::2, 0::2]
        colour[1::2, 1::2] = 1 + colour_k["B"] * rho2[1::2, 1::2]
    truth = {
        f: -math.log2(math.cos(math.atan(f * half_diag_px * PITCH_UM / 1000 / focal_mm)) ** 4 * (1 + k1 * f * f))
        for f in (0.7, 0.9)
    }
    return relative * colour, truth


def _expose(signal_dn: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    electrons = rng.poisson(signal_dn / 0.16)  # 0.16 DN/e⁻: the unit's conversion gain
    dn = electrons * 0.16 + rng.normal(0.0, 0.35, signal_dn.shape) + BLACK
    return np.clip(np.round(dn), 0, WHITE).astype(np.uint16)


@pytest.mark.parametrize(("cx", "cy", "focal_mm", "k1"), [(1040.3, 760.2, 35.0, -0.06), (990.0, 790.7, 24.0, -0.14)])
def test_optical_centre_and_falloff_match_the_rendering_law(cx: float, cy: float, focal_mm: float, k1: float) -> None:
    rng = np.random.default_rng(17)
    relative, truth = _law(cx, cy, focal_mm, k1)
    raw = _expose(600.0 * relative, rng)
    result = measure_uniformity(raw, black_level=BLACK, white_level=WHITE, pixel_pitch_um=PITCH_UM)
    assert abs(result.optical_center_px[0] - cx) <= CENTRE_TOL_PX, result.optical_center_px
    assert abs(result.optical_center_px[1] - cy) <= CENTRE_TOL_PX, result.optical_center_px
    assert result.decentre_x_um == pytest.approx((cx - (W - 1) / 2) * PITCH_UM, abs=CENTRE_TOL_PX * PITCH_UM)
    for field, stops in truth.items():
        assert result.corner_falloff_stops[field] == pytest.approx(stops, abs=FALLOFF_TOL_STOPS), field
    # the relative illumination grid is 1 at the centre block and darker at every corner block
    for grid in result.relative_illumination.values():
        assert grid.shape == (11, 11) and grid[5, 5] == 1.0
        assert max(grid[0, 0], grid[0, -1], grid[-1, 0], grid[-1, -1]) < 0.95
    assert result.colour_shading_pct < 1.0  # no colour term in this law: only noise (~0.3 % per block)


def test_colour_shading_reports_the_red_and_blue_cra_terms() -> None:
    rng = np.random.default_rng(5)
    relative, _ = _law(W / 2, H / 2, 35.0, -0.06, colour_k={"R": -0.18, "B": -0.10})
    raw = _expose(600.0 * relative, rng)
    result = measure_uniformity(raw, black_level=BLACK, white_level=WHITE, pixel_pitch_um=PITCH_UM)
    # the corner block's centre sits at 10/11 of the half width and height: ρ² = (10/11)², R/G = 1 − 0.18·ρ²
    expected_pct = 18.0 * (10 / 11) ** 2
    assert result.colour_shading_pct == pytest.approx(expected_pct, rel=0.05)


def test_saturated_and_dark_flat_fields_are_refused() -> None:
    rng = np.random.default_rng(3)
    relative, _ = _law(W / 2, H / 2, 35.0, -0.06)
    with pytest.raises(MeasurementError, match="saturated"):
        measure_uniformity(_expose(1100.0 * relative, rng), black_level=BLACK, white_level=WHITE, pixel_pitch_um=6.4)
    with pytest.raises(MeasurementError, match="too dark"):
        measure_uniformity(_expose(5.0 * relative, rng), black_level=BLACK, white_level=WHITE, pixel_pitch_um=6.4)


def test_t_stop_and_gain_over_the_native_lens_from_rendered_flats() -> None:
    """T = N/√τ: a Summilux at f/1.4 with τ = 0.90 against the native f/1.9 with τ = 0.88."""
    rng = np.random.default_rng(11)
    lum, exposure_s = 150.0 * 0.5, 0.01
    t_m, t_native = 1.4 / math.sqrt(0.90), 1.9 / math.sqrt(0.88)
    relative_m, _ = _law(W / 2, H / 2, 35.0, -0.06)
    relative_native, _ = _law(W / 2, H / 2, 8.7, -0.30)
    flat_m = _expose(RESPONSE * lum * exposure_s / t_m**2 * relative_m, rng)
    flat_native = _expose(RESPONSE * lum * exposure_s / t_native**2 * relative_native, rng)
    signal = measure_uniformity(flat_m, black_level=BLACK, white_level=WHITE, pixel_pitch_um=6.4).centre_signal_dn
    measured = t_stop(
        signal, response_dn_per_cd_m2_s=RESPONSE, luminance_cd_m2=lum, exposure_time_s=exposure_s, iso=100
    )
    assert 2 * abs(math.log2(measured.t_stop / t_m)) <= 0.03  # brief: T-stop within 0.03 stops of light
    gain = light_gain(flat_m, flat_native, black_level=BLACK, white_level=WHITE, pixel_pitch_um=6.4)
    assert gain.gain_x == pytest.approx((t_native / t_m) ** 2, rel=0.02)  # brief: within 2 %
    assert gain.gain_stops == pytest.approx(math.log2(gain.gain_x))
