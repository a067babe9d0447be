"""Registration against frames synthesised here: a field of Gaussian blobs evaluated analytically at the
transformed coordinates (exact rotation), and band-limited noise shifted by the Fourier shift theorem."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from rig.errors import MeasurementError
from rig.measure.registration import register

SHIFT_TOL_PX = 0.02  # brief: ≤ 0.02 px
ROTATION_TOL_DEG = 0.01  # brief: ≤ 0.01°
NOISY_SHIFT_TOL_PX = 0.05  # brief: ≤ 0.05 px on noisy captures


def blob_field(
    h: int, w: int, seed: int, *, theta_rad: float = 0.0, shift: tuple[float, float] = (0.0, 0.0), n: int = 1500
) -> np.ndarray:
    """Gaussian blobs; each centre is carried through x ↦ R(θ)(x − c) + c + t, so the frame is exactly the
    reference rotated about the frame centre c and shifted (blobs are round: rotating one changes nothing)."""
    rng = np.random.default_rng(seed)
    cx, cy = (w - 1) / 2, (h - 1) / 2
    xs, ys = rng.uniform(-0.2 * w, 1.2 * w, n), rng.uniform(-0.2 * h, 1.2 * h, n)
    sigmas, amps = rng.uniform(1.5, 5.0, n), rng.uniform(-1.0, 1.0, n)
    c, s = math.cos(theta_rad), math.sin(theta_rad)
    bx = c * (xs - cx) - s * (ys - cy) + cx + shift[0]
    by = s * (xs - cx) + c * (ys - cy) + cy + shift[1]
    image = np.zeros((h, w))
    for x0, y0, sg, amp in zip(bx, by, sigmas, amps, strict=True):
        r = int(4 * sg) + 1
        xa, xb = max(0, int(x0) - r), min(w, int(x0) + r + 1)
        ya, yb = max(0, int(y0) - r), min(h, int(y0) + r + 1)
        if xa < xb and ya < yb:
            gx = np.exp(-0.5 * ((np.arange(xa, xb) - x0) / sg) ** 2)
            gy = np.exp(-0.5 * ((np.arange(ya, yb) - y0) / sg) ** 2)
            image[ya:yb, xa:xb] += amp * gy[:, None] * gx[None, :]
    return image


@pytest.mark.parametrize("shift", [(0.25, -0.4), (3.71, 1.13), (-12.06, 7.5)])
def test_fourier_shifted_frames_register_to_a_fiftieth_of_a_pixel(shift: tuple[float, float]) -> None:
    rng = np.random.default_rng(2)
    a = ndimage.gaussian_filter(rng.standard_normal((512, 640)), 2.0)
    b = np.fft.ifft2(ndimage.fourier_shift(np.fft.fft2(a), (shift[1], shift[0]))).real
    r = register(a, b)
    assert abs(r.dx_px - shift[0]) <= SHIFT_TOL_PX and abs(r.dy_px - shift[1]) <= SHIFT_TOL_PX, r
    assert abs(r.rotation_deg) <= ROTATION_TOL_DEG


@pytest.mark.parametrize(("angle_deg", "shift"), [(0.3, (2.21, 0.9)), (-1.7, (-5.4, 3.3)), (12.0, (3.0, -4.25))])
def test_rotated_frames_register_to_a_hundredth_of_a_degree(angle_deg: float, shift: tuple[float, float]) -> None:
    a = blob_field(768, 1024, 1)
    b = blob_field(768, 1024, 1, theta_rad=math.radians(angle_deg), shift=shift)
    r = register(a.astype(np.float32), b.astype(np.float32))
    assert abs(r.rotation_deg - angle_deg) <= ROTATION_TOL_DEG, r
    assert abs(r.dx_px - shift[0]) <= SHIFT_TOL_PX and abs(r.dy_px - shift[1]) <= SHIFT_TOL_PX, r


def test_noisy_frames_register_within_five_hundredths() -> None:
    rng = np.random.default_rng(8)
    shift = (1.37, -0.62)
    a = 400 + 300 * blob_field(768, 1024, 4)
    b = 400 + 300 * blob_field(768, 1024, 4, shift=shift)
    # shot noise of ~2500 e⁻ at 0.16 DN/e⁻ plus 2 DN read noise: SNR ≈ 50 like a lit chart frame
    noisy_a = a + rng.normal(0.0, 1.0, a.shape) * np.sqrt(0.16 * a + 4.0)
    noisy_b = b + rng.normal(0.0, 1.0, b.shape) * np.sqrt(0.16 * b + 4.0)
    r = register(noisy_a, noisy_b)
    assert abs(r.dx_px - shift[0]) <= NOISY_SHIFT_TOL_PX and abs(r.dy_px - shift[1]) <= NOISY_SHIFT_TOL_PX, r


def test_identical_frames_give_zero() -> None:
    a = blob_field(512, 512, 9)
    r = register(a, a)
    assert abs(r.dx_px) < 1e-3 and abs(r.dy_px) < 1e-3 and abs(r.rotation_deg) < 1e-4


def test_frames_of_different_sizes_or_without_texture_are_refused() -> None:
    a = blob_field(512, 512, 1)
    with pytest.raises(MeasurementError, match="same size"):
        register(a, a[:, :500])
    with pytest.raises(MeasurementError, match="texture"):
        register(np.full((512, 512), 100.0), np.full((512, 512), 100.0))
