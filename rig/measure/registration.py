"""Sub-pixel rigid registration (translation + rotation) of two frames of the same scene.

Two stages. A coarse one on copies reduced to ≤ 512 px: the rotation and the scale from the phase correlation
of the log-polar resampled Fourier magnitudes (Reddy & Chatterji 1996; magnitude spectra ignore translation, a
rotation of the image is a cyclic shift of their polar angle and a zoom by s a shift of their log radius by
−ln s; OpenCV ``warpPolar`` with ``WARP_POLAR_LOG`` samples ρ = K·ln r, K = width / ln(max radius), and
``phaseCorrelate`` finds the shift), then the translation from the phase correlation of the derotated copies.
The scale is only reported (and a pair that is not at one scale refused, :func:`check_registration`): the
figures are those of a rigid motion.

A fine stage at full resolution: the most textured patches of the reference (structure in two directions, Shi &
Tomasi 1994; a patch with one edge or only shading would slide) are matched against the moving frame resampled
through the current estimate; each patch's residual shift comes from the
matrix-multiply upsampled DFT of the windowed cross-power spectrum (Guizar-Sicairos, Thurman & Fienup 2008, the
method of scikit-image's ``phase_cross_correlation``) and a weighted least-squares rigid fit (2-D Kabsch) of the
patch centres updates the estimate. Iterating drives every residual shift towards zero, where the window and
the interpolation no longer bias the estimate.

Convention: ``moving(x) = reference(R(θ)⁻¹ · (x − c − t) + c)`` with ``c`` the frame centre ((w − 1)/2, (h − 1)/2),
pixel coordinates x right and y down: the reference content appears in the moving frame rotated by θ about the
centre (positive θ turns +x towards +y, clockwise on a display) and then shifted by t = (dx, dy).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np
from scipy import ndimage

from rig.errors import MeasurementError
from rig.measure.imageio import bayer_mean

_COARSE_MAX_PX = 512
_N_ANGLE = 1024  # polar angle samples of the log-polar maps (0.35° each)
_MIN_PATCHES = 3


@dataclass(frozen=True)
class Registration:
    """Rigid transform taking the reference frame onto the moving frame.

    Attributes
    ----------
    dx_px, dy_px
        Translation (px of the frames given), after the rotation about the frame centre.
    rotation_deg
        Rotation about the frame centre (degrees, positive turns +x towards +y).
    residual_rms_px
        RMS distance between the patch positions and the fitted transform (px): the fit's self-consistency.
    patches_used
        Textured patches that entered the fit.
    scale
        Scale of the similarity transform through the same patch positions (1 = rigid): how far the pair is
        from the rigid model the figures assume (a zoom, a focus change, another scene).
    peak_correlation
        Median normalised correlation (0 … 1) of the used patches at their peaks: the confidence of the match.
    patches_matched
        Patches with a correlation peak above ``min_peak`` (``patches_used`` of them agreed with the fit).
    log_polar_scale
        Scale of the moving frame's content against the reference's (> 1: zoomed in) from the log-polar phase
        correlation of the Fourier magnitudes, independent of the patch fit; NaN when that correlation's peak
        is below :data:`MIN_LOG_POLAR_RESPONSE` (unrelated or very noisy frames: the estimate would be noise).
        Resolution ~0.3 % at the 512-px coarse scale.
    log_polar_response
        The height of that correlation peak (OpenCV ``phaseCorrelate`` response, 0 … 1).
    """

    dx_px: float
    dy_px: float
    rotation_deg: float
    residual_rms_px: float
    patches_used: int
    scale: float = 1.0
    peak_correlation: float = float("nan")
    patches_matched: int = 0
    log_polar_scale: float = float("nan")
    log_polar_response: float = float("nan")


MAX_RESIDUAL_PX = 0.5
"""Largest patch residual rms (px) of a pair that truly differs by a rigid motion: a good pair leaves hundredths
of a pixel (the registration tests: ≤ 0.05 px on noisy captures); unrelated frames leave tens of pixels."""
MAX_SCALE_CHANGE = 0.01
"""Largest |scale − 1| accepted as rigid: 1 % moves the frame's corners by 0.5 % of the diagonal (tens of px)."""
MIN_PEAK_CORRELATION = 0.2
"""Smallest median patch correlation accepted: the same texture correlates at 0.6–1, unrelated texture ≈ 0.1."""
MAX_LOG_POLAR_SCALE_CHANGE = 0.02
"""Largest |log-polar scale − 1| accepted: about twice the estimate's error (it read 1.0064–1.0107 for a 1 % zoom
and 1.0006–1.0017 for none, clean, 16-bit-rounded and noisy; 0.6 % at most up to 1.25), so that only a real zoom
trips it; smaller scale changes are left to the patch fit's finer similarity scale (:data:`MAX_SCALE_CHANGE`)."""
MIN_LOG_POLAR_RESPONSE = 0.1
"""Smallest log-polar correlation peak whose scale is trusted: pairs of one scene reach 0.13–0.41 (zoomed 0.8 to
1.25, rotated, noisy), unrelated frames 0.014."""


class RegistrationError(MeasurementError):
    """The frames do not match by a rigid motion (another scene, a scale change, too little agreement)."""


def check_registration(
    result: Registration,
    *,
    max_residual_px: float = MAX_RESIDUAL_PX,
    max_scale_change: float = MAX_SCALE_CHANGE,
    min_peak_correlation: float = MIN_PEAK_CORRELATION,
    max_log_polar_scale_change: float = MAX_LOG_POLAR_SCALE_CHANGE,
) -> Registration:
    """Return ``result`` when the pair matches rigidly with confidence, else raise :class:`RegistrationError`.

    A number is only worth reporting when the patches agree on one rigid motion: their residual about it is
    small, a similarity fit finds no scale change, and their correlation peaks are high. A zoom the log-polar
    correlation sees (trusted only with a clear peak) is named first, with its estimate: the patch figures of a
    zoomed pair say only that it does not match.
    """
    lp = result.log_polar_scale
    if math.isfinite(lp) and abs(lp - 1.0) > max_log_polar_scale_change:
        raise RegistrationError(
            f"the frames differ in scale by {lp:.4f} (log-polar estimate, peak {result.log_polar_response:.2f}; "
            f"a rigid match is within 1 ± {max_log_polar_scale_change:g})"
        )
    if not result.peak_correlation >= min_peak_correlation:
        raise RegistrationError(
            f"the frames do not match: median patch correlation {result.peak_correlation:.2f} "
            f"(a match correlates above {min_peak_correlation:g})"
        )
    if abs(result.scale - 1.0) > max_scale_change:
        raise RegistrationError(
            f"the frames differ in scale by {result.scale:.4f} (a rigid match is within 1 ± {max_scale_change:g})"
        )
    if not result.residual_rms_px <= max_residual_px:
        raise RegistrationError(
            f"the frames do not match rigidly: patch residual {result.residual_rms_px:.2f} px rms "
            f"(a rigid match leaves at most {max_residual_px:g} px)"
        )
    return result


def _as_float(image: np.ndarray, name: str) -> np.ndarray:
    if image.ndim != 2:
        raise MeasurementError(f"{name}: a 2-D grey or raw frame, got shape {image.shape}")
    return image if image.dtype in (np.float32, np.uint8, np.uint16) else image.astype(np.float32)


def _reduce(image: np.ndarray) -> tuple[np.ndarray, int]:
    factor = max(1, math.ceil(max(image.shape) / _COARSE_MAX_PX))
    if factor == 1:
        return image.astype(np.float32), 1
    h, w = image.shape[0] // factor, image.shape[1] // factor
    small = cv2.resize(image[: h * factor, : w * factor], (w, h), interpolation=cv2.INTER_AREA)
    return small.astype(np.float32), factor


def _centred_magnitude(image: np.ndarray, window: np.ndarray) -> np.ndarray:
    """The Fourier magnitude of the windowed, mean-free image, centred (shared by both compressions); from the
    real image's ``rfft2`` half, mirrored (|F(−k)| = |F(k)|)."""
    half = np.abs(np.fft.rfft2((image - image.mean()) * window))
    return np.fft.fftshift(_hermitian_full(half, image.shape[1]))


@lru_cache(maxsize=8)
def _highpass(h: int, w: int) -> np.ndarray:
    """Reddy & Chatterji's high-pass on the centred frequency grid: the low-frequency core carries the window's
    own (unrotated) spectrum. One per frame size (each registration used to rebuild it four times)."""
    fy = np.fft.fftshift(np.fft.fftfreq(h))[:, None]
    fx = np.fft.fftshift(np.fft.fftfreq(w))[None, :]
    highpass = (1.0 - np.cos(np.pi * fx) * np.cos(np.pi * fy)) * (2.0 - np.cos(np.pi * fx) * np.cos(np.pi * fy))
    highpass.setflags(write=False)
    return highpass


def _compressed(magnitude: np.ndarray, compress: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """The high-passed, compressed centred magnitude (what the log-polar correlations compare)."""
    return (compress(magnitude) * _highpass(*magnitude.shape)).astype(np.float32)


def _log_polar_shift(ref_mag: np.ndarray, mov_mag: np.ndarray) -> tuple[float, float, float]:
    """(log-radius shift in samples, angle shift in radians, peak response) between two centred magnitudes.

    ``warpPolar`` with ``WARP_POLAR_LOG`` samples ρ = K·ln r with K = width / ln(max radius) (OpenCV imgproc,
    "Remaps an image to polar or semilog-polar coordinates space"); ``phaseCorrelate`` finds the shift.
    """
    h, w = ref_mag.shape
    radius = min(h, w) / 2.0
    n_radius = int(radius)
    centre = (w / 2.0, h / 2.0)
    flags = cv2.WARP_POLAR_LOG | cv2.INTER_LINEAR | cv2.WARP_FILL_OUTLIERS
    lp_ref = cv2.warpPolar(ref_mag, (n_radius, _N_ANGLE), centre, radius, flags)
    lp_mov = cv2.warpPolar(mov_mag, (n_radius, _N_ANGLE), centre, radius, flags)
    (shift_radius, shift_angle), response = cv2.phaseCorrelate(lp_ref, lp_mov)
    return shift_radius * math.log(radius) / n_radius, 2.0 * math.pi * shift_angle / _N_ANGLE, float(response)


@dataclass(frozen=True)
class _Coarse:
    theta_rad: float
    dx_px: float  # full-resolution pixels
    dy_px: float
    log_polar_scale: float  # NaN when the log-polar peak is too weak to trust
    log_polar_response: float


def _coarse(reference: np.ndarray, moving: np.ndarray) -> _Coarse:
    """Rotation, translation (full-resolution pixels) and log-polar scale from the reduced copies."""
    ref, factor = _reduce(reference)
    mov, _ = _reduce(moving)
    full_h, full_w = ref.shape
    # a rotation is a rotation of the spectrum's index grid only when both axes sample frequency alike: square crop
    side = min(full_h, full_w)
    y0, x0 = (full_h - side) // 2, (full_w - side) // 2
    ref = ref[y0 : y0 + side, x0 : x0 + side]
    mov = mov[y0 : y0 + side, x0 : x0 + side]
    h, w = ref.shape
    window = cv2.createHanningWindow((w, h), cv2.CV_32F)
    # white noise would fill the high-passed spectrum evenly and hide its rotation: smooth it away first
    ref_smooth = cv2.GaussianBlur(ref, (0, 0), 1.0)
    mov_smooth = cv2.GaussianBlur(mov, (0, 0), 1.0)
    # one FFT per frame feeds both compressions
    ref_magnitude = _centred_magnitude(ref_smooth, window)
    mov_magnitude = _centred_magnitude(mov_smooth, window)
    _, theta, _ = _log_polar_shift(_compressed(ref_magnitude, np.log1p), _compressed(mov_magnitude, np.log1p))
    # The scale from the square-root magnitude: the log compresses the spectrum so far that a noise or
    # quantisation floor (16-bit rounding of a 1500-DN texture) becomes a pattern the same in both frames, which
    # pins the correlation at zero shift (a 1.25 zoom read 1.0002); the root keeps the signal above that floor.
    # A zoom by s moves the spectrum's ln r by −ln s.
    log_shift, _, lp_response = _log_polar_shift(
        _compressed(ref_magnitude, np.sqrt), _compressed(mov_magnitude, np.sqrt)
    )
    scale = math.exp(-log_shift) if lp_response >= MIN_LOG_POLAR_RESPONSE else math.nan
    # magnitude spectra are point-symmetric: θ is known modulo π, we take the branch within ±90°
    theta = (theta + math.pi / 2) % math.pi - math.pi / 2
    c = ((w - 1) / 2.0, (h - 1) / 2.0)
    best: tuple[float, float, float, float] | None = None
    # the log-polar angle can be noise on small or noisy frames: keep it only if it correlates better than none
    for candidate in (theta, 0.0):
        back = cv2.getRotationMatrix2D(c, math.degrees(candidate), 1.0)  # OpenCV's +angle turns +x towards −y
        derotated = cv2.warpAffine(mov, back, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        (cx, cy), response = cv2.phaseCorrelate(ref, derotated, window)
        if best is None or response > best[3]:
            best = (candidate, cx, cy, response)
    theta, sx, sy, _ = best
    # derotated(x) = reference(x − R⁻¹t): its shift is R⁻¹t
    cos_t, sin_t = math.cos(theta), math.sin(theta)
    tx = cos_t * sx - sin_t * sy
    ty = sin_t * sx + cos_t * sy
    return _Coarse(theta, tx * factor, ty * factor, scale, float(lp_response))


@lru_cache(maxsize=16)
def _centred_indices(n: int) -> np.ndarray:
    """The DFT's frequency indices −n/2 … n/2 − 1 in ``fft`` order (built once per size)."""
    indices = np.fft.ifftshift(np.arange(n)) - n // 2
    indices.setflags(write=False)
    return indices


def _upsampled_dft(data: np.ndarray, size: int, upsample: int, offset: tuple[float, float]) -> np.ndarray:
    """Inverse DFT of ``data`` on a ``size``² grid of step 1/upsample starting at ``offset`` (rows, cols)."""
    rows, cols = data.shape
    grid = np.arange(size)
    col_kernel = np.exp(
        (-2j * np.pi / (cols * upsample)) * _centred_indices(cols)[:, None] * (grid[None, :] - offset[1])
    )
    row_kernel = np.exp(
        (-2j * np.pi / (rows * upsample)) * (grid[:, None] - offset[0]) * _centred_indices(rows)[None, :]
    )
    # (data @ col_kernel) first: the same product, but OpenBLAS's zgemm on a short-wide left operand was measured
    # 100× slower here (30 ms against 0.2 ms for 15×128·128×128 vs 128×128·128×15)
    return row_kernel @ (data @ col_kernel)


_MIN_TEXTURE_FRACTION = 0.05
"""Patches whose 2-D texture is below this fraction of the best patch's are not used."""


def _deplane(patch: np.ndarray) -> np.ndarray:
    """The patch minus its least-squares plane: shading gradients carry no position information."""
    n = patch.shape[0]
    u = np.arange(n, dtype=np.float64) - (n - 1) / 2.0
    gy = (patch.mean(axis=1) @ u) / (u @ u)
    gx = (patch.mean(axis=0) @ u) / (u @ u)
    return patch - patch.mean() - gx * u[None, :] - gy * u[:, None]


def _texture(patch: np.ndarray) -> float:
    """Smaller eigenvalue of the structure tensor Σ∇I∇Iᵀ (Shi & Tomasi 1994): large only where the patch holds
    structure in two directions, so that a correlation pins both coordinates."""
    # not deplaned first (as the correlated patches are): a plane adds one constant to every gradient sample,
    # which the mean removal below takes out again
    gy, gx = np.gradient(patch)
    gx -= gx.mean()
    gy -= gy.mean()
    jxx, jyy, jxy = float((gx * gx).sum()), float((gy * gy).sum()), float((gx * gy).sum())
    return 0.5 * (jxx + jyy - math.hypot(jxx - jyy, 2 * jxy))


def _spectrum(patch: np.ndarray, window: np.ndarray) -> tuple[np.ndarray, float]:
    """Half spectrum (``rfft2``: the patch is real) of the windowed, plane-free patch, and its energy (Σ of the
    windowed values squared)."""
    windowed = _deplane(patch) * window
    return np.fft.rfft2(windowed), float((windowed * windowed).sum())


def _hermitian_full(half: np.ndarray, cols: int) -> np.ndarray:
    """The full ``fft2`` spectrum of a real array from its ``rfft2`` half: F[−k, −l] = conj F[k, l] (or the
    magnitude's from the half magnitude: |F| is symmetric the same way).

    The columns past the half are the conjugates of columns ``cols − l``, rows mirrored (row 0 onto itself).
    """
    rows = half.shape[0]
    full = np.empty((rows, cols), dtype=half.dtype)
    n_half = half.shape[1]
    full[:, :n_half] = half
    mirrored = half[:, cols - n_half : 0 : -1]  # columns cols − l for l = n_half … cols − 1
    full[0, n_half:] = np.conj(mirrored[0])
    full[1:, n_half:] = np.conj(mirrored[:0:-1])
    return full


def _shift_from_spectra(
    fa: np.ndarray, energy_a: float, fb: np.ndarray, energy_b: float, upsample: int, shape: tuple[int, int]
) -> tuple[float, float, float]:
    """Shift (x, y) and normalised peak of the cross-correlation of two real patches of ``shape`` from their
    ``rfft2`` half spectra (the correlation is real: ``irfft2`` at half the work of a complex inverse)."""
    cross = fb * np.conj(fa)
    corr = np.fft.irfft2(cross, s=shape)
    peak = np.unravel_index(int(np.argmax(corr)), corr.shape)
    extent = np.array(shape)
    shift = np.array(peak, dtype=float)
    shift[shift > extent // 2] -= extent[shift > extent // 2]
    # two refinements on 15 × 15 grids (1/10 px over ±0.7 px, then 1/upsample around it) instead of one
    # 150 × 150 grid: the same peak for a hundredth of the work
    conj_cross = np.conj(_hermitian_full(cross, shape[1]))
    fine = corr
    fine_peak = peak
    for factor in (10, upsample) if upsample > 10 else (upsample,):
        size = 15
        offset = size // 2 - shift * factor
        fine = _upsampled_dft(conj_cross, size, factor, (offset[0], offset[1])).real
        fine_peak = np.unravel_index(int(np.argmax(fine)), fine.shape)
        shift = shift + (np.array(fine_peak, dtype=float) - size // 2) / factor
    norm = math.sqrt(energy_a * energy_b) * corr.size
    height = float(fine[fine_peak]) / norm if norm > 0 else 0.0
    return float(shift[1]), float(shift[0]), height


def patch_shift(a: np.ndarray, b: np.ndarray, *, window: np.ndarray, upsample: int = 100) -> tuple[float, float, float]:
    """Shift s (x, y) with ``b(u) ≈ a(u − s)``, and the normalised correlation at it (0..1), of two equal patches.

    Plain (not phase-normalised) cross-correlation: whitening the spectrum lets noise-dominated high frequencies
    vote as loudly as the signal. The window biases a large shift, which :func:`register`'s iteration removes.
    """
    fa, ea = _spectrum(a, window)
    fb, eb = _spectrum(b, window)
    return _shift_from_spectra(fa, ea, fb, eb, upsample, a.shape)


def _sample(image: np.ndarray, rot: np.ndarray, start: np.ndarray, size: int, *, order: int = 3) -> np.ndarray:
    """``image`` at ``start + rot·u`` for the patch pixels u (cubic spline on a local crop).

    Not ``cv2.warpAffine``: it rounds sub-pixel positions to 1/32 px, a bias as large as the accuracy we need.
    """
    u = np.arange(size, dtype=np.float64)
    xs = start[0] + rot[0, 0] * u[None, :] + rot[0, 1] * u[:, None]
    ys = start[1] + rot[1, 0] * u[None, :] + rot[1, 1] * u[:, None]
    h, w = image.shape
    x0 = min(max(math.floor(xs.min()) - 4, 0), w - 1)
    x1 = max(min(math.ceil(xs.max()) + 5, w), x0 + 1)
    y0 = min(max(math.floor(ys.min()) - 4, 0), h - 1)
    y1 = max(min(math.ceil(ys.max()) + 5, h), y0 + 1)
    crop = image[y0:y1, x0:x1].astype(np.float64)
    return ndimage.map_coordinates(crop, [ys - y0, xs - x0], order=order, mode="mirror")


def _rigid_fit(p: np.ndarray, q: np.ndarray, weight: np.ndarray) -> tuple[float, np.ndarray]:
    """θ and t minimising Σ w·|R(θ)p + t − q|² (2-D Kabsch)."""
    wsum = weight.sum()
    pm = (weight[:, None] * p).sum(axis=0) / wsum
    qm = (weight[:, None] * q).sum(axis=0) / wsum
    pc, qc = p - pm, q - qm
    cross = (weight * (pc[:, 0] * qc[:, 1] - pc[:, 1] * qc[:, 0])).sum()
    dot = (weight * (pc * qc).sum(axis=1)).sum()
    theta = math.atan2(cross, dot)
    rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    return theta, qm - rot @ pm


def register(
    reference: np.ndarray,
    moving: np.ndarray,
    *,
    grid: int = 5,
    patch_px: int | None = None,
    upsample: int = 100,
    iterations: int = 3,
    min_peak: float = 0.05,
) -> Registration:
    """Sub-pixel translation and rotation between two frames of the same textured scene.

    Parameters
    ----------
    reference, moving
        2-D frames of equal shape (grey, or quad luma of a raw frame: a Bayer mosaic's fixed colour pattern
        would pull the estimate towards zero shift).
    grid
        The fine stage keeps the grid² most textured of (2·grid + 1)² candidate patches (2-D texture: the
        structure tensor's smaller eigenvalue, at least 5 % of the best candidate's).
    patch_px
        Patch side (px); default min(128, frame's short side / 4) rounded down to a power of two.
    upsample
        Sub-pixel resolution of each patch's correlation peak: 1/upsample px.
    iterations
        Fine-stage passes (each resamples the moving frame through the current estimate).
    min_peak
        Patches whose phase-correlation peak is lower (flat or changed regions) are left out.

    Returns
    -------
    Registration
        dx_px, dy_px, rotation_deg and the fit's residual.

    Raises
    ------
    MeasurementError
        Frames of different sizes, too small, or with fewer than three textured patches that agree.

    References
    ----------
    B. S. Reddy, B. N. Chatterji, "An FFT-based technique for translation, rotation, and scale-invariant image
    registration", IEEE Trans. Image Process. 5(8), 1996. M. Guizar-Sicairos, S. T. Thurman, J. R. Fienup,
    "Efficient subpixel image registration algorithms", Opt. Lett. 33(2), 2008.
    """
    if reference.shape != moving.shape:
        raise MeasurementError(f"frames of the same size to register, got {reference.shape} and {moving.shape}")
    ref = _as_float(reference, "reference")
    mov = _as_float(moving, "moving")
    h, w = ref.shape
    if patch_px is None:
        patch_px = 1 << int(math.log2(max(16, min(128, min(h, w) // 4))))
    if min(h, w) < 2 * patch_px or patch_px < 16:
        raise MeasurementError(f"frames of at least {2 * max(patch_px, 16)} px per side to register, got {w}×{h}")
    coarse = _coarse(ref, mov)
    theta = coarse.theta_rad
    t = np.array([coarse.dx_px, coarse.dy_px])
    centre = np.array([(w - 1) / 2.0, (h - 1) / 2.0])
    margin = patch_px / 2 + 8 + abs(t).max()
    # candidates on a grid twice as dense as the patches kept: a chart with sparse targets (the SFR squares) leaves
    # most places flat or with a single edge, where a correlation slides along the edge or locks onto shading
    n_candidates = 2 * grid + 1
    xs = np.linspace(margin, w - 1 - margin, n_candidates) if w - 1 > 2 * margin else np.array([centre[0]])
    ys = np.linspace(margin, h - 1 - margin, n_candidates) if h - 1 > 2 * margin else np.array([centre[1]])
    half = patch_px // 2
    window = cv2.createHanningWindow((patch_px, patch_px), cv2.CV_64F)
    candidates = []
    for cy in ys:
        for cx in xs:
            x0, y0 = round(cx) - half, round(cy) - half
            patch = ref[y0 : y0 + patch_px, x0 : x0 + patch_px].astype(np.float64)
            candidates.append((_texture(patch), (x0, y0), patch))
    best_texture = max(c[0] for c in candidates)
    if best_texture <= 0:
        raise MeasurementError("0 textured patches matched (need 3): the frames lack texture")
    candidates.sort(key=lambda c: -c[0])
    chosen = [c for c in candidates[: grid * grid] if c[0] >= _MIN_TEXTURE_FRACTION * best_texture]
    ref_spectra = [_spectrum(patch, window) for _, _, patch in chosen]
    origins = np.array([origin for _, origin, _ in chosen], dtype=float)
    residual = float("nan")
    used = 0
    reach = float(np.linalg.norm([w, h])) / 2
    for iteration in range(iterations):
        previous = (theta, t.copy())
        # the first pass only has to get within a fraction of a pixel: bilinear sampling, 4× cheaper than cubic
        order = 1 if iteration == 0 and iterations > 1 else 3
        rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
        p_list, q_list, w_list = [], [], []
        for origin, spectrum in zip(origins, ref_spectra, strict=True):
            # patch pixel u sits at origin + u in the reference and at R(origin + u − c) + c + t in the moving frame
            start = rot @ (origin - centre) + centre + t
            sampled = _sample(mov, rot, start, patch_px, order=order)
            if sampled.std() < 1e-6:
                continue
            fb, energy_b = _spectrum(sampled, window)
            sx, sy, peak = _shift_from_spectra(spectrum[0], spectrum[1], fb, energy_b, upsample, sampled.shape)
            if peak < min_peak:
                continue
            centre_ref = origin + (patch_px - 1) / 2.0
            predicted = rot @ (centre_ref - centre) + centre + t
            p_list.append(centre_ref - centre)
            q_list.append(predicted + rot @ np.array([sx, sy]) - centre)
            w_list.append(peak)
        if len(p_list) < _MIN_PATCHES:
            raise MeasurementError(
                f"{len(p_list)} textured patches matched (need {_MIN_PATCHES}): the frames lack texture or differ"
            )
        p, q, wt = np.array(p_list), np.array(q_list), np.array(w_list)
        keep = np.ones(len(p), dtype=bool)
        for _ in range(2):
            theta, t = _rigid_fit(p[keep], q[keep], wt[keep])
            rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
            dist = np.linalg.norm(p @ rot.T + t - q, axis=1)
            scale = max(1.4826 * float(np.median(dist[keep])), 0.02)
            new_keep = dist <= 4.0 * scale
            if new_keep.sum() < _MIN_PATCHES or np.array_equal(new_keep, keep):
                break
            keep = new_keep
        residual = float(np.sqrt(np.mean(dist[keep] ** 2)))
        used = int(keep.sum())
        # converged: no pixel of the frame moves by more than the correlation's resolution
        if order == 3 and abs(theta - previous[0]) * reach + float(np.abs(t - previous[1]).max()) < 0.2 / upsample:
            break
    return Registration(
        dx_px=float(t[0]),
        dy_px=float(t[1]),
        rotation_deg=math.degrees(theta),
        residual_rms_px=residual,
        patches_used=used,
        scale=_similarity_scale(p[keep], q[keep], wt[keep]),
        peak_correlation=float(np.median(wt[keep])),
        patches_matched=len(p),
        log_polar_scale=coarse.log_polar_scale,
        log_polar_response=coarse.log_polar_response,
    )


def _similarity_scale(p: np.ndarray, q: np.ndarray, weight: np.ndarray) -> float:
    """s of the weighted least-squares similarity s·R(θ)p + t ≈ q (Umeyama 1991, 2-D)."""
    wsum = weight.sum()
    pc = p - (weight[:, None] * p).sum(axis=0) / wsum
    qc = q - (weight[:, None] * q).sum(axis=0) / wsum
    cross = (weight * (pc[:, 0] * qc[:, 1] - pc[:, 1] * qc[:, 0])).sum()
    dot = (weight * (pc * qc).sum(axis=1)).sum()
    spread = (weight * (pc * pc).sum(axis=1)).sum()
    return float(math.hypot(cross, dot) / spread) if spread > 0 else float("nan")


def raw_shift_px(
    reference_luma: np.ndarray, raw: np.ndarray, *, grid: int, iterations: int, upsample: int
) -> tuple[float, float]:
    """Translation (dx, dy) of a raw CFA frame against a reference frame's quad luma, in read-out pixels.

    Parameters
    ----------
    reference_luma
        The reference frame's :func:`~rig.measure.imageio.bayer_mean` (half resolution).
    raw
        The moving frame's raw CFA codes (DN), full read-out resolution.
    grid, iterations, upsample
        As for :func:`register`, which registers the two quad lumas.

    Returns
    -------
    tuple of float
        (dx, dy) in read-out px: twice the quad-luma translation (a quad is 2 × 2 read-out px).
    """
    reg = register(reference_luma, bayer_mean(raw), grid=grid, iterations=iterations, upsample=upsample)
    return 2.0 * reg.dx_px, 2.0 * reg.dy_px
