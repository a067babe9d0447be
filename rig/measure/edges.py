"""Find the slanted edges of an SFR chart in a frame, by shape, and measure every one of them.

Any chart made of dark polygons with straight sides on a lighter ground is found: the bench's own chart
(``fixtures/charts/sfr.toml``: squares at 4:1, rotated 5°), an ISO 12233:2023 e-SFR layout of slanted squares, an
SFRplus- or MTF-Mapper-style grid of squares and bars, a Burns-style single slanted square, seen in perspective.
Nothing assumes the chart's layout, scale or pose.

Detection works on a small, shading-flattened copy of the frame: the background is estimated by a morphological
closing that erases anything as small as a target, the frame is divided by it (vignetting and shading do not move
the threshold), and thresholded half-way between the background (1) and the darkest targets (their level is
measured, so a 4:1 chart and a black-on-white one are cut alike). Every blob whose convex hull reduces to four
corners (a quadrilateral: a square or a bar, in perspective) and which fills that quadrilateral is a target;
each of its sides is one :class:`EdgeRoi`.

Each ROI runs along the middle 60 % of its side (clear of the corners) and grows across the edge, on both sides
symmetrically, until it would take in another gradient (a neighbouring target, a patch, text, the frame border)
or reaches 35 % of the side: the SFR then sees one edge between two flat fields and nothing else.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import cv2
import numpy as np

from rig.errors import MeasurementError
from rig.measure.imageio import bayer_mean
from rig.measure.sfr import EdgeOrientation, SfrMethod, SfrResult, slanted_edge_sfr

_DETECT_LONG_SIDE_PX = 1100  # detection runs on a copy about this wide: targets are still ≥ 40 px there
_MAX_DARK_LEVEL = 0.7  # targets darker than 70 % of their ground (4:1 charts sit at 0.25, black-on-white at 0.05)
_MIN_SIDE = 0.025  # target side, half-diagonal units (the bench chart's is 0.08)
_MAX_SIDE = 0.25
_MAX_LARGE_SIDE = 0.7  # the second pass: a single large target (Burns' SFR/OECF chart) up to this side
_MIN_FILL = 0.85  # blob area / its quadrilateral's area
_MAX_ASPECT = 8.0  # longest / shortest side: squares and bars, not lines
_CORNER_TOLERANCE = 0.04  # polygon approximation tolerance, fraction of the hull's perimeter
_MIN_BLOB_PX = 9.0  # dark blobs smaller than this (detection px) are noise, not neighbours
_NEIGHBOUR_GRADIENT = 0.25  # a gradient above this fraction of the edge's own is another structure
_ALONG = 0.6  # ROI length along the edge, fraction of the side
_ACROSS = 0.7  # widest ROI across the edge, fraction of the side
_ACROSS_MIN = 0.2  # narrowest ROI across the edge (fraction of the side) worth measuring
CENTER_MAX_R = 0.2
MID_MAX_R = 0.6


class Polarity(StrEnum):
    """Direction of the step along +x (vertical edge) or +y (horizontal edge)."""

    DARK_TO_LIGHT = "dark_to_light"
    LIGHT_TO_DARK = "light_to_dark"


class Zone(StrEnum):
    """Field zones: centre r < 0.2, mid 0.2 ≤ r < 0.6, corner r ≥ 0.6 (r = 1 at the half diagonal)."""

    CENTER = "center"
    MID = "mid"
    CORNER = "corner"


def zone_of(field_r: float) -> Zone:
    if field_r < CENTER_MAX_R:
        return Zone.CENTER
    return Zone.MID if field_r < MID_MAX_R else Zone.CORNER


@dataclass(frozen=True)
class EdgeRoi:
    """One slanted edge of the chart.

    Attributes
    ----------
    x, y, w, h
        ROI in frame pixels (top-left corner, width, height); even numbers for a raw frame so the CFA phase
        of the ROI equals the frame's.
    orientation
        Vertical or horizontal edge (which way it runs).
    polarity
        The step's direction along +x (vertical) or +y (horizontal).
    centre_x_px, centre_y_px
        Midpoint of the edge in frame pixels (pixel centres at integers).
    field_r
        Image height of the midpoint: distance from the frame centre over the frame's half diagonal.
    azimuth_deg
        Direction of the midpoint from the frame centre, degrees from +x towards +y (down), −180…180.
    square
        Index of the chart square (blob) the edge belongs to, in detection order.
    side_px
        That square's side length in frame pixels.
    """

    x: int
    y: int
    w: int
    h: int
    orientation: EdgeOrientation
    polarity: Polarity
    centre_x_px: float
    centre_y_px: float
    field_r: float
    azimuth_deg: float
    square: int
    side_px: float

    @property
    def zone(self) -> Zone:
        return zone_of(self.field_r)

    def crop(self, image: np.ndarray) -> np.ndarray:
        return image[self.y : self.y + self.h, self.x : self.x + self.w]


@dataclass(frozen=True)
class ChartEdge:
    """An edge and its SFR, or why it could not be measured (``error``)."""

    roi: EdgeRoi
    sfr: SfrResult | None
    error: str | None = None


@dataclass(frozen=True)
class ZoneSummary:
    zone: Zone
    edges: int
    mtf50_median_cy_px: float
    mtf50_min_cy_px: float
    mtf50_median_lp_mm: float | None


@dataclass(frozen=True)
class ChartResult:
    """SFR of every edge found, with per-zone summaries (NaN when a zone has no measured edge)."""

    edges: tuple[ChartEdge, ...]
    zones: dict[Zone, ZoneSummary] = field(default_factory=dict)
    width_px: int = 0
    height_px: int = 0

    @property
    def measured(self) -> tuple[ChartEdge, ...]:
        return tuple(e for e in self.edges if e.sfr is not None)


def find_edges(
    image: np.ndarray,
    *,
    cfa_pattern: str | None = None,
    black_level: float = 0.0,
) -> list[EdgeRoi]:
    """Find every slanted edge of the chart targets (dark quadrilaterals) in a frame.

    Parameters
    ----------
    image
        The whole frame: gray, or a raw Bayer mosaic when ``cfa_pattern`` is given.
    cfa_pattern
        CFA pattern of a raw frame (the ROIs then start on even pixels).
    black_level
        DN of black, subtracted before the shading is flattened.

    Returns
    -------
    list[EdgeRoi]
        Sorted by field radius, then azimuth. Edges without room for a clean ROI are dropped.

    Raises
    ------
    MeasurementError
        The frame shows no target at all (no chart, no light, a blank frame).
    """
    frame = np.asarray(image)
    if frame.ndim != 2:
        raise MeasurementError(f"edge detection needs a 2-D frame, got shape {frame.shape}")
    height, width = frame.shape
    work = bayer_mean(frame) if cfa_pattern else frame.astype(np.float32)
    scale = 2.0 if cfa_pattern else 1.0
    k = max(1, round(max(work.shape) / _DETECT_LONG_SIDE_PX))
    if k > 1:
        work = cv2.resize(work, (work.shape[1] // k, work.shape[0] // k), interpolation=cv2.INTER_AREA)
        scale *= k
    work = np.maximum(work - np.float32(black_level), 0.0)
    half_diag = 0.5 * math.hypot(*work.shape)
    # Two passes: chart-sized targets against a background that follows the shading closely, then targets too
    # large for that (a Burns-style single square) against a coarser one. Each target keeps its own pass's
    # flattened frame, gradients and blob labels for the ROI's neighbour check.
    passes = []
    for min_side, max_side in ((_MIN_SIDE, _MAX_SIDE), (_MAX_SIDE, _MAX_LARGE_SIDE)):
        ratio = _flattened(work, half_diag, max_side)
        quads, labels = _find_quads(ratio, half_diag, min_side, max_side)
        if quads:
            passes.append((quads, labels, _gradient(ratio)))
    if not passes:
        raise MeasurementError("no chart square or bar found in the frame (is an SFR chart in view and lit?)")

    full_half_diag = 0.5 * math.hypot(width, height)
    cx0, cy0 = (width - 1) / 2.0, (height - 1) / 2.0
    step = 2 if cfa_pattern else 1
    rois: list[EdgeRoi] = []
    targets = [(corners, label, labels, structure) for quads, labels, structure in passes for corners, label in quads]
    for index, (corners, label, labels, structure) in enumerate(targets):
        centre = corners.mean(axis=0)
        for i in range(4):
            p0, p1 = corners[i], corners[(i + 1) % 4]
            side = float(np.linalg.norm(p1 - p0))
            mid = 0.5 * (p0 + p1)
            normal = np.array([p1[1] - p0[1], p0[0] - p1[0]]) / side
            if np.dot(normal, mid - centre) < 0:
                normal = -normal
            vertical = abs(normal[0]) >= abs(normal[1])
            along = 0.5 * _ALONG * side * (abs(normal[0]) if vertical else abs(normal[1]))
            across = _clear_half_width(structure, labels, label, p0, p1, mid, vertical, along, side)
            if across is None:
                continue
            # detection pixel i covers frame pixels [i·s, (i+1)·s): its centre is at (i + ½)·s − ½
            mid_f = (mid + 0.5) * scale - 0.5
            w, h = (2 * across * scale, 2 * along * scale) if vertical else (2 * along * scale, 2 * across * scale)
            w_i = max(step * 4, math.floor(w / step) * step)
            h_i = max(step * 4, math.floor(h / step) * step)
            x_i = math.ceil((mid_f[0] - w_i / 2) / step) * step
            y_i = math.ceil((mid_f[1] - h_i / 2) / step) * step
            if x_i < 0 or y_i < 0 or x_i + w_i > width or y_i + h_i > height:
                continue
            into_dark = normal[0] < 0 if vertical else normal[1] < 0
            dx, dy = mid_f[0] - cx0, mid_f[1] - cy0
            rois.append(
                EdgeRoi(
                    x=x_i,
                    y=y_i,
                    w=w_i,
                    h=h_i,
                    orientation=EdgeOrientation.VERTICAL if vertical else EdgeOrientation.HORIZONTAL,
                    polarity=Polarity.LIGHT_TO_DARK if into_dark else Polarity.DARK_TO_LIGHT,
                    centre_x_px=float(mid_f[0]),
                    centre_y_px=float(mid_f[1]),
                    field_r=float(math.hypot(dx, dy) / full_half_diag),
                    azimuth_deg=float(math.degrees(math.atan2(dy, dx))),
                    square=index,
                    side_px=float(side * scale),
                )
            )
    rois.sort(key=lambda r: (round(r.field_r, 3), r.azimuth_deg))
    return rois


def _flattened(work: np.ndarray, half_diag: float, max_side: float) -> np.ndarray:
    """The frame over its lit background (1 on the ground, < 1 on targets up to ``max_side`` half-diagonals)."""
    # A closing (dilate, then erode) with a kernel larger than the biggest target erases the targets and leaves
    # the lit background with its shading; blurring it keeps it from following the noise.
    # The background is smooth on the kernel's scale, so it is estimated on a copy reduced until the kernel is
    # ≈ 32 px (a 700-px closing costs 0.1 s at full detection size) and brought back by interpolation.
    reach = 1.6 * max_side * half_diag
    factor = max(1, int(reach // 32))
    rows, cols = work.shape
    small = work if factor == 1 else cv2.resize(work, (cols // factor, rows // factor), interpolation=cv2.INTER_AREA)
    kernel_px = int(2 * round(reach / factor / 2) + 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (kernel_px, kernel_px))
    background = cv2.morphologyEx(small, cv2.MORPH_CLOSE, kernel)
    background = cv2.blur(background, (kernel_px, kernel_px))
    if factor > 1:
        background = cv2.resize(background, (cols, rows), interpolation=cv2.INTER_LINEAR)
    return work / np.maximum(background, 1e-6)


def _find_quads(
    ratio: np.ndarray, half_diag: float, min_side: float, max_side: float
) -> tuple[list[tuple[np.ndarray, int]], np.ndarray]:
    """Dark quadrilaterals: (corners 4×2 in order, label) each, and the label image of every dark blob."""
    # half-way between the ground and the darkest targets (a low percentile, robust to the odd dead pixel)
    dark = float(np.percentile(ratio, 1.0))
    if dark > _MAX_DARK_LEVEL:
        return [], np.zeros(ratio.shape, np.int32)
    threshold = 0.5 * (1.0 + max(dark, 0.0))
    mask = (ratio < threshold).astype(np.uint8)
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)  # every point: line fits
    labels = np.zeros(ratio.shape, np.int32)
    rows, cols = ratio.shape
    found = []
    for number, contour in enumerate(contours, start=1):
        area = cv2.contourArea(contour)
        if area >= _MIN_BLOB_PX:  # a speck of noise that survived the opening is no neighbour
            cv2.drawContours(labels, [contour], -1, number, thickness=cv2.FILLED)
        if area < (min_side * half_diag) ** 2 or area > (max_side * half_diag) ** 2:
            continue
        x, y, bw, bh = cv2.boundingRect(contour)
        if x == 0 or y == 0 or x + bw == cols or y + bh == rows:
            continue  # cut by the frame border: not a whole target
        hull = cv2.convexHull(contour)
        corners = cv2.approxPolyDP(hull, _CORNER_TOLERANCE * cv2.arcLength(hull, True), True).reshape(-1, 2)
        if len(corners) != 4:
            continue  # a disc, a triangle, a cross, a blob of text
        quad_area = cv2.contourArea(corners.astype(np.float32))
        sides = np.linalg.norm(np.roll(corners, -1, axis=0) - corners, axis=1)
        if quad_area <= 0 or area / quad_area < _MIN_FILL or sides.max() / sides.min() > _MAX_ASPECT:
            continue
        found.append((_refine_corners(contour.reshape(-1, 2), corners.astype(np.float64)), number))
    return found, labels


def _refine_corners(contour: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """Corners as intersections of lines fitted to each side's contour points (their middle halves)."""
    lines = []
    for i in range(4):
        p0, p1 = corners[i], corners[(i + 1) % 4]
        u = (p1 - p0) / np.linalg.norm(p1 - p0)
        t = (contour - p0) @ u
        d = (contour - p0) @ np.array([-u[1], u[0]])
        length = float(np.linalg.norm(p1 - p0))
        near = (np.abs(d) < 3.0) & (t > 0.25 * length) & (t < 0.75 * length)
        if near.sum() < 3:
            return corners
        vx, vy, x0, y0 = cv2.fitLine(contour[near].astype(np.float32), cv2.DIST_L2, 0, 0.01, 0.01).ravel()
        lines.append((np.array([x0, y0], np.float64), np.array([vx, vy], np.float64)))
    refined = []
    for i in range(4):
        (a, da), (b, db) = lines[i - 1], lines[i]
        m = np.array([da, -db]).T
        if abs(np.linalg.det(m)) < 1e-6:
            return corners
        s, _ = np.linalg.solve(m, b - a)
        refined.append(a + s * da)
    return np.array(refined)


def _gradient(ratio: np.ndarray) -> np.ndarray:
    """Gradient magnitude of the flattened frame (per detection pixel), lightly smoothed against noise."""
    smooth = cv2.GaussianBlur(ratio.astype(np.float32), (0, 0), 1.0)
    gx = cv2.Sobel(smooth, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(smooth, cv2.CV_32F, 0, 1, ksize=3)
    return np.hypot(gx, gy)


def _clear_half_width(
    gradient: np.ndarray,
    labels: np.ndarray,
    label: int,
    p0: np.ndarray,
    p1: np.ndarray,
    mid: np.ndarray,
    vertical: bool,
    along: float,
    side: float,
) -> float | None:
    """Half-width across the edge (detection px) of the widest ROI that holds only this edge, or None.

    The ROI grows from the edge: every pixel of the candidate rectangle that is off the edge's own band (its
    blur) and carries a gradient above a quarter of the edge's own, or belongs to another target, stops the
    growth just before it.
    """
    rows, cols = gradient.shape
    limit = _ACROSS * side / 2
    lo = np.floor(mid - np.array([limit, along] if vertical else [along, limit])).astype(int)
    hi = np.ceil(mid + np.array([limit, along] if vertical else [along, limit])).astype(int) + 1
    lo = np.maximum(lo, 0)
    hi = np.minimum(hi, [cols, rows])
    if np.any(hi - lo < 3):
        return None
    patch = gradient[lo[1] : hi[1], lo[0] : hi[0]]
    ys, xs = np.mgrid[lo[1] : hi[1], lo[0] : hi[0]]
    u = (p1 - p0) / np.linalg.norm(p1 - p0)
    distance = np.abs((xs - p0[0]) * u[1] - (ys - p0[1]) * u[0])
    # the edge's own band: where its gradient stays above a quarter of its peak, measured across the middle
    profile_d = distance.ravel()
    peak = float(patch.ravel()[profile_d < 1.5].max()) if np.any(profile_d < 1.5) else float(patch.max())
    if peak <= 0:
        return None
    strong = patch > _NEIGHBOUR_GRADIENT * peak
    # the edge's own transition is the ridge of strong gradient through its middle: one connected component
    # (a neighbour's gradient is another; a line fitted to binary corners is too coarse to tell them apart)
    _, ridges = cv2.connectedComponents(strong.astype(np.uint8), connectivity=8)
    centre_ridge = ridges[np.unravel_index(int(np.argmax(np.where(distance < 1.5, patch, -1.0))), patch.shape)]
    own = (ridges == centre_ridge) & (centre_ridge != 0)
    band = max(2.0, _own_band(distance, own))
    blobs = labels[lo[1] : hi[1], lo[0] : hi[0]]
    foreign = (strong & ~own) | ((blobs != 0) & (blobs != label))
    offset = np.abs((xs if vertical else ys) - (mid[0] if vertical else mid[1]))
    # a neighbour's transition is as wide as this edge's own: keep that much (and a pixel) clear of its gradient
    room = float(offset[foreign].min()) - band - 1.0 if foreign.any() else limit
    # the frame border is a neighbour too
    centre_room = (min(mid[0], cols - 1 - mid[0]) if vertical else min(mid[1], rows - 1 - mid[1])) - 1.0
    across = min(room, limit, centre_room)
    return across if across >= max(_ACROSS_MIN * side / 2, 4.0) else None


def _own_band(distance: np.ndarray, strong: np.ndarray) -> float:
    """Distance from the edge line within which strong gradient is the edge's own (its blurred transition)."""
    near = strong & (distance < 12.0)
    if not near.any():
        return 2.0
    # the run of strong pixels starting at the line: the first distance bin (½ px) without any ends it
    bins = np.bincount(np.floor(distance[near] * 2).astype(int))
    empty = np.nonzero(bins == 0)[0]
    return (empty[0] / 2.0 if empty.size else len(bins) / 2.0) + 1.0


def measure_chart(
    image: np.ndarray,
    *,
    cfa_pattern: str | None = None,
    channel: str = "G",
    black_level: float = 0.0,
    white_level: float | None = None,
    pixel_pitch_um: float | None = None,
    npol: int | None = None,
    rois: list[EdgeRoi] | None = None,
    clipped: np.ndarray | None = None,
    method: SfrMethod = SfrMethod.ADAPTIVE,
) -> ChartResult:
    """Find the chart's edges (unless ``rois`` are given) and measure the SFR of each.

    Parameters
    ----------
    image
        The frame, gray or raw Bayer (``cfa_pattern``).
    channel
        CFA channel for raw frames (see :func:`rig.measure.sfr.slanted_edge_sfr`); ``"G"`` uses both greens.
    black_level, white_level, pixel_pitch_um, npol
        Passed to :func:`rig.measure.sfr.slanted_edge_sfr`.
    rois
        Edges found earlier (e.g. on the sharpest frame of a sweep), to measure the same edges in every frame.
    clipped
        Per pixel of the frame, True where the file's samples were clipped (see
        :func:`rig.measure.sfr.slanted_edge_sfr`).
    method
        :class:`rig.measure.sfr.SfrMethod` of every edge's SFR.

    Returns
    -------
    ChartResult
        One :class:`ChartEdge` per ROI (an edge that cannot be measured carries its reason instead of a number)
        and a :class:`ZoneSummary` per zone (median and minimum MTF50 of the edges without a quality flag).
    """
    frame = np.asarray(image)
    if rois is None:
        rois = find_edges(frame, cfa_pattern=cfa_pattern, black_level=black_level)
    edges = []
    for roi in rois:
        try:
            sfr = slanted_edge_sfr(
                roi.crop(frame),
                pixel_pitch_um=pixel_pitch_um,
                npol=npol,
                cfa_pattern=cfa_pattern,
                channel=channel,
                black_level=black_level,
                white_level=white_level,
                orientation=roi.orientation,
                clipped=None if clipped is None else roi.crop(clipped),
                method=method,
            )
            edges.append(ChartEdge(roi, sfr))
        except MeasurementError as exc:
            edges.append(ChartEdge(roi, None, str(exc)))
    zones = {}
    for zone in Zone:
        # a flagged edge is reported with its number, but it does not speak for its zone
        values = [e.sfr.mtf50_cy_px for e in edges if e.sfr is not None and not e.sfr.flags and e.roi.zone is zone]
        values = [v for v in values if math.isfinite(v)]
        median = float(np.median(values)) if values else float("nan")
        zones[zone] = ZoneSummary(
            zone=zone,
            edges=len(values),
            mtf50_median_cy_px=median,
            mtf50_min_cy_px=float(min(values)) if values else float("nan"),
            mtf50_median_lp_mm=median * 1000.0 / pixel_pitch_um if pixel_pitch_um and values else None,
        )
    return ChartResult(tuple(edges), zones, width_px=frame.shape[1], height_px=frame.shape[0])


def edge_crops(frame: np.ndarray, rois: Sequence[EdgeRoi]) -> list[np.ndarray]:
    """Each ROI's pixels of ``frame``, as contiguous copies: all an edge's SFR depends on (with its orientation),
    small enough to hand to another process, and the same memory layout wherever they are measured."""
    return [np.ascontiguousarray(roi.crop(frame)) for roi in rois]


def crops_mtf50(
    crops: Sequence[np.ndarray],
    orientations: Sequence[EdgeOrientation],
    *,
    cfa_pattern: str | None = None,
    channel: str = "G",
    black_level: float = 0.0,
    white_level: float | None = None,
) -> np.ndarray:
    """MTF50 (cy/px) of the slanted edge in each crop (:func:`edge_crops`), measured as
    :func:`measure_chart` measures a chart's edges (ISO 12233 e-SFR,
    :func:`rig.measure.sfr.slanted_edge_sfr`); NaN where an edge gave no finite MTF50. A pure function of its
    arguments: an edge's value does not depend on the others'."""
    if len(crops) != len(orientations):
        raise ValueError(f"{len(crops)} crops but {len(orientations)} orientations")
    row = np.full(len(crops), np.nan)
    for i, (crop, orientation) in enumerate(zip(crops, orientations, strict=True)):
        try:
            sfr = slanted_edge_sfr(
                crop,
                cfa_pattern=cfa_pattern,
                channel=channel,
                black_level=black_level,
                white_level=white_level,
                orientation=orientation,
            )
        except MeasurementError:
            continue  # measure_chart keeps the reason; a sweep's row keeps NaN
        if math.isfinite(sfr.mtf50_cy_px):
            row[i] = sfr.mtf50_cy_px
    return row
