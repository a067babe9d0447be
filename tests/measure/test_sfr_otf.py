"""SFR accuracy on edges synthesised from a known OTF: diffraction, OLPF, critical angles, noise.

Ground truth is the closed-form OTF (``tests.measure.otf_edges``), not anything the measurement produced. The
ROIs are 100 rows by ``rows·tan θ + 120`` columns, so an Airy edge's 1/x² tail runs past the ROI; that
truncation (≈ 0.13/(f_c·R) of the LSF's energy for cutoff f_c and half-width R) is part of the error measured.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from rig.measure.sfr import EdgeOrientation, slanted_edge_sfr
from tests.measure.analytic import F, gaussian_edge, gaussian_mtf, mtf50, pixel_mtf
from tests.measure.otf_edges import (
    airy_otf,
    gaussian_otf,
    mtf50_noise_floor,
    mtf50_of,
    olpf_otf,
    otf_edge,
    pixel_otf,
    product,
)

PITCH_UM = 4.0
ANGLES_DEG = (2.0, 5.0, 10.0, math.degrees(math.atan(0.25)), 20.0, math.degrees(math.atan(0.5)), 35.0, 44.0)
ROWS = 100


def _classes() -> dict[str, object]:
    out: dict[str, object] = {}
    for sigma in (0.5, 1.0, 2.0):
        out[f"gaussian σ{sigma}"] = lambda a, s=sigma: product(gaussian_otf(s), pixel_otf(a))
    for n in (4, 8, 16, 32):
        out[f"airy f/{n}"] = lambda a, n=n: product(airy_otf(n, PITCH_UM), pixel_otf(a))
    for n in (4, 11):
        out[f"airy f/{n} × OLPF"] = lambda a, n=n: product(airy_otf(n, PITCH_UM), olpf_otf(0.7, a), pixel_otf(a))
    return out


def _edge(make, angle: float, rows: int = ROWS, **kwargs: float) -> tuple[np.ndarray, float]:
    otf = make(angle)
    cols = int(rows * math.tan(math.radians(angle))) + 120
    return otf_edge((rows, cols), angle_deg=angle, otf=otf, **kwargs), mtf50_of(otf)


NOISY_CONDITIONS = {
    "σ 0.5 %": (0.005, 200.0, 800.0),
    "σ 2 %": (0.02, 200.0, 800.0),
    "1.5:1 σ 1 %": (0.01, 400.0, 600.0),
}
"""Noise σ as a fraction of the step, dark and light DN: the noisy and low-contrast edges of issue #15."""


def _mean_error(image: np.ndarray, truth: float, noise_dn: float, rng: np.random.Generator, pairs: int) -> np.ndarray:
    """MTF50 errors over noise draws in antithetic pairs (n, −n), one mean per pair.

    Why pairs: the error's first-order response to the noise cancels within each pair, so the mean over a few
    pairs resolves the estimator's bias (its second-order and deterministic part) to a few hundredths of a
    percent where independent draws would need a hundred times more (the per-draw spread is 0.3–2 %).
    """
    means = []
    for _ in range(pairs):
        n = rng.normal(0.0, noise_dn, image.shape)
        pair = [slanted_edge_sfr(image + s * n, orientation=EdgeOrientation.VERTICAL).mtf50_cy_px for s in (1, -1)]
        means.append(np.mean(pair) / truth - 1.0)
    return np.array(means)


def test_noise_free_mtf50_over_psfs_and_angles() -> None:
    errors = {}
    for name, make in _classes().items():
        for angle in ANGLES_DEG:
            image, truth = _edge(make, angle)
            errors[(name, round(angle, 2))] = abs(slanted_edge_sfr(image).mtf50_cy_px / truth - 1.0)
    values = np.array(list(errors.values()))
    worst = max(errors, key=errors.get)
    # Before the far tail ran past the ROI and fine lattices were binned on, the median was 0.08 % and the worst
    # 1.11 % (Airy f/32, the ROI's own truncation); now 0.01 % and 0.11 % (Airy f/4 at 2°).
    assert np.median(values) <= 0.0005, f"median MTF50 error {np.median(values):.3%}"
    assert values.max() <= 0.002, f"worst MTF50 error {values.max():.2%} at {worst}"


@pytest.mark.parametrize("tan", [0.5, 0.25])
def test_critical_angles_are_binned_on_their_phase_lattice(tan: float) -> None:
    angle = math.degrees(math.atan(tan))
    for sigma in (0.5, 1.0):
        image, truth = _edge(lambda a, s=sigma: product(gaussian_otf(s), pixel_otf(a)), angle)
        assert slanted_edge_sfr(image).mtf50_cy_px / truth - 1.0 == pytest.approx(0.0, abs=0.002)


def test_noise_does_not_widen_the_scatter_of_compact_edges() -> None:
    # σ = 2 % of the step on 200-row Gaussian edges: the window must stop where the tails sink into the noise.
    # The rms before the adaptive window was 0.77–0.81 % on this set (two seeds); 1.0 % leaves room for seeds.
    rng = np.random.default_rng(7)
    errors = []
    for angle in (2.0, 5.0, 10.0, 20.0, 30.0, 40.0):
        for sigma in (0.5, 0.8, 1.5):
            shape = (200, max(80, math.ceil(200 * math.tan(math.radians(angle))) + 60))
            clean = gaussian_edge(shape, angle_deg=angle, sigma_px=sigma)
            truth = mtf50(F, gaussian_mtf(F, sigma) * pixel_mtf(F, angle))
            for _ in range(3):
                result = slanted_edge_sfr(clean + rng.normal(0.0, 12.0, shape))
                errors.append(result.mtf50_cy_px / truth - 1.0)
    rms = float(np.sqrt(np.mean(np.square(errors))))
    assert rms <= 0.010, f"rms MTF50 error {rms:.2%} at SNR 50"
    assert abs(float(np.mean(errors))) <= 0.003


def test_a_clean_airy_edge_keeps_its_tails_a_noisy_one_does_not() -> None:
    make = _classes()["airy f/16"]
    image, truth = _edge(make, 5.0)
    clean = slanted_edge_sfr(image)
    noisy = slanted_edge_sfr(image + np.random.default_rng(3).normal(0.0, 12.0, image.shape))
    assert clean.lsf_window_px > 40.0  # the whole ROI (±60 px less the taper)
    assert noisy.lsf_window_px < clean.lsf_window_px
    assert clean.mtf50_cy_px / truth - 1.0 == pytest.approx(0.0, abs=0.007)


@pytest.mark.parametrize("angle", [3.0, 8.0, 20.0])
def test_sfrmat5_method_keeps_sfrmat5s_bin_box_and_window(angle: float) -> None:
    # sfrmat5 divides out the derivative only: its MTF is the true one times the ¼-px bin box, sinc(f·cos θ/4)
    # along the normal (its bins are ¼ px along the row). No published sfrmat5 figures for a reproducible edge
    # were found to compare with (see the report of issue #15), so the method is checked against this property.
    from rig.measure.sfr import SfrMethod

    otf = product(gaussian_otf(0.6), pixel_otf(angle))
    image, _ = _edge(lambda a: otf, angle)
    result = slanted_edge_sfr(image, method=SfrMethod.SFRMAT5)
    f = result.frequencies_cy_px
    expected = np.abs(otf(f)) * np.abs(np.sinc(f * math.cos(math.radians(angle)) / 4.0))
    keep = f <= 0.5
    assert np.max(np.abs(result.mtf[keep] - expected[keep])) <= 0.01
    default = slanted_edge_sfr(image)
    assert result.mtf50_cy_px < default.mtf50_cy_px  # the uncorrected box reads sharp edges low


@pytest.mark.parametrize("f_number", [16, 32])
def test_a_noisy_diffraction_edge_is_not_read_sharp_for_the_tails_its_window_lost(f_number: int) -> None:
    # σ = 2 % of the step: the window stops after ~10 px and the Airy LSF's 1/x² tail beyond it is modelled from
    # the far ESF. Without that model the mean MTF50 error was +2.8 % (f/16) and +4.3 % (f/32) on this set
    # (12 edges, seed 41); with it +0.6 % and +0.9 %; the bound leaves room for the seeds' scatter.
    rng = np.random.default_rng(41)
    errors = []
    for angle in (5.0, 10.0, 20.0, 35.0):
        image, truth = _edge(lambda a: product(airy_otf(f_number, PITCH_UM), pixel_otf(a)), angle, lo=200.0, hi=800.0)
        for _ in range(3):
            errors.append(slanted_edge_sfr(image + rng.normal(0.0, 12.0, image.shape)).mtf50_cy_px / truth - 1.0)
    assert abs(float(np.mean(errors))) <= 0.015, f"mean MTF50 error {np.mean(errors):+.2%} at f/{f_number}"
    assert float(np.sqrt(np.mean(np.square(errors)))) <= 0.02


@pytest.mark.parametrize("name", list(_classes()))
def test_the_mean_error_over_noise_draws_is_within_the_target_for_every_class(name: str) -> None:
    # The bias of the estimator on the noisy and low-contrast edges, per edge class: the median over (condition,
    # angle) of |mean error| ≤ 0.15 % (issue #15's median target, for the estimator's mean) and no cell beyond
    # 0.5 % (the pairs' own scatter at σ 2 % is up to ±0.2 %). Before: Airy f/32 +0.5 … +1.2 % and f/16
    # +0.2 … +0.7 % in every cell (the 1/d² tail cut at the ROI's ends), Airy f/4 at atan ¼ −1.7 % at σ 2 % (the
    # ¼-px bins splitting the noisy fit's 0.243 px phase clusters): those classes failed; now the worst cell is
    # 0.18 % over the whole set (``benchmarks/measure_accuracy.py --bias``, 25 pairs per cell).
    make = _classes()[name]
    rng = np.random.default_rng(1500 + list(_classes()).index(name))
    cells = {}
    for label, (noise, lo, hi) in NOISY_CONDITIONS.items():
        for angle in (math.degrees(math.atan(0.25)), 35.0):
            image, truth = _edge(make, angle, lo=lo, hi=hi)
            cells[(label, round(angle, 1))] = float(np.mean(_mean_error(image, truth, noise * (hi - lo), rng, 4)))
    values = np.abs(np.array(list(cells.values())))
    worst = max(cells, key=lambda k: abs(cells[k]))
    assert np.median(values) <= 0.0015, f"{name}: median |mean MTF50 error| {np.median(values):.3%}: {cells}"
    assert values.max() <= 0.005, f"{name}: mean MTF50 error {cells[worst]:+.2%} at {worst}"


def test_the_per_draw_spread_is_the_noise_floor_of_the_window() -> None:
    # Why single draws cannot all be within 1.5 % on a 100-row ROI at σ 2 % of the step: the spread per draw is
    # what pixel noise leaves after a window as narrow as the LSF allows (first-order propagation through the
    # ESF bins, derivative and DFT, tests.measure.otf_edges.mtf50_noise_floor). For a Gaussian σ 0.5 px edge at
    # 10° the estimator keeps ±3.2 px (a 2.2 px flat top plus half its 2 px taper), whose floor is 1.04 %; it
    # measures 0.91 % (60 draws), so one draw in ten is beyond 1.5 %. The spread must match that floor within
    # 25 %: it is variance, not an estimator's excess.
    make = _classes()["gaussian σ0.5"]
    image, truth = _edge(make, 10.0)
    rng = np.random.default_rng(2024)
    errors, windows = [], []
    for _ in range(60):
        result = slanted_edge_sfr(image + rng.normal(0.0, 12.0, image.shape))
        errors.append(result.mtf50_cy_px / truth - 1.0)
        windows.append(result.lsf_window_px)
    spread = float(np.std(errors))
    floor = mtf50_noise_floor(
        make(10.0), noise_over_step=0.02, rows=ROWS, angle_deg=10.0, window_half_px=float(np.mean(windows)) + 1.0
    )
    assert spread == pytest.approx(floor, rel=0.25), f"spread {spread:.2%} against the floor {floor:.2%}"
    assert abs(float(np.mean(errors))) <= 0.003


def test_single_draws_at_half_a_percent_noise_meet_the_target_on_a_400_row_roi() -> None:
    # Issue #15's single-draw targets (median ≤ 0.15 %, max ≤ 1.5 %) on noisy edges, at the ROI height where the
    # noise floor lets them through: σ 0.5 % of the step on 400 rows (an ISO 12233:2023 e-SFR ROI may be that
    # tall). Measured here: max 0.86 %, median 0.11 % (seed 401: 0.33 %, 0.11 %). Where they are not reachable,
    # by the floor: the worst per-edge spread at 100 rows is 0.64 %, 1.03 % and 1.97 % for σ 0.5, 1 and 2 % of
    # the step (benchmarks/measure_accuracy.py --bias), the max of ~70 draws is ~2.6 spreads and the spread
    # falls as 1/√rows (slower on Airy edges, whose window widens as their tails rise above the lower noise):
    # σ 1 % still had a 1.87 % draw among these 36 edges at 400 rows, σ 2 % has 2.5 % at 400 rows; at 1600 rows
    # the whole noisy set of the benchmark meets both targets (median 0.09 %, max 1.14 % over 216 edges).
    label, noise, lo, hi = "σ 0.5 %", 0.005, 200.0, 800.0
    rng = np.random.default_rng(400)
    errors = {}
    for name, make in _classes().items():
        for angle in (2.0, math.degrees(math.atan(0.25)), math.degrees(math.atan(0.5)), 35.0):
            image, truth = _edge(make, angle, rows=400, lo=lo, hi=hi)
            noisy = image + rng.normal(0.0, noise * (hi - lo), image.shape)
            result = slanted_edge_sfr(noisy, orientation=EdgeOrientation.VERTICAL)
            errors[(name, round(angle, 1))] = abs(result.mtf50_cy_px / truth - 1.0)
    values = np.array(list(errors.values()))
    worst = max(errors, key=errors.get)
    assert values.max() <= 0.015, f"{label}: worst MTF50 error {values.max():.2%} at {worst}"
    assert np.median(values) <= 0.0015, f"{label}: median MTF50 error {np.median(values):.3%}"
