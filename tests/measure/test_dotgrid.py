"""Dot-grid geometry against frames synthesised from a known principal point, scale, rotation and ptlens law."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from rig.config import load_chart
from rig.errors import MeasurementError
from rig.measure.dotgrid import detect_dots, fit_dot_grid, ptlens_radius
from tests.measure.dotgrid_synth import GridTruth, mosaic, render

TRUTH = GridTruth()
CENTRE_TOL_PX = 0.1  # principal point (chart origin on axis): ~300 dots at ~0.03 px each
MAPPING_TOL_PX = 0.1  # the fitted radial mapping vs the true one, anywhere out to the corner
RMS_LIMIT_PX = 0.08  # centroid noise at SNR ≈ 60 with 1-px blur is a few hundredths of a pixel


@pytest.fixture(scope="module")
def grey() -> np.ndarray:
    return render(TRUTH, rng=np.random.default_rng(11))


def _mapping_error(fit, truth: GridTruth) -> float:  # type: ignore[no-untyped-def]
    r = np.linspace(0, np.hypot(truth.width, truth.height) / 2, 200)
    true_rd = r * truth.factor(r)
    got = ptlens_radius(r, a=fit.ptlens_a, b=fit.ptlens_b, c=fit.ptlens_c, r_norm=fit.r_norm_px)
    return float(np.abs(got - true_rd).max())


def test_detected_centres_are_the_distorted_node_images(grey: np.ndarray) -> None:
    det = detect_dots(grey, black_level_dn=64)
    nodes = np.mgrid[-12:13, -10:11].reshape(2, -1).T
    truth = TRUTH.node_positions(nodes)
    inside = (
        (truth[:, 0] > 30) & (truth[:, 0] < TRUTH.width - 31) & (truth[:, 1] > 30) & (truth[:, 1] < TRUTH.height - 31)
    )
    dist = np.hypot(*(det.centres_px[:, None, :] - truth[None, :, :]).transpose(2, 0, 1)).min(axis=1)
    assert len(det.centres_px) >= inside.sum() - 4  # every dot fully inside the frame (bar a few at the rim)
    assert np.percentile(dist, 95) < 0.05 and dist.max() < 0.1, f"centroid error max {dist.max():.3f} px"


def test_fit_recovers_principal_point_scale_rotation_and_distortion(grey: np.ndarray) -> None:
    chart = load_chart("dotgrid")
    assert chart.dots is not None and chart.dots.pitch == TRUTH.pitch
    fit = fit_dot_grid(detect_dots(grey, black_level_dn=64), pitch=chart.dots.pitch)
    assert fit.principal_point_px == pytest.approx((TRUTH.cx, TRUTH.cy), abs=CENTRE_TOL_PX)
    assert fit.scale_px_per_unit == pytest.approx(TRUTH.scale_px_per_unit, rel=1e-4)
    assert fit.rotation_deg == pytest.approx(TRUTH.rotation_deg, abs=0.005)
    assert _mapping_error(fit, TRUTH) < MAPPING_TOL_PX
    assert fit.rms_residual_px < RMS_LIMIT_PX
    assert fit.dots_used >= 250
    assert max(fit.principal_point_sigma_px) < CENTRE_TOL_PX / 2


def test_cfa_frames_give_the_same_geometry_in_readout_pixels(grey: np.ndarray) -> None:
    fit = fit_dot_grid(detect_dots(mosaic(grey), cfa=True, black_level_dn=64), pitch=TRUTH.pitch)
    assert fit.principal_point_px == pytest.approx((TRUTH.cx, TRUTH.cy), abs=2 * CENTRE_TOL_PX)
    assert _mapping_error(fit, TRUTH) < 2 * MAPPING_TOL_PX


def test_separate_centre_finds_the_axis_of_an_off_axis_chart() -> None:
    # Chart origin 15 px (0.3 pitch) off the optical axis, with a distortion strong enough (−3 % at the short
    # edge) that the axis shows in the curvature. The default model (origin on the axis) must be visibly wrong.
    # Half-size frame (1024×768) to keep the render quick.
    truth = replace(TRUTH, width=1024, height=768, cx=515.2, cy=380.9, scale_px_per_unit=645.0,
                    a=0.0, b=-0.03, c=0.0, origin_dx_px=12.0, origin_dy_px=-9.0)  # fmt: skip
    det = detect_dots(render(truth, rng=np.random.default_rng(12)), black_level_dn=64)
    fit = fit_dot_grid(det, pitch=truth.pitch, separate_centre=True, terms="b")
    assert fit.principal_point_px == pytest.approx((truth.cx, truth.cy), abs=0.25)  # from curvature: σ ≈ 0.04 px
    assert fit.grid_origin_px == pytest.approx(tuple(truth.origin), abs=0.25)
    assert fit.ptlens_b == pytest.approx(-0.03, abs=5e-4)
    assert max(fit.principal_point_sigma_px) < 0.1
    naive = fit_dot_grid(det, pitch=truth.pitch, terms="b")
    assert naive.rms_residual_px > 3 * fit.rms_residual_px


def test_a_blank_frame_is_not_measurable() -> None:
    with pytest.raises(MeasurementError, match="dots found"):
        detect_dots(np.full((480, 640), 500.0), black_level_dn=64)
