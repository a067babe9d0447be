"""Per-Bayer-channel lens-shading gain maps from a flat-field raw frame, and their residual after correction.

Method. Each CFA channel (R, Gr, Gb, B) of the black-subtracted flat field is reduced to block means, and a
2-D Legendre polynomial of total degree ``degree`` (default 6) is fitted to them by linear least squares. The
gain map is ``peak / surface`` at the map points, with ``peak`` the surface's maximum over the frame, so every
gain is ≥ 1 (Android's LENS_SHADING_MAP convention) and each channel keeps its own level (white balance is not
the shading map's job).

Why a polynomial rather than block means on a bicubic grid: the shading we correct is smooth by nature (cos⁴
falloff, the lens's vignetting ``1 + k1 r² + k2 r⁴ + k3 r⁶`` and the chief-ray-angle mismatch ``1 + k r²``,
all even in r about a possibly decentred axis). About any centre those are exactly polynomials of total degree
≤ 6 in (x, y), so the fit has no model error for them, while it averages the photon noise of the whole frame
instead of one block's, and it can be evaluated exactly *at* the map points (block means on a grid would give
area averages, half-blocks at the edges, and need many more pixels per point for the same noise).

References: ISO 17957:2015 (shading measurement on flat fields); DNG 1.4 spec, GainMap opcode; Android
CaptureResult.STATISTICS_LENS_SHADING_MAP (gains ≥ 1, one map per Bayer channel).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.polynomial import legendre

from rig.errors import MeasurementError
from rig.spec.gainmap import apply_opcode_list, gain_maps_for_shading
from rig.spec.profile import BAYER_CHANNELS, BayerChannel, ShadingMaps, cfa_offsets

DEFAULT_MAP_POINTS = (19, 25)
"""(MapPointsV, MapPointsH): a 4:3 grid of 18 × 24 cells. Bilinear interpolation between points is what limits
the correction: on the twin's heavy-vignetting unit (60 % corner falloff) the residual is 0.78 % with 13 × 17
points, 0.38 % with 19 × 25 and 0.22 % with 25 × 33 (4·V·H float32 gains: 7.6 kB of OpcodeList2 at 19 × 25)."""


@dataclass(frozen=True)
class ShadingFit:
    """Fitted shading of one flat field.

    ``maps``: the gain maps (profile-ready). ``fit_rms_pct``: rms of block means about the fitted surface,
    % of the channel's peak (noise + model error). ``peak_signal_dn``: the surface's maximum, DN above black.
    ``falloff_pct``: 100·(1 − min/max) of the fitted surface over the frame.
    """

    maps: ShadingMaps
    fit_rms_pct: dict[BayerChannel, float]
    peak_signal_dn: dict[BayerChannel, float]
    falloff_pct: dict[BayerChannel, float]


@dataclass(frozen=True)
class ShadingResidual:
    """Residual non-uniformity of a (corrected) flat field, per channel.

    ``max_abs_pct``: max over blocks of |1 − block / centre block|, in %. ``blocks``: (rows, cols) of the grid.
    """

    max_abs_pct: dict[BayerChannel, float]
    blocks: tuple[int, int]

    @property
    def worst_pct(self) -> float:
        return max(self.max_abs_pct.values())


def _check_raw(raw: np.ndarray) -> None:
    if raw.ndim != 2 or raw.shape[0] < 8 or raw.shape[1] < 8 or raw.shape[0] % 2 or raw.shape[1] % 2:
        raise MeasurementError(f"flat field of shape {raw.shape}: expected a 2-D CFA frame with even sides ≥ 8")


def _block_means(channel: np.ndarray, blocks: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Means over a (rows, cols) grid of near-equal blocks, with the centre (row, col) of each block."""
    n_rows, n_cols = channel.shape
    br, bc = blocks
    if br > n_rows or bc > n_cols:
        raise MeasurementError(f"{br}×{bc} blocks on a {n_rows}×{n_cols} channel: expected fewer blocks than pixels")
    row_edges = np.linspace(0, n_rows, br + 1).round().astype(np.intp)
    col_edges = np.linspace(0, n_cols, bc + 1).round().astype(np.intp)
    sums = np.add.reduceat(np.add.reduceat(channel, row_edges[:-1], axis=0), col_edges[:-1], axis=1)
    counts = np.outer(np.diff(row_edges), np.diff(col_edges))
    row_centres = (row_edges[:-1] + row_edges[1:] - 1) / 2.0
    col_centres = (col_edges[:-1] + col_edges[1:] - 1) / 2.0
    return sums / counts, row_centres, col_centres


def _channel(raw: np.ndarray, offset: tuple[int, int], black_level_dn: float) -> np.ndarray:
    return raw[offset[0] :: 2, offset[1] :: 2].astype(np.float64) - black_level_dn


def _legendre_terms(degree: int) -> list[tuple[int, int]]:
    return [(i, j) for i in range(degree + 1) for j in range(degree + 1 - i)]


def _design(y: np.ndarray, x: np.ndarray, terms: list[tuple[int, int]], degree: int) -> np.ndarray:
    full = legendre.legvander2d(y, x, [degree, degree])
    return full[:, [i * (degree + 1) + j for i, j in terms]]


def fit_shading(
    raw: np.ndarray,
    *,
    black_level_dn: float,
    white_level_dn: float = 1023,
    cfa_pattern: str = "RGGB",
    binning: int = 1,
    map_points: tuple[int, int] = DEFAULT_MAP_POINTS,
    blocks: tuple[int, int] = (48, 64),
    degree: int = 6,
) -> ShadingFit:
    """Fit per-channel shading gain maps to a flat-field raw frame.

    Parameters
    ----------
    raw : ndarray, shape (H, W)
        CFA mosaic in DN (black level included), a uniformly lit flat field.
    black_level_dn, white_level_dn : float
        Sensor black and white level, DN.
    cfa_pattern : str
        Colours of the top-left 2×2 quad, row by row.
    binning : int
        Binning of the read-out ``raw`` comes from (1: full size): the maps are in normalised sensor coordinates
        and record the sensor's full size, so the phone can embed them in every read-out.
    map_points : (int, int)
        (MapPointsV, MapPointsH) of the gain maps; points span the frame edge to edge.
    blocks : (int, int)
        (rows, cols) of block means per channel the surface is fitted to.
    degree : int
        Total degree of the 2-D Legendre polynomial (even shading up to r⁶ needs 6).

    Returns
    -------
    ShadingFit
        Gain maps (≥ 1, relative DNG coordinates) and fit diagnostics.

    Raises
    ------
    MeasurementError
        The frame is not a CFA frame, a channel is dark (peak < 20 DN above black) or clipped (any block mean
        within 2 % of the white level): no shading can be measured from it.
    """
    _check_raw(raw)
    height, width = raw.shape
    terms = _legendre_terms(degree)
    v_pts = np.linspace(0.0, 1.0, map_points[0]) if map_points[0] > 1 else np.zeros(1)
    h_pts = np.linspace(0.0, 1.0, map_points[1]) if map_points[1] > 1 else np.zeros(1)
    # A fine evaluation grid over pixel centres to find the surface's true maximum and minimum.
    fine_v = (np.arange(0.5, 129, 1.0) / 129).clip(0.5 / height, 1 - 0.5 / height)
    fine_h = (np.arange(0.5, 173, 1.0) / 173).clip(0.5 / width, 1 - 0.5 / width)
    gains = np.empty((4, v_pts.size, h_pts.size))
    rms: dict[BayerChannel, float] = {}
    peaks: dict[BayerChannel, float] = {}
    falloff: dict[BayerChannel, float] = {}
    for k, (name, offset) in enumerate(cfa_offsets(cfa_pattern).items()):
        means, rc, cc = _block_means(_channel(raw, offset, black_level_dn), blocks)
        if means.max() > 0.98 * (white_level_dn - black_level_dn):
            raise MeasurementError(
                f"flat field {name} channel reaches {means.max() + black_level_dn:.0f} DN, near white "
                f"{white_level_dn:.0f}: expected an unclipped exposure"
            )
        # relative DNG coordinates of block centres, mapped to Legendre's [-1, 1]
        rel_v = (2 * rc + offset[0] + 0.5) / height
        rel_h = (2 * cc + offset[1] + 0.5) / width
        yy, xx = np.meshgrid(2 * rel_v - 1, 2 * rel_h - 1, indexing="ij")
        a = _design(yy.ravel(), xx.ravel(), terms, degree)
        coef, *_ = np.linalg.lstsq(a, means.ravel(), rcond=None)
        fitted = a @ coef
        gy, gx = np.meshgrid(2 * fine_v - 1, 2 * fine_h - 1, indexing="ij")
        fine = _design(gy.ravel(), gx.ravel(), terms, degree) @ coef
        my, mx = np.meshgrid(2 * v_pts - 1, 2 * h_pts - 1, indexing="ij")
        at_points = (_design(my.ravel(), mx.ravel(), terms, degree) @ coef).reshape(v_pts.size, h_pts.size)
        peak = float(max(fine.max(), at_points.max()))
        if peak < 20 or at_points.min() <= 0.01 * peak:
            raise MeasurementError(
                f"flat field {name} channel peaks at {peak:.1f} DN above black (min {at_points.min():.1f}): "
                "expected a lit, unvignetted-to-black flat field"
            )
        gains[k] = peak / at_points
        rms[name] = float(100 * np.sqrt(np.mean((means.ravel() - fitted) ** 2)) / peak)
        peaks[name] = peak
        falloff[name] = float(100 * (1 - fine.min() / peak))
    maps = ShadingMaps.from_array(
        gains, image_width_px=width, image_height_px=height, binning=binning, cfa_pattern=cfa_pattern
    )
    return ShadingFit(maps=maps, fit_rms_pct=rms, peak_signal_dn=peaks, falloff_pct=falloff)


def apply_shading(raw: np.ndarray, maps: ShadingMaps, *, black_level_dn: float) -> np.ndarray:
    """Black-subtract a CFA frame and multiply in the gain maps, through the DNG GainMap code path.

    Returns float64 linear values above black (DN), shading-corrected.
    """
    _check_raw(raw)
    height, width = raw.shape
    ops = gain_maps_for_shading(maps, width_px=width, height_px=height)
    return apply_opcode_list(raw.astype(np.float64) - black_level_dn, ops)


def residual_shading(
    linear: np.ndarray,
    *,
    cfa_pattern: str = "RGGB",
    blocks: tuple[int, int] = (11, 15),
) -> ShadingResidual:
    """Residual shading of a flat field: per channel, max |1 − block mean / centre block mean| in %.

    Parameters
    ----------
    linear : ndarray, shape (H, W)
        CFA frame, black-subtracted (e.g. from :func:`apply_shading`).
    blocks : (int, int)
        Odd (rows, cols) so a centre block exists; ISO 17957 uses 11 × 11, 11 × 15 keeps blocks square on 4:3.

    Raises
    ------
    MeasurementError
        Even block counts, or a centre block at or below zero.
    """
    _check_raw(linear)
    if blocks[0] % 2 == 0 or blocks[1] % 2 == 0:
        raise MeasurementError(f"residual shading blocks {blocks}: expected odd counts (a centre block)")
    out: dict[BayerChannel, float] = {}
    for name, offset in cfa_offsets(cfa_pattern).items():
        means, _, _ = _block_means(_channel(linear, offset, 0.0), blocks)
        centre = means[blocks[0] // 2, blocks[1] // 2]
        if centre <= 0:
            raise MeasurementError(f"residual shading: {name} centre block mean {centre:.2f} DN, expected > 0")
        out[name] = float(100 * np.abs(1 - means / centre).max())
    return ShadingResidual(max_abs_pct={n: out[n] for n in BAYER_CHANNELS}, blocks=blocks)
