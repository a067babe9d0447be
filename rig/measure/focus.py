"""Through-focus: best focus per chart edge from a rail sweep, then flange offset, tilt and field curvature.

The chart sits at the focal plane of a collimator of focal length f_c; moving it by Δz (mm) along the rail moves
the lens's image by δ = (f_lens/f_c)²·Δz (DESIGN.md §1), *away from the lens* for a rail position above the
station's focus position (``rig.twin.truth`` conventions). An edge is sharpest where the image lies on the
sensor, so the best-focus rail position of an edge at sensor position (x, y) gives the sensor's axial position
there, relative to the nominal image plane:

    s(x, y) = (f_lens/f_c)² · rail*(x, y) · 1000  µm
            = flange_offset + x·tan(tilt_y) + y·tan(tilt_x) − curvature·r²

with x, y from the frame centre (+x right, +y down), ``flange_offset`` > 0 = sensor farther from the lens,
``tilt_y`` > 0 = the +x half farther, ``tilt_x`` > 0 = the +y half farther, ``curvature`` the lens's field
curvature at the half diagonal (r = 1; + = the corner's image lies farther from the lens), r measured from the
optical centre. A plane (+ r²) fitted over the field returns all four.

**One rail convention.** Rail positions here are *relative to the station's focus position* (mm; 0 = the chart at
the collimator's focal plane), as everywhere in rig: the bench's frames and sweeps, ``rig twin capture
--rail-mm``, ``rig measure focus --rail-mm`` and the ``rig:RailFromFocusMm`` a capture carries
(:mod:`rig.spec.capture_state`). No function takes the focus position itself, so absolute (GRBL Z) and relative
positions cannot be mixed: an absolute sweep simply finds no focus near 0 and says so
(best focus not bracketed), instead of a flange offset shifted by the focus position.

Best focus of one edge is the centre of a symmetric model fitted to its sharpness over the whole sweep, never the
best sample: the blur of a defocused lens grows with |δ| (disc diameter |δ|/N) and adds to the focused blur
roughly in quadrature, so ``1/MTF50²`` is close to a parabola in the rail position. We fit
``1/MTF50² = a + b·u + c·u²`` with ``u = (z − z₀)²`` (the u² term absorbs the departure from a pure quadrature
sum; the model stays symmetric about z₀) by weighted least squares with relative (MTF50-proportional) errors,
and take the uncertainty of z₀ from the fit's covariance.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares

from rig.errors import MeasurementError
from rig.measure.edges import EdgeRoi, crops_mtf50, edge_crops, find_edges

ARCMIN_PER_RAD = 180.0 * 60.0 / math.pi
_MIN_POINTS = 6


@dataclass(frozen=True)
class BestFocus:
    """Centre of a symmetric fit to a through-focus curve.

    Attributes
    ----------
    position
        Best-focus position, in the unit and frame of the positions given (mm of rail from the focus position).
    sigma
        Its 1σ uncertainty from the fit (same unit).
    peak_mtf50_cy_px
        The fitted MTF50 at best focus.
    rms_rel
        RMS relative residual of the fit (a measure of noise + model misfit).
    points
        Sweep points used.
    """

    position: float
    sigma: float
    peak_mtf50_cy_px: float
    rms_rel: float
    points: int


@dataclass(frozen=True)
class EdgeFocus:
    """One edge through the sweep: where it sits, its sharpness per frame and its best focus."""

    roi: EdgeRoi
    x_um: float  # edge midpoint on the sensor, from the frame centre (+x right)
    y_um: float  # (+y down)
    rail_mm: np.ndarray  # relative to the station's focus position
    mtf50_cy_px: np.ndarray  # NaN where the edge could not be measured
    best: BestFocus | None
    image_focus_um: float  # s(x, y): image-side focus position, µm (NaN without a best focus)
    image_focus_sigma_um: float  # statistical (fit) 1σ; per-edge systematics (~0.4 µm on the twin) come on top
    error: str | None = None


@dataclass(frozen=True)
class FlangeResult:
    """Sensor alignment from a through-focus sweep (µm on the image side, arcmin).

    Attributes
    ----------
    flange_offset_um
        Sensor position on the axis at the frame centre relative to the lens's nominal image plane; > 0 = the
        sensor sits farther from the lens.
    tilt_x_arcmin, tilt_y_arcmin
        Sensor tilt: ``tilt_x`` > 0 = the +y (lower) half farther from the lens; ``tilt_y`` > 0 = the +x half.
    field_curvature_um
        Focus shift at the half diagonal (r = 1) from the optical centre, + = the corner's image farther from
        the lens (0 when not fitted).
    *_sigma_*
        1σ uncertainties from the weighted fit.
    fit_rms_um
        RMS of the edges' best-focus residuals about the fitted surface.
    edges_used, edges_total
        Edges that entered the final fit (after rejecting outliers) and all edges seen.
    edges
        Per-edge through-focus results.
    """

    flange_offset_um: float
    flange_offset_sigma_um: float
    tilt_x_arcmin: float
    tilt_x_sigma_arcmin: float
    tilt_y_arcmin: float
    tilt_y_sigma_arcmin: float
    field_curvature_um: float
    fit_rms_um: float
    edges_used: int
    edges_total: int
    edges: tuple[EdgeFocus, ...]


def rail_defocus_um_per_mm(*, focal_length_mm: float, collimator_focal_length_mm: float) -> float:
    """Image-side focus shift per mm of chart travel at a collimator: ``(f_lens/f_c)²·1000`` µm/mm."""
    if focal_length_mm <= 0 or collimator_focal_length_mm <= 0:
        raise ValueError("focal lengths must be > 0")
    return (focal_length_mm / collimator_focal_length_mm) ** 2 * 1000.0


def best_focus(positions: np.ndarray, mtf50_cy_px: np.ndarray) -> BestFocus:
    """Best focus of one through-focus curve by a symmetric fit (see the module notes).

    Parameters
    ----------
    positions
        Rail positions of the frames (any length unit; mm on the bench). NaN metrics are ignored.
    mtf50_cy_px
        Sharpness at each position (MTF50, cycles/pixel, > 0).

    Returns
    -------
    BestFocus

    Raises
    ------
    MeasurementError
        Fewer than 6 usable points, or the sharpest point lies at an end of the sweep (best focus not bracketed).
    """
    z = np.asarray(positions, dtype=np.float64)
    m = np.asarray(mtf50_cy_px, dtype=np.float64)
    ok = np.isfinite(z) & np.isfinite(m) & (m > 0)
    z, m = z[ok], m[ok]
    if len(z) < _MIN_POINTS:
        raise MeasurementError(f"through-focus needs ≥ {_MIN_POINTS} measured frames, got {len(z)}")
    order = np.argsort(z)
    z, m = z[order], m[order]
    k = int(np.argmax(m))
    if k == 0 or k == len(z) - 1:
        raise MeasurementError(
            f"best focus is not bracketed: the sharpest frame is at the sweep's end ({z[k]:g}); widen the sweep"
        )
    y = 1.0 / m**2
    span = float(z[-1] - z[0])
    # start: a parabola through the sharpest point and its neighbours
    c2, c1, _ = np.polyfit(z[k - 1 : k + 2], y[k - 1 : k + 2], 2)
    z0 = -c1 / (2 * c2) if c2 > 0 else z[k]
    z0 = float(np.clip(z0, z[k - 1], z[k + 1]))
    b0 = max(float(c2), 1e-12)
    a0 = max(float(y[k] - b0 * (z[k] - z0) ** 2), float(y[k]) * 0.5)
    scale = span / 2.0

    def residuals(p: np.ndarray) -> np.ndarray:
        zc, a, b, c = p
        u = ((z - zc) / scale) ** 2
        return (a + b * u + c * u * u - y) / y  # relative: MTF50 noise is roughly proportional to MTF50

    fit = least_squares(residuals, x0=[z0, a0, b0 * scale**2, 0.0], x_scale=[scale / 10, a0, b0 * scale**2, a0])
    zc, a, b, _ = fit.x
    dof = max(1, len(z) - 4)
    rms = float(np.sqrt(np.sum(fit.fun**2) / dof))
    try:
        cov = np.linalg.inv(fit.jac.T @ fit.jac) * rms**2
        sigma = float(math.sqrt(max(cov[0, 0], 0.0)))
    except np.linalg.LinAlgError:
        sigma = float("inf")
    if not z[0] <= zc <= z[-1] or a <= 0 or b <= 0:
        raise MeasurementError(f"through-focus fit failed (centre {zc:.3g}, curvature {b:.3g}): no clear focus peak")
    return BestFocus(float(zc), sigma, float(1.0 / math.sqrt(a)), rms, len(z))


def sweep_reference_index(rail_mm: Sequence[float] | np.ndarray) -> int:
    """Index of the sweep frame the chart's edges are found on: the one nearest the middle of the rail range."""
    rail = np.asarray(rail_mm, dtype=np.float64)
    return int(np.argmin(np.abs(rail - np.median(rail))))


def edge_mtf50_row(
    frame: np.ndarray,
    rois: list[EdgeRoi],
    *,
    cfa_pattern: str | None = None,
    channel: str = "G",
    black_level: float = 0.0,
    white_level: float | None = None,
) -> np.ndarray:
    """MTF50 (cy/px) of each edge in ``rois`` on one frame of a sweep; NaN where an edge gave no finite MTF50."""
    return crops_mtf50(
        edge_crops(frame, rois),
        [roi.orientation for roi in rois],
        cfa_pattern=cfa_pattern,
        channel=channel,
        black_level=black_level,
        white_level=white_level,
    )


def through_focus(
    frames: Sequence[np.ndarray],
    rail_mm: Sequence[float],
    *,
    pixel_pitch_um: float,
    rail_um_per_mm: float,
    cfa_pattern: str | None = None,
    channel: str = "G",
    black_level: float = 0.0,
    white_level: float | None = None,
    rois: list[EdgeRoi] | None = None,
    mtf50_rows: Sequence[np.ndarray] | None = None,
) -> list[EdgeFocus]:
    """MTF50 of every chart edge in every frame of a sweep, and each edge's best focus.

    Parameters
    ----------
    frames
        The sweep's frames (gray, or raw with ``cfa_pattern``), one per rail position.
    rail_mm
        Rail position of each frame, mm from the station's focus position (the chart at the collimator's focus).
    pixel_pitch_um
        Read-out pixel pitch (µm), to place the edges on the sensor.
    rail_um_per_mm
        Image-side focus shift per mm of rail, :func:`rail_defocus_um_per_mm`.
    rois
        The edges to follow; default: found on the frame nearest the middle of the sweep
        (:func:`sweep_reference_index`).
    mtf50_rows
        Each frame's :func:`edge_mtf50_row` over ``rois`` when the caller measured them already (a bench that
        measures frame k while it takes frame k+1); default: measured here. Either way the same numbers.

    Returns
    -------
    list[EdgeFocus]
        One per edge; an edge without a bracketed focus carries ``error`` and NaN focus.
    """
    if len(frames) != len(rail_mm):
        raise ValueError(f"{len(frames)} frames but {len(rail_mm)} rail positions")
    if len(frames) < _MIN_POINTS:
        raise MeasurementError(f"through-focus needs ≥ {_MIN_POINTS} frames, got {len(frames)}")
    rail = np.asarray(rail_mm, dtype=np.float64)
    if rois is None:
        middle = sweep_reference_index(rail)
        rois = find_edges(frames[middle], cfa_pattern=cfa_pattern, black_level=black_level)
    if mtf50_rows is None:
        mtf50_rows = [
            edge_mtf50_row(frame, rois, cfa_pattern=cfa_pattern, channel=channel, black_level=black_level,
                           white_level=white_level)
            for frame in frames
        ]  # fmt: skip
    if len(mtf50_rows) != len(frames):
        raise ValueError(f"{len(frames)} frames but {len(mtf50_rows)} rows of MTF50")
    table = np.column_stack(mtf50_rows) if rois else np.full((0, len(frames)), np.nan)
    height, width = np.asarray(frames[0]).shape
    out = []
    for i, roi in enumerate(rois):
        x_um = (roi.centre_x_px - (width - 1) / 2.0) * pixel_pitch_um
        y_um = (roi.centre_y_px - (height - 1) / 2.0) * pixel_pitch_um
        try:
            best = best_focus(rail, table[i])
        except MeasurementError as exc:
            out.append(EdgeFocus(roi, x_um, y_um, rail, table[i], None, math.nan, math.nan, str(exc)))
            continue
        s = rail_um_per_mm * best.position
        out.append(EdgeFocus(roi, x_um, y_um, rail, table[i], best, s, rail_um_per_mm * best.sigma))
    return out


def fit_flange(
    edges: Sequence[EdgeFocus],
    *,
    half_diagonal_um: float,
    optical_centre_um: tuple[float, float] = (0.0, 0.0),
    fit_curvature: bool = True,
    reject_sigma: float = 4.0,
) -> FlangeResult:
    """Fit ``s = F + x·tan(tilt_y) + y·tan(tilt_x) − curvature·r²`` to the edges' best-focus positions.

    Parameters
    ----------
    edges
        Per-edge results of :func:`through_focus`.
    half_diagonal_um
        Sensor half diagonal (µm): r = 1 there.
    optical_centre_um
        Where the optical axis meets the sensor, from the frame centre (µm): the centre of the r² term.
    fit_curvature
        Fit the r² term (needs edges at several field heights); False fits a plane.
    reject_sigma
        Edges whose residual exceeds this many robust σ (MAD) are dropped and the fit repeated once.

    Returns
    -------
    FlangeResult

    Raises
    ------
    MeasurementError
        Too few edges with a best focus, or they do not span the field (x and y).
    """
    good = [e for e in edges if e.best is not None and math.isfinite(e.image_focus_um)]
    n_par = 4 if fit_curvature else 3
    if len(good) < n_par + 2:
        raise MeasurementError(f"flange fit needs ≥ {n_par + 2} edges with a best focus, got {len(good)}")
    x = np.array([e.x_um for e in good])
    y = np.array([e.y_um for e in good])
    s = np.array([e.image_focus_um for e in good])
    sig = np.array([max(e.image_focus_sigma_um, 0.05) for e in good])
    if np.ptp(x) < 0.2 * half_diagonal_um or np.ptp(y) < 0.2 * half_diagonal_um:
        raise MeasurementError("flange fit needs edges spread over the field in x and y (≥ 0.2 half diagonal)")
    r2 = ((x - optical_centre_um[0]) ** 2 + (y - optical_centre_um[1]) ** 2) / half_diagonal_um**2
    columns = [np.ones_like(x), x, y] + ([-r2] if fit_curvature else [])
    design = np.stack(columns, axis=1)
    keep = np.ones(len(good), dtype=bool)
    for _ in range(2):
        w = 1.0 / sig[keep]
        coef, *_ = np.linalg.lstsq(design[keep] * w[:, None], s[keep] * w, rcond=None)
        resid = s - design @ coef
        mad = 1.4826 * float(np.median(np.abs(resid[keep] - np.median(resid[keep]))))
        new_keep = np.abs(resid) <= max(reject_sigma * mad, 3.0 * float(np.median(sig)))
        if new_keep.sum() < n_par + 2 or np.array_equal(new_keep, keep):
            break
        keep = new_keep
    w = 1.0 / sig[keep]
    a = design[keep] * w[:, None]
    coef, *_ = np.linalg.lstsq(a, s[keep] * w, rcond=None)
    resid = s[keep] - design[keep] @ coef
    dof = max(1, int(keep.sum()) - n_par)
    chi2 = float(np.sum((resid * w) ** 2) / dof)
    # scale the covariance by the observed scatter (model misfit shows up as extra scatter)
    cov = np.linalg.inv(a.T @ a) * max(chi2, 1.0)
    flange = float(coef[0])
    tilt_y = math.atan(coef[1]) * ARCMIN_PER_RAD
    tilt_x = math.atan(coef[2]) * ARCMIN_PER_RAD
    return FlangeResult(
        flange_offset_um=flange,
        flange_offset_sigma_um=float(math.sqrt(cov[0, 0])),
        tilt_x_arcmin=tilt_x,
        tilt_x_sigma_arcmin=float(math.sqrt(cov[2, 2]) * ARCMIN_PER_RAD),
        tilt_y_arcmin=tilt_y,
        tilt_y_sigma_arcmin=float(math.sqrt(cov[1, 1]) * ARCMIN_PER_RAD),
        field_curvature_um=float(coef[3]) if fit_curvature else 0.0,
        fit_rms_um=float(np.sqrt(np.mean(resid**2))),
        edges_used=int(keep.sum()),
        edges_total=len(edges),
        edges=tuple(edges),
    )


def measure_flange(
    frames: Sequence[np.ndarray],
    rail_mm: Sequence[float],
    *,
    focal_length_mm: float,
    collimator_focal_length_mm: float,
    pixel_pitch_um: float,
    cfa_pattern: str | None = None,
    channel: str = "G",
    black_level: float = 0.0,
    white_level: float | None = None,
    optical_centre_um: tuple[float, float] = (0.0, 0.0),
    fit_curvature: bool = True,
    rois: list[EdgeRoi] | None = None,
    mtf50_rows: Sequence[np.ndarray] | None = None,
) -> FlangeResult:
    """Through-focus sweep → flange offset, tilt and field curvature (:func:`through_focus` + :func:`fit_flange`).

    ``rail_mm`` is relative to the station's focus position (mm); ``pixel_pitch_um`` is the read-out pitch of the
    frames; the half diagonal follows from the frame size.
    ``rois`` and ``mtf50_rows``: as :func:`through_focus` takes them (edges and per-frame MTF50 already measured).
    """
    k = rail_defocus_um_per_mm(focal_length_mm=focal_length_mm, collimator_focal_length_mm=collimator_focal_length_mm)
    edges = through_focus(
        frames,
        rail_mm,
        pixel_pitch_um=pixel_pitch_um,
        rail_um_per_mm=k,
        cfa_pattern=cfa_pattern,
        channel=channel,
        black_level=black_level,
        white_level=white_level,
        rois=rois,
        mtf50_rows=mtf50_rows,
    )
    height, width = np.asarray(frames[0]).shape
    half_diag = 0.5 * math.hypot(width, height) * pixel_pitch_um
    return fit_flange(
        edges, half_diagonal_um=half_diag, optical_centre_um=optical_centre_um, fit_curvature=fit_curvature
    )
