"""SFR accuracy on edges synthesised from a known OTF: diffraction, OLPF, critical angles, noise.

Ground truth is the closed-form OTF (``tests.measure.otf_edges``), not anything the measurement produced. The
ROIs are 100 rows by ``rows·tan θ + 120`` columns, so an Airy edge's 1/x² tail runs past the ROI; that
truncation (≈ 0.13/(f_c·R) of the LSF's energy for cutoff f_c and half-width R) is part of the error measured.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from rig.measure.sfr import slanted_edge_sfr
from tests.measure.analytic import F, gaussian_edge, gaussian_mtf, mtf50, pixel_mtf
from tests.measure.otf_edges import airy_otf, gaussian_otf, mtf50_of, olpf_otf, otf_edge, pixel_otf, product

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


def _edge(make, angle: float, **kwargs: float) -> tuple[np.ndarray, float]:
    otf = make(angle)
    cols = int(ROWS * math.tan(math.radians(angle))) + 120
    return otf_edge((ROWS, cols), angle_deg=angle, otf=otf, **kwargs), mtf50_of(otf)


def test_noise_free_mtf50_over_psfs_and_angles() -> None:
    errors = {}
    for name, make in _classes().items():
        for angle in ANGLES_DEG:
            image, truth = _edge(make, angle)
            errors[(name, round(angle, 2))] = abs(slanted_edge_sfr(image).mtf50_cy_px / truth - 1.0)
    values = np.array(list(errors.values()))
    worst = max(errors, key=errors.get)
    assert np.median(values) <= 0.0015, f"median MTF50 error {np.median(values):.3%}"
    assert values.max() <= 0.015, f"worst MTF50 error {values.max():.2%} at {worst}"


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
