"""Dot-grid geometry: sub-pixel dot centres, grid labelling, principal point and ptlens distortion.

Chart (``fixtures/charts/dotgrid.toml``): dark dots on a square grid of ``pitch`` (normalised image units,
1 = the sensor's half diagonal, +y down) with a dot at the origin, the point the reference optics image on the
optical axis.

Model (lensfun/PanoTools ``ptlens``, REFERENCE.md §7). A grid node ``g = pitch·(i, j)`` is imaged, free of
distortion, at ``u = O + s·R(θ)·g`` (px); the lens then moves it radially about the distortion centre ``C``::

    d = C + (u − C)·(a·ρ³ + b·ρ² + c·ρ + 1 − a − b − c),   ρ = |u − C| / r_n,   r_n = half the short edge (px)

``s`` (px per chart unit) is the scale at ρ = 1, where ptlens leaves radii unchanged. By default the chart
origin is taken to sit on the optical axis (``O = C``, the chart's definition), which makes the principal
point as precise as the dot centres; ``separate_centre=True`` frees ``C`` from ``O`` (a chart off-axis on the
carousel) at the price of a centre known only through the distortion's curvature.

Pixel convention: x right, y down, pixel centres at integer coordinates (OpenCV/NumPy), so the sensor centre is
((W − 1)/2, (H − 1)/2). A CFA frame is binned 2×2 for detection and the centres mapped back to read-out pixels.

Detection: the frame is divided by a smooth background (block 90th percentiles, bilinearly resized), dark
blobs below mid-level are labelled (OpenCV connected components), blobs touching the border or far from the
median area or not disc-like are dropped, and each centre is the darkness-weighted centroid (first moments of
1 − I/background) over the blob's box grown by a quarter of its size — unbiased for a symmetric dot whatever the
threshold, unlike the binary centroid.

References
----------
H. Dersch, PanoTools lens correction model (``a``, ``b``, ``c`` radial polynomial); lensfun
``lensfun-database.dtd`` and ``mod-coord.cpp``; J. Heikkilä, "Geometric camera calibration using circular
control points", IEEE TPAMI 22(10), 2000 (centroid of imaged circles).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from scipy.optimize import least_squares
from scipy.spatial import cKDTree

from rig.errors import MeasurementError

_MIN_DOTS = 12


@dataclass(frozen=True, eq=False)
class DotDetection:
    """Detected dot centres (N, 2) as (x, y) read-out pixels, and each blob's thresholded area (px²)."""

    centres_px: np.ndarray
    areas_px: np.ndarray
    image_width_px: int
    image_height_px: int


@dataclass(frozen=True, eq=False)
class DotGridFit:
    """Geometry fitted to a dot-grid frame.

    Attributes
    ----------
    principal_point_px : (float, float)
        Distortion centre C (x, y), read-out pixels (pixel centres at integers).
    principal_point_sigma_px : (float, float)
        1-σ standard error of C from the fit's covariance (px).
    grid_origin_px : (float, float)
        Undistorted image of the chart origin O (equal to C unless ``separate_centre``).
    scale_px_per_unit : float
        Pixels per chart unit (half-diagonal unit) at ρ = 1.
    rotation_deg : float
        Chart rotation (positive turns +x towards +y).
    ptlens_a, ptlens_b, ptlens_c : float
        ptlens coefficients, r = 1 at half the short edge (``r_norm_px``).
    r_norm_px : float
        Half the short edge of the frame (px).
    rms_residual_px, max_residual_px : float
        Distance between measured centres and the model (px).
    dots_used, dots_detected : int
    centres_px, grid_indices, residuals_px : ndarray
        The centres used (N, 2), their integer grid indices (i along x, j along y) and residual vectors (N, 2).
    """

    principal_point_px: tuple[float, float]
    principal_point_sigma_px: tuple[float, float]
    grid_origin_px: tuple[float, float]
    scale_px_per_unit: float
    rotation_deg: float
    ptlens_a: float
    ptlens_b: float
    ptlens_c: float
    r_norm_px: float
    rms_residual_px: float
    max_residual_px: float
    dots_used: int
    dots_detected: int
    image_width_px: int
    image_height_px: int
    centres_px: np.ndarray
    grid_indices: np.ndarray
    residuals_px: np.ndarray

    def distort_radius(self, r_px: np.ndarray) -> np.ndarray:
        """Distorted radius (px) of an undistorted radius (px) about the principal point."""
        return ptlens_radius(np.asarray(r_px, float), a=self.ptlens_a, b=self.ptlens_b, c=self.ptlens_c,
                             r_norm=self.r_norm_px)  # fmt: skip


def ptlens_radius(r: np.ndarray, *, a: float, b: float, c: float, r_norm: float) -> np.ndarray:
    """``Rd = Ru·(a·ρ³ + b·ρ² + c·ρ + 1 − a − b − c)`` with ρ = Ru / r_norm, radii in the unit of ``r_norm``."""
    rho = np.asarray(r, dtype=np.float64) / r_norm
    return r * (a * rho**3 + b * rho**2 + c * rho + 1.0 - a - b - c)


# --------------------------------------------------------------------------------------------- detection
def _bin_cfa(raw: np.ndarray, black_level_dn: float) -> np.ndarray:
    h, w = raw.shape
    if h % 2 or w % 2:
        raise MeasurementError(f"CFA frame of shape {raw.shape}: expected even sides")
    f = raw.astype(np.float32) - np.float32(black_level_dn)
    return f[0::2, 0::2] + f[0::2, 1::2] + f[1::2, 0::2] + f[1::2, 1::2]


def _background(img: np.ndarray, block: int) -> np.ndarray:
    h, w = img.shape
    nby, nbx = max(1, h // block), max(1, w // block)
    cropped = img[: nby * block, : nbx * block].reshape(nby, block, nbx, block).transpose(0, 2, 1, 3)
    level = np.percentile(cropped.reshape(nby, nbx, -1), 90, axis=2).astype(np.float32)
    return cv2.resize(level, (w, h), interpolation=cv2.INTER_LINEAR)


def detect_dots(
    image: np.ndarray,
    *,
    cfa: bool = False,
    black_level_dn: float = 0.0,
    background_block_px: int | None = None,
    min_area_px: float = 12.0,
) -> DotDetection:
    """Find dark dots and their sub-pixel centres.

    Parameters
    ----------
    image : ndarray, shape (H, W)
        Grey frame, or a CFA mosaic with ``cfa=True`` (binned 2×2 for detection; centres in read-out pixels).
    black_level_dn : float
        Subtracted before detection (DN).
    background_block_px : int, optional
        Block for the background estimate, in (binned) pixels; default 1/16 of the short side. It must hold
        mostly background: larger than a dot's diameter.
    min_area_px : float
        Smallest blob kept, in (binned) pixels.

    Returns
    -------
    DotDetection

    Raises
    ------
    MeasurementError
        Not a 2-D frame, an unlit frame, or fewer than 12 dots found.
    """
    if image.ndim != 2:
        raise MeasurementError(f"dot grid: a 2-D frame, got shape {image.shape}")
    height, width = image.shape
    img = _bin_cfa(image, black_level_dn) if cfa else image.astype(np.float32) - np.float32(black_level_dn)
    block = background_block_px or max(8, min(img.shape) // 16)
    bg = _background(img, block)
    if not np.isfinite(bg).all() or bg.min() <= 0:
        raise MeasurementError("dot grid: background at or below black in some block: expected a lit chart")
    ratio = img / bg
    dark = float(np.percentile(ratio, 2))
    threshold = 0.5 * (1.0 + dark)
    _, _, stats, _ = cv2.connectedComponentsWithStats((ratio < threshold).astype(np.uint8), connectivity=8)
    x0, y0, bw, bh, area = (stats[1:, k] for k in range(5))
    keep = (x0 > 0) & (y0 > 0) & (x0 + bw < img.shape[1]) & (y0 + bh < img.shape[0]) & (area >= min_area_px)
    keep &= area >= 0.5 * bw * bh  # a disc fills π/4 of its box; reject strokes and merged blobs
    if keep.sum() >= 3:
        median = np.median(area[keep])
        keep &= (area > 0.5 * median) & (area < 1.8 * median)
    darkness = 1.0 - ratio
    centres: list[tuple[float, float]] = []
    areas: list[float] = []
    for k in np.flatnonzero(keep):
        gx, gy = int(bw[k]) // 4 + 2, int(bh[k]) // 4 + 2
        xa, xb = max(0, x0[k] - gx), min(img.shape[1], x0[k] + bw[k] + gx)
        ya, yb = max(0, y0[k] - gy), min(img.shape[0], y0[k] + bh[k] + gy)
        window = darkness[ya:yb, xa:xb]
        total = float(window.sum())
        if total <= 0:
            continue
        cy = float(window.sum(axis=1) @ np.arange(ya, yb)) / total
        cx = float(window.sum(axis=0) @ np.arange(xa, xb)) / total
        centres.append((cx, cy))
        areas.append(float(area[k]))
    pts = np.array(centres, dtype=np.float64).reshape(-1, 2)
    if cfa:
        pts = 2.0 * pts + 0.5  # binned pixel (i, j) covers read-out pixels 2i..2i+1: its centre is 2i + 0.5
    if len(pts) < _MIN_DOTS:
        raise MeasurementError(f"dot grid: {len(pts)} dots found, expected at least {_MIN_DOTS}")
    return DotDetection(pts, np.array(areas) * (4.0 if cfa else 1.0), width, height)


# --------------------------------------------------------------------------------------------- fitting
def _rotation(theta: float) -> np.ndarray:
    c, s = math.cos(theta), math.sin(theta)
    return np.array([[c, -s], [s, c]])


def _model(params: np.ndarray, grid: np.ndarray, r_norm: float, separate: bool, terms: str) -> np.ndarray:
    cx, cy, scale, theta = params[:4]
    coeffs = dict.fromkeys("abc", 0.0)
    rest = params[4:]
    if separate:
        ox, oy = rest[:2]
        rest = rest[2:]
    else:
        ox, oy = cx, cy
    for name, value in zip(terms, rest, strict=True):
        coeffs[name] = value
    u = np.array([ox, oy]) + scale * grid @ _rotation(theta).T
    rel = u - np.array([cx, cy])
    r = np.hypot(rel[:, 0], rel[:, 1])
    factor = np.where(r > 0, ptlens_radius(r, r_norm=r_norm, **coeffs) / np.where(r > 0, r, 1.0), 1.0)
    return np.array([cx, cy]) + rel * factor[:, None]


def _lattice(pts: np.ndarray) -> tuple[float, float]:
    """Pitch (px) and rotation (rad, in [−45°, 45°)) of a near-square lattice from nearest-neighbour vectors."""
    tree = cKDTree(pts)
    dist, idx = tree.query(pts, k=5)
    pitch = float(np.median(dist[:, 1]))
    vec = pts[idx[:, 1:]] - pts[:, None, :]
    length = np.hypot(vec[..., 0], vec[..., 1])
    ok = np.abs(length - pitch) < 0.25 * pitch
    angles = np.arctan2(vec[..., 1][ok], vec[..., 0][ok])
    theta = float(np.angle(np.mean(np.exp(4j * angles))) / 4.0)
    return pitch, theta


def fit_dot_grid(
    detection: DotDetection,
    *,
    pitch: float,
    centre_guess_px: tuple[float, float] | None = None,
    separate_centre: bool = False,
    terms: str = "abc",
    max_match_px: float | None = None,
) -> DotGridFit:
    """Label detected dots with grid indices and fit principal point, scale, rotation and ptlens distortion.

    Parameters
    ----------
    detection : DotDetection
        From :func:`detect_dots`.
    pitch : float
        Grid pitch of the chart, normalised image units (``ChartSpec.dots.pitch``).
    centre_guess_px : (float, float), optional
        Where the chart origin is expected; default the frame centre. The dot nearest to it is labelled (0, 0),
        so the guess must be within half a pitch of the true origin image.
    separate_centre : bool
        Fit the distortion centre apart from the chart origin (9 instead of 7 parameters).
    terms : str
        Which ptlens coefficients to fit, a subset of "abc" (the others are 0).
    max_match_px : float, optional
        Largest distance between a dot and its predicted node to label it; default 0.3 pitch.

    Returns
    -------
    DotGridFit

    Raises
    ------
    MeasurementError
        Too few dots labelled or a fit that does not converge.
    """
    if not terms or set(terms) - set("abc") or len(set(terms)) != len(terms):
        raise ValueError(f"terms must be a non-empty subset of 'abc', got {terms!r}")
    pts = detection.centres_px
    width, height = detection.image_width_px, detection.image_height_px
    r_norm = min(width, height) / 2.0
    guess = np.array(centre_guess_px if centre_guess_px is not None else ((width - 1) / 2, (height - 1) / 2))
    pitch_px, theta = _lattice(pts)
    origin = pts[np.argmin(np.hypot(*(pts - guess).T))]
    match_px = max_match_px if max_match_px is not None else 0.3 * pitch_px

    # First labels from the lattice alone, near the origin where distortion cannot shift a dot by half a pitch.
    local = (pts - origin) @ _rotation(theta) / pitch_px
    near = np.hypot(local[:, 0], local[:, 1]) <= 4.5
    labels = np.full((len(pts), 2), np.iinfo(np.int64).min, dtype=np.int64)
    labels[near] = np.round(local[near]).astype(np.int64)
    n_coef = len(terms)
    params = np.concatenate([[origin[0], origin[1], pitch_px / pitch, theta], [0.0] * (2 if separate_centre else 0)])
    if separate_centre:
        params[4:6] = origin
    params = np.concatenate([params, np.zeros(n_coef)])

    used = near
    for _ in range(8):
        if used.sum() < _MIN_DOTS:
            raise MeasurementError(f"dot grid: {int(used.sum())} dots labelled, expected at least {_MIN_DOTS}")
        grid = labels[used] * pitch

        def residual(p: np.ndarray, grid: np.ndarray = grid, meas: np.ndarray = pts[used]) -> np.ndarray:
            return (_model(p, grid, r_norm, separate_centre, terms) - meas).ravel()

        sol = least_squares(residual, params, method="lm", x_scale="jac")
        if not sol.success:
            raise MeasurementError(f"dot grid: fit did not converge ({sol.message})")
        params = sol.x
        # Re-label every dot against the nodes the current model predicts around it.
        span = int(np.ceil(np.hypot(width, height) / (params[2] * pitch))) + 1
        ii, jj = np.meshgrid(np.arange(-span, span + 1), np.arange(-span, span + 1), indexing="ij")
        nodes = np.column_stack([ii.ravel(), jj.ravel()])
        predicted = _model(params, nodes * pitch, r_norm, separate_centre, terms)
        dist, nearest = cKDTree(predicted).query(pts)
        new_labels = nodes[nearest]
        new_used = dist <= match_px
        resid = np.hypot(*(residual(params).reshape(-1, 2)).T)
        if np.array_equal(new_used, used) and np.array_equal(new_labels[used], labels[used]):
            # Converged labelling: drop gross outliers (a speck mistaken for a dot) once, then stop.
            rms = float(np.sqrt(np.mean(resid**2)))
            bad = resid > max(5 * rms, 0.5)
            if not bad.any():
                break
            idx = np.flatnonzero(used)[bad]
            used = used.copy()
            used[idx] = False
            match_px = min(match_px, float(resid[~bad].max()) * 5 + 0.5)
            continue
        labels, used = new_labels, new_used

    final = _model(params, labels[used] * pitch, r_norm, separate_centre, terms) - pts[used]
    dist = np.hypot(final[:, 0], final[:, 1])
    sigma = _centre_sigma(sol, len(final) * 2)
    coeffs = dict.fromkeys("abc", 0.0)
    offset = 6 if separate_centre else 4
    for name, value in zip(terms, params[offset:], strict=True):
        coeffs[name] = float(value)
    ox, oy = (params[4], params[5]) if separate_centre else (params[0], params[1])
    return DotGridFit(
        principal_point_px=(float(params[0]), float(params[1])),
        principal_point_sigma_px=sigma,
        grid_origin_px=(float(ox), float(oy)),
        scale_px_per_unit=float(params[2]),
        rotation_deg=math.degrees(float(params[3])),
        ptlens_a=coeffs["a"],
        ptlens_b=coeffs["b"],
        ptlens_c=coeffs["c"],
        r_norm_px=r_norm,
        rms_residual_px=float(np.sqrt(np.mean(dist**2))),
        max_residual_px=float(dist.max()),
        dots_used=int(used.sum()),
        dots_detected=len(pts),
        image_width_px=width,
        image_height_px=height,
        centres_px=pts[used],
        grid_indices=labels[used],
        residuals_px=final,
    )


def _centre_sigma(sol: object, n_obs: int) -> tuple[float, float]:
    jac = sol.jac  # type: ignore[attr-defined]
    dof = max(n_obs - jac.shape[1], 1)
    s2 = float(np.sum(sol.fun**2)) / dof  # type: ignore[attr-defined]
    try:
        cov = np.linalg.inv(jac.T @ jac) * s2
    except np.linalg.LinAlgError:
        return (math.inf, math.inf)
    return (float(math.sqrt(max(cov[0, 0], 0.0))), float(math.sqrt(max(cov[1, 1], 0.0))))
