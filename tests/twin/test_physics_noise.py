"""Sensor noise of the twin: a photon-transfer fit recovers the configured gain and read noise."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from rig.config import LensCatalog, StationConfig, TwinUnit
from rig.twin.render import render
from rig.twin.sensor import expose
from rig.twin.state import BenchState
from tests.twin.conftest import ideal_unit, with_sensor

PTC_RTOL = 0.05  # the brief's acceptance for gain and read noise
ISO = 800  # read noise ≈ 2.6 DN at full pitch: well above the 1/12 DN² of rounding
LENS = "summilux-m-35-f1.4-asph-2022"
LEVELS = (0.0, 0.1, 0.25, 0.4, 0.55, 0.7, 0.85)


@pytest.mark.parametrize("binning", [1, 2])
def test_photon_transfer_gives_configured_gain_and_read_noise(
    station: StationConfig, catalog: LensCatalog, golden: TwinUnit, binning: int
) -> None:
    # a small sensor: 384×288 read-out pixels, so the test stays fast at full pitch
    small = with_sensor(station, full_width_px=384 * binning, full_height_px=288 * binning, binning=binning)
    unit = ideal_unit(golden)
    state = BenchState()
    state.update(
        rail_mm=small.rail.focus_mm,
        carousel_mm=small.carousel.slots["flat"],
        exposure_time_s=0.002,
        iso=ISO,
        lens_attached=True,
        lens_id=LENS,
    )
    lens = catalog.get(LENS)
    black = small.sensor.black_level_dn
    means, variances = [], []
    for k, level in enumerate(LEVELS):
        snap = dataclasses.replace(state.snapshot(), light_pwm=level * small.light.pwm_max)
        a, b = (
            render(small, unit, catalog, snap, lens=lens, rng=np.random.default_rng([7, k, j])).raw.astype(np.float64)
            for j in range(2)
        )
        # the difference of two frames cancels the shading, so the variance is temporal noise only
        means.append(0.5 * (a.mean() + b.mean()) - black)
        variances.append(np.var(a - b) / 2.0)
    assert max(means) < 0.9 * (small.sensor.white_level_dn - black), "the brightest level must not clip"

    cg = unit.sensor.conversion_gain_dn_per_e * ISO / 100
    expected_gain = cg / binning**2
    expected_read_dn = unit.sensor.read_noise_e * cg / binning
    slope, intercept = np.polyfit(np.array(means[1:]), np.array(variances[1:]), 1)
    assert slope == pytest.approx(expected_gain, rel=PTC_RTOL)
    # the dark frame: read noise plus the rounding's 1/12 DN²
    read_dn = float(np.sqrt(variances[0] - 1.0 / 12.0))
    assert read_dn == pytest.approx(expected_read_dn, rel=PTC_RTOL)
    assert intercept == pytest.approx(expected_read_dn**2 + 1.0 / 12.0, abs=0.3 * expected_read_dn**2)


def test_low_light_counts_are_poisson(golden: TwinUnit) -> None:
    """Below 20 e⁻ the photon count is exact Poisson: integer electrons, variance = mean (no read noise)."""
    sensor = golden.sensor.model_copy(update={"read_noise_e": 0.0, "conversion_gain_dn_per_e": 1.0})
    mean_e = 3.0
    raw = expose(
        np.full((200, 300), mean_e, np.float32),  # 1 DN per electron at ISO 100
        sensor=sensor,
        iso=100,
        binning=1,
        black_level=64,
        white_level=1023,
        rng=np.random.default_rng(11),
    )
    counts = raw.astype(np.float64) - 64
    # 60 000 draws: the mean and variance of Poisson(3) within 5 standard errors
    assert counts.mean() == pytest.approx(mean_e, abs=5 * np.sqrt(mean_e / counts.size))
    assert counts.var() == pytest.approx(mean_e, rel=0.05)
    assert np.mean(counts == 0) == pytest.approx(np.exp(-mean_e), abs=0.005)


def test_full_well_and_white_level_clip(golden: TwinUnit) -> None:
    raw = expose(
        np.full((64, 64), 5000.0, np.float32),
        sensor=golden.sensor,
        iso=100,
        binning=1,
        black_level=64,
        white_level=1023,
        rng=np.random.default_rng(3),
    )
    assert int(raw.max()) <= 1023
    # full well 6000 e⁻ × 0.16 DN/e⁻ = 960 DN above black = 1024 → clipped to white
    assert np.all(raw >= 1023 - 1)


def test_fast_normal_sampler_matches_the_normal_distribution() -> None:
    """The table sampler against scipy's normal CDF (ground truth it did not produce): 2 M draws."""
    from scipy import stats

    from rig.twin.sensor import standard_normal_fast

    sample = standard_normal_fast(np.random.default_rng(5), (2000, 1000))
    assert sample.dtype == np.float32 and sample.shape == (2000, 1000)
    draws = sample.astype(np.float64)
    n = draws.size
    # mean and variance within 5 standard errors of 0 and 1
    assert abs(draws.mean()) < 5 / np.sqrt(n)
    assert draws.var() == pytest.approx(1.0, abs=5 * np.sqrt(2 / n))
    # the empirical CDF within the Kolmogorov-Smirnov 1 % critical value (1.63/√n) of the normal's
    assert stats.kstest(draws.ravel()[::4], "norm").statistic < 1.63 / np.sqrt(n / 4)
    # the tails: what lies beyond 3 σ is the normal's share (0.27 %) within 5 %; nothing beyond the documented cut
    assert np.mean(np.abs(draws) > 3.0) == pytest.approx(2 * stats.norm.sf(3.0), rel=0.05)
    assert np.abs(draws).max() < 4.34
