"""Lateral colour (TCA) from CFA dot-grid frames whose colour planes have a known lensfun poly3 scale.

Ground truth: :mod:`tests.measure.lateral_colour_synth` renders each colour at its own poly3 scale about the frame
centre (lensfun's convention); the measurement must recover v, c, b and the corner shifts, whatever the grid's own
distortion and principal point (which every colour shares).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from rig.errors import MeasurementError
from rig.measure.lateral_colour import TcaTerms, colour_dot_centres, fit_lateral_colour, measure_lateral_colour
from tests.measure.dotgrid_synth import GridTruth
from tests.measure.lateral_colour_synth import ColourScale, render_cfa

PITCH_UM = 6.4
V_TOL = 5e-6  # 5 ppm of scale: 0.006 px at the corner of a 2048 × 1536 frame (noise-free analytic dots)
NOISY_V_TOL = 15e-6  # 3σ of the linear fit on a 1024 × 768 frame with photon noise (σ 4.5 ppm, seeds 0–5)
NOISY_SHIFT_TOL_PX = 0.025  # v and b fitted together: corner shift σ 0.007 px over seeds 0–5
SHIFT_TOL_PX = 0.01
TRUTH = GridTruth()  # 2048 × 1536, principal point off centre, ptlens a, b, c all non-zero
SMALL = replace(TRUTH, width=1024, height=768, cx=515.4, cy=381.2, scale_px_per_unit=645.0)
RED = ColourScale(v=1.0004)  # +400 ppm: red lands 0.51 px outside green at the corner
BLUE = ColourScale(v=0.9997)  # −300 ppm: blue 0.38 px inside


def _measure(raw: np.ndarray, cfa: str = "RGGB", terms: TcaTerms = TcaTerms.V_B):  # type: ignore[no-untyped-def]
    return measure_lateral_colour(raw, cfa_pattern=cfa, black_level_dn=64, pixel_pitch_um=PITCH_UM, terms=terms)


def _corner_shift_px(truth: GridTruth, scale: ColourScale) -> float:
    r_norm = (min(truth.width, truth.height) - 1) / 2.0
    corner = np.hypot(truth.width - 1, truth.height - 1) / 2.0 / r_norm
    return float((scale.radius(np.array(corner)) - corner) * r_norm)


@pytest.fixture(scope="module")
def known_frame() -> np.ndarray:
    return render_cfa(TRUTH, red=RED, blue=BLUE)


def test_a_known_colour_scale_is_recovered_with_its_corner_shift(known_frame: np.ndarray) -> None:
    fit = _measure(known_frame)
    print(f"vr − 1 = {(fit.red.v - 1) * 1e6:.2f} ppm (truth 400), vb − 1 = {(fit.blue.v - 1) * 1e6:.2f} ppm "
          f"(truth −300); rms {fit.red.rms_residual_px:.4f} / {fit.blue.rms_residual_px:.4f} px")  # fmt: skip
    assert fit.red.v == pytest.approx(RED.v, abs=V_TOL) and fit.blue.v == pytest.approx(BLUE.v, abs=V_TOL)
    assert abs(fit.red.b) < 5e-6 and abs(fit.blue.b) < 5e-6 and fit.red.c == fit.blue.c == 0.0
    assert fit.red.corner_shift_px == pytest.approx(_corner_shift_px(TRUTH, RED), abs=SHIFT_TOL_PX)
    assert fit.blue.corner_shift_px == pytest.approx(_corner_shift_px(TRUTH, BLUE), abs=SHIFT_TOL_PX)
    assert fit.red.corner_shift_px > 0.5 and fit.blue.corner_shift_px < -0.35  # a real fringe, not noise
    assert fit.red.corner_shift_um == pytest.approx(fit.red.corner_shift_px * PITCH_UM)
    assert fit.red.rms_residual_px < 0.02 and fit.blue.rms_residual_px < 0.02
    assert fit.centre_px == (1023.5, 767.5) and fit.r_norm_px == 767.5  # lensfun's centre and unit radius
    assert fit.dots_used >= 250
    # the radial profile the report plots ends at the corner shift
    assert float(fit.radial_shift_um(fit.red, 1.0)) == pytest.approx(fit.red.corner_shift_um)


def test_lensfun_linear_model_fits_the_scale_alone(known_frame: np.ndarray) -> None:
    fit = _measure(known_frame, terms=TcaTerms.LINEAR)
    assert (fit.red.b, fit.red.c, fit.blue.b, fit.blue.c) == (0.0, 0.0, 0.0, 0.0)
    assert fit.red.v == pytest.approx(RED.v, abs=V_TOL) and fit.blue.v == pytest.approx(BLUE.v, abs=V_TOL)


def test_a_third_order_term_is_recovered() -> None:
    red = ColourScale(v=1.0001, b=2e-4)  # +0.1 px at r = 1, 0.8 px at the corner
    blue = ColourScale(v=1.0, c=-1.5e-4, b=1e-4)
    fit = _measure(render_cfa(SMALL, red=red, blue=blue), terms=TcaTerms.POLY3)
    for got, want in ((fit.red, red), (fit.blue, blue)):
        assert got.v == pytest.approx(want.v, abs=2e-5)
        assert got.c == pytest.approx(want.c, abs=4e-5) and got.b == pytest.approx(want.b, abs=2e-5)
        assert got.corner_shift_px == pytest.approx(_corner_shift_px(SMALL, want), abs=SHIFT_TOL_PX)


def test_no_lateral_colour_measures_none_on_a_noisy_frame_of_another_cfa_pattern() -> None:
    # the Bayer planes sit half a pixel apart: mapping them back to the read-out grid wrongly would show as colour
    raw = render_cfa(SMALL, red=ColourScale(), blue=ColourScale(), cfa_pattern="GBRG", rng=np.random.default_rng(4))
    linear = _measure(raw, cfa="GBRG", terms=TcaTerms.LINEAR)
    print(f"no TCA: vr − 1 = {(linear.red.v - 1) * 1e6:.1f} ppm, vb − 1 = {(linear.blue.v - 1) * 1e6:.1f} ppm")
    assert abs(linear.red.v - 1) < NOISY_V_TOL and abs(linear.blue.v - 1) < NOISY_V_TOL
    fit = _measure(raw, cfa="GBRG")
    assert abs(fit.red.corner_shift_px) < NOISY_SHIFT_TOL_PX and abs(fit.blue.corner_shift_px) < NOISY_SHIFT_TOL_PX
    # each plane's centres are put back where its sites sit: left on the half-size grid they would be a pixel off
    centres = colour_dot_centres(raw, cfa_pattern="GBRG", black_level_dn=64)
    assert np.hypot(*(centres.red_px - centres.green_px).T).mean() < 0.2


def test_centres_come_from_one_dot_in_every_colour(known_frame: np.ndarray) -> None:
    centres = colour_dot_centres(known_frame, cfa_pattern="RGGB", black_level_dn=64)
    assert centres.green_px.shape == centres.red_px.shape == centres.blue_px.shape
    assert np.hypot(*(centres.red_px - centres.green_px).T).max() < 1.0  # the same dot, a fraction of a px apart
    refit = fit_lateral_colour(centres, pixel_pitch_um=PITCH_UM)
    assert refit.red.v == _measure(known_frame).red.v


@pytest.mark.parametrize(
    ("raw", "cfa", "message"),
    [
        (np.zeros((15, 16), np.uint16), "RGGB", "even sides"),
        (np.zeros((16, 16), np.uint16), "RRGB", "CFA pattern of R, G, G, B"),
        (np.full((256, 256), 700, np.uint16), "RGGB", "dots found"),
    ],
)
def test_bad_frames_are_refused_in_one_line(raw: np.ndarray, cfa: str, message: str) -> None:
    with pytest.raises(MeasurementError, match=message) as info:
        _measure(raw, cfa=cfa)
    assert "\n" not in str(info.value)


def test_a_grid_that_stays_near_the_centre_is_refused(known_frame: np.ndarray) -> None:
    centres = colour_dot_centres(known_frame, cfa_pattern="RGGB", black_level_dn=64)
    near = np.hypot(*(centres.green_px - [1023.5, 767.5]).T) < 200
    inner = replace(centres, green_px=centres.green_px[near], red_px=centres.red_px[near],
                    blue_px=centres.blue_px[near])  # fmt: skip
    with pytest.raises(MeasurementError, match="reaching beyond"):
        fit_lateral_colour(inner, pixel_pitch_um=PITCH_UM)
    with pytest.raises(ValueError, match="pixel pitch"):
        fit_lateral_colour(centres, pixel_pitch_um=0.0)
