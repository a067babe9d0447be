"""Shading gain maps against flat fields synthesised from a known per-channel law (tests/calibrate/flatfield.py)."""

from __future__ import annotations

import numpy as np
import pytest

from rig.calibrate.shading import apply_shading, fit_shading, residual_shading
from rig.errors import MeasurementError
from tests.calibrate.flatfield import BLACK_DN, STRONG, flat_field, true_gains

# Test size: the twin's binned 2048×1536 read-out.
HEIGHT, WIDTH = 1536, 2048
GAIN_TOLERANCE = 0.005  # brief: gains within 0.5 % of truth at every map point
RESIDUAL_LIMIT_PCT = 1.0  # brief: ≤ 1 % residual shading after correction


@pytest.fixture(scope="module")
def flat() -> np.ndarray:
    return flat_field(STRONG, height=HEIGHT, width=WIDTH, rng=np.random.default_rng(20261123))


def test_fitted_gains_match_the_true_law_within_half_a_percent(flat: np.ndarray) -> None:
    fit = fit_shading(flat, black_level_dn=BLACK_DN, map_points=(13, 17))
    truth = true_gains(STRONG, height=HEIGHT, width=WIDTH, points=(13, 17))
    got = fit.maps.gains_array()
    rel = np.abs(got / truth - 1)
    worst = np.unravel_index(rel.argmax(), rel.shape)
    assert rel.max() <= GAIN_TOLERANCE, f"gain error {100 * rel.max():.3f} % at (channel, v, h) = {worst}"
    assert got.min() >= 1.0  # normalised to the peak: gains never darken
    # The law's corners need ≳ 30 % gain: the test would fail on a flat (all-ones) map.
    assert truth.max() > 1.3


def test_correction_leaves_under_one_percent_residual(flat: np.ndarray) -> None:
    before = residual_shading(flat.astype(np.float64) - BLACK_DN)
    fit = fit_shading(flat, black_level_dn=BLACK_DN)
    after = residual_shading(apply_shading(flat, fit.maps, black_level_dn=BLACK_DN))
    assert before.worst_pct > 20.0  # strong shading to start with
    for channel, pct in after.max_abs_pct.items():
        assert pct <= RESIDUAL_LIMIT_PCT, f"{channel}: residual {pct:.3f} % > {RESIDUAL_LIMIT_PCT} %"


def test_fit_diagnostics_report_signal_and_falloff(flat: np.ndarray) -> None:
    fit = fit_shading(flat, black_level_dn=BLACK_DN)
    # peak signal is the law's level (photon noise averages out over a block): within 1 %
    for channel, level in STRONG.level_dn.items():
        assert fit.peak_signal_dn[channel] == pytest.approx(level, rel=0.01)
    # R falls off more than Gr by construction (k1 −0.30 vs −0.20)
    assert fit.falloff_pct["R"] > fit.falloff_pct["Gr"] + 5
    # rms about the surface is photon noise of a ~16×16 block: well under 0.5 %
    assert max(fit.fit_rms_pct.values()) < 0.5


def test_maps_fitted_at_one_size_correct_a_frame_of_another(flat: np.ndarray) -> None:
    # 2×2 same-colour binning keeps RGGB order: a half-size frame of the same flat field.
    small = flat.reshape(HEIGHT // 4, 2, 2, WIDTH // 4, 2, 2).astype(np.float64)
    small = small.mean(axis=(1, 4)).reshape(HEIGHT // 2, WIDTH // 2)
    fit = fit_shading(flat, black_level_dn=BLACK_DN)
    after = residual_shading(apply_shading(small, fit.maps, black_level_dn=BLACK_DN))
    assert after.worst_pct <= RESIDUAL_LIMIT_PCT


def test_dark_clipped_and_malformed_frames_are_refused(flat: np.ndarray) -> None:
    with pytest.raises(MeasurementError, match="near white"):
        fit_shading(np.full((64, 64), 1023, np.uint16), black_level_dn=BLACK_DN, blocks=(8, 8))
    with pytest.raises(MeasurementError, match="peaks at"):
        fit_shading(np.full((64, 64), BLACK_DN + 2, np.uint16), black_level_dn=BLACK_DN, blocks=(8, 8))
    with pytest.raises(MeasurementError, match="even sides"):
        fit_shading(flat[:-1], black_level_dn=BLACK_DN)
    with pytest.raises(MeasurementError, match="odd counts"):
        residual_shading(flat.astype(float), blocks=(10, 14))
