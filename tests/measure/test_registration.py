"""Registration against frames synthesised here: a field of Gaussian blobs evaluated analytically at the
transformed coordinates (exact rotation), and band-limited noise shifted by the Fourier shift theorem."""

from __future__ import annotations

import dataclasses
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


LOG_POLAR_SCALE_REL_TOL = 0.01
"""The log-polar scale's resolution at the 512-px coarse scale: one log-radius sample is 2.2 % of scale
(K = 256 / ln 256); phase correlation resolves it to under half a sample (measured: 0.57 % worst, at 1.25)."""


def _zoomed(image: np.ndarray, zoom: float, angle_deg: float) -> np.ndarray:
    import cv2

    h, w = image.shape
    matrix = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), angle_deg, zoom)
    return cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)


def _as_stored(image: np.ndarray, storage: str, rng: np.random.Generator) -> np.ndarray:
    """The texture as a file holds it: float, 16-bit on a pedestal (rounding noise), or with 2 % white noise."""
    if storage == "uint16":
        return np.round(20000 + 1500 * image).astype(np.uint16)
    if storage == "noisy":
        return (image + 0.02 * rng.standard_normal(image.shape)).astype(np.float32)
    return image


@pytest.mark.parametrize("storage", ["float", "uint16", "noisy"])
@pytest.mark.parametrize(("zoom", "angle_deg"), [(0.8, 0.0), (1.05, 10.0), (1.1, -25.0), (1.25, 30.0)])
def test_log_polar_scale_of_zoomed_pairs_and_their_refusal_names_it(
    zoom: float, angle_deg: float, storage: str
) -> None:
    from rig.measure.registration import RegistrationError, check_registration

    rng = np.random.default_rng(17)
    a = blob_field(384, 512, 3, n=900)
    result = register(_as_stored(a, storage, rng), _as_stored(_zoomed(a, zoom, angle_deg), storage, rng))
    assert result.log_polar_scale == pytest.approx(zoom, rel=LOG_POLAR_SCALE_REL_TOL)
    with pytest.raises(RegistrationError, match=r"differ in scale by \d\.\d{4} \(log-polar estimate") as info:
        check_registration(result)
    assert f"{result.log_polar_scale:.4f}" in str(info.value)


@pytest.mark.parametrize("storage", ["float", "uint16", "noisy"])
def test_log_polar_scale_of_rigid_pairs_is_one_and_of_unrelated_frames_unknown(storage: str) -> None:
    from rig.measure.registration import MIN_LOG_POLAR_RESPONSE, check_registration

    rng = np.random.default_rng(18)
    a = blob_field(384, 512, 3, n=900)
    b = blob_field(384, 512, 3, theta_rad=math.radians(4.0), shift=(5.3, -2.2), n=900)
    rigid = register(_as_stored(a, storage, rng), _as_stored(b, storage, rng))
    assert rigid.log_polar_scale == pytest.approx(1.0, abs=0.005)  # half a log-polar sample (2.2 %) and less
    assert check_registration(rigid) is rigid  # not refused: the rigid pair keeps its figures
    other = register(a, blob_field(384, 512, 9, n=900))
    assert other.log_polar_response < MIN_LOG_POLAR_RESPONSE and math.isnan(other.log_polar_scale)


@pytest.mark.parametrize("shape", [(128, 128), (384, 384), (96, 128), (7, 9), (8, 5), (5, 8)])
def test_full_spectrum_rebuilt_from_the_real_half_is_numpys_complex_fft(shape: tuple[int, int]) -> None:
    """The patch and coarse spectra come from ``rfft2`` and the Hermitian symmetry of a real array's transform;
    numpy's complex ``fft2`` of the same array is the counterpart (rounding-level agreement, 1e-12 relative)."""
    from rig.measure.registration import _hermitian_full

    x = np.random.default_rng(sum(shape)).standard_normal(shape)
    full = np.fft.fft2(x)
    rebuilt = _hermitian_full(np.fft.rfft2(x), shape[1])
    assert np.max(np.abs(rebuilt - full)) <= 1e-12 * np.max(np.abs(full))
    magnitude = _hermitian_full(np.abs(np.fft.rfft2(x)), shape[1])
    assert np.max(np.abs(magnitude - np.abs(full))) <= 1e-12 * np.max(np.abs(full))


def test_the_same_frames_register_to_the_same_bits() -> None:
    """Determinism: nothing in a registration depends on thread timing or state left by an earlier call — the
    bench registers in two pool threads at once (rig.bench.pipeline), sharing the cached grids."""
    from concurrent.futures import ThreadPoolExecutor

    a = blob_field(384, 512, 5, n=900).astype(np.float32)
    b = blob_field(384, 512, 5, theta_rad=math.radians(0.8), shift=(2.6, -1.3), n=900).astype(np.float32)

    def figures(reference: np.ndarray, moving: np.ndarray) -> list[float]:
        result = register(reference, moving, grid=3, iterations=2)
        return [float(getattr(result, f.name)) for f in dataclasses.fields(result)]

    first = figures(a, b)
    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = [pool.submit(figures, *pair) for pair in ((a, b), (b, a), (a, b), (b, a))]
        concurrent = [run.result() for run in runs]
    assert np.array_equal(concurrent[0], first, equal_nan=True)
    assert np.array_equal(concurrent[2], first, equal_nan=True)
    assert np.array_equal(concurrent[1], concurrent[3], equal_nan=True)
