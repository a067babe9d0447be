"""Find the slanted edges of the bench's SFR chart in a frame, and measure every one of them.

The chart (``fixtures/charts/sfr.toml``) is dark squares at 4:1 contrast, rotated 5°, spread over the field.
Detection works on a small, shading-flattened copy of the frame: the background is estimated by a morphological
closing that erases anything as small as a square, the frame is divided by it (so vignetting and the sensor's
shading do not move the threshold), thresholded half-way to the squares' 1/4 level, and every convex blob that
fills its minimum-area rectangle is a square. Each side of a square becomes one :class:`EdgeRoi`, placed on the
middle 60 % of the side (clear of the corners) and reaching 35 % of a side across the edge on either side
(at least 20 % where the frame's border is closer).

Nothing here assumes where the squares are, their scale or the chart's rotation: a chart rotated a few degrees,
scaled ±10 % or shifted is found the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum

import cv2
import numpy as np

from rig.errors import MeasurementError
from rig.measure.imageio import bayer_mean
from rig.measure.sfr import EdgeOrientation, SfrMethod, SfrResult, slanted_edge_sfr

_DETECT_LONG_SIDE_PX = 1100  # detection runs on a copy about this wide: squares are still ≥ 40 px there
_THRESHOLD = 0.6  # of the local background: between the background (1) and the 4:1 squares (0.25)
_MIN_SIDE = 0.025  # square side, half-diagonal units (the chart's is 0.08)
_MAX_SIDE = 0.25
_MIN_FILL = 0.85  # blob area / minimum-area rectangle area
_MAX_ASPECT = 1.35
_ALONG = 0.6  # ROI length along the edge, fraction of the side
_ACROSS = 0.7  # ROI width across the edge, fraction of the side
_ACROSS_MIN = 0.4  # near the frame border the ROI may narrow to this (still ≥ 0.2 side of flat field each side)
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
    """Find every slanted edge of the SFR chart in a frame.

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
        Sorted by field radius, then azimuth. Edges whose ROI would leave the frame are dropped.

    Raises
    ------
    MeasurementError
        The frame shows no square at all (wrong chart, no light, a blank frame).
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
    squares = _find_squares(work, half_diag)
    if not squares:
        raise MeasurementError("no chart square found in the frame (is the SFR chart in view and lit?)")

    full_half_diag = 0.5 * math.hypot(width, height)
    cx0, cy0 = (width - 1) / 2.0, (height - 1) / 2.0
    step = 2 if cfa_pattern else 1
    rois: list[EdgeRoi] = []
    for index, (centre, side, angle) in enumerate(squares):
        # detection pixel i covers frame pixels [i·s, (i+1)·s): its centre is at (i + ½)·s − ½
        c = (np.asarray(centre) + 0.5) * scale - 0.5
        side_px = side * scale
        for normal in _side_normals(angle):
            mid = c + 0.5 * side_px * normal
            vertical = abs(normal[0]) >= abs(normal[1])
            along = _ALONG * side_px
            # a square near the frame border keeps its outer edges: the ROI narrows (symmetrically) to fit
            room = (min(mid[0], width - 1 - mid[0]) if vertical else min(mid[1], height - 1 - mid[1])) - step
            across = min(_ACROSS * side_px, 2.0 * room)
            if across < _ACROSS_MIN * side_px:
                continue
            w, h = (across, along) if vertical else (along, across)
            w_i = max(step * 4, round(w / step) * step)
            h_i = max(step * 4, round(h / step) * step)
            x_i = math.floor((mid[0] - w_i / 2) / step) * step
            y_i = math.floor((mid[1] - h_i / 2) / step) * step
            if x_i < 0 or y_i < 0 or x_i + w_i > width or y_i + h_i > height:
                continue
            into_dark = normal[0] < 0 if vertical else normal[1] < 0
            dx, dy = mid[0] - cx0, mid[1] - cy0
            rois.append(
                EdgeRoi(
                    x=x_i,
                    y=y_i,
                    w=w_i,
                    h=h_i,
                    orientation=EdgeOrientation.VERTICAL if vertical else EdgeOrientation.HORIZONTAL,
                    polarity=Polarity.LIGHT_TO_DARK if into_dark else Polarity.DARK_TO_LIGHT,
                    centre_x_px=float(mid[0]),
                    centre_y_px=float(mid[1]),
                    field_r=float(math.hypot(dx, dy) / full_half_diag),
                    azimuth_deg=float(math.degrees(math.atan2(dy, dx))),
                    square=index,
                    side_px=float(side_px),
                )
            )
    rois.sort(key=lambda r: (round(r.field_r, 3), r.azimuth_deg))
    return rois


def _find_squares(work: np.ndarray, half_diag: float) -> list[tuple[tuple[float, float], float, float]]:
    """(centre xy, side, angle in degrees) of each dark square, in detection-image pixels."""
    # A closing (dilate, then erode) with a kernel larger than the biggest square erases the squares and
    # leaves the lit background with its shading; blurring it keeps it from following the noise.
    kernel_px = int(2 * round(1.6 * _MAX_SIDE * half_diag / 2) + 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (kernel_px, kernel_px))
    background = cv2.morphologyEx(work, cv2.MORPH_CLOSE, kernel)
    background = cv2.blur(background, (kernel_px, kernel_px))
    ratio = work / np.maximum(background, 1e-6)
    mask = (ratio < _THRESHOLD).astype(np.uint8)
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    rows, cols = work.shape
    found = []
    for contour in contours:
        area = cv2.contourArea(contour)
        if area < (_MIN_SIDE * half_diag) ** 2 or area > (_MAX_SIDE * half_diag) ** 2:
            continue
        (cx, cy), (rw, rh), angle = cv2.minAreaRect(contour)
        if min(rw, rh) <= 0 or max(rw, rh) / min(rw, rh) > _MAX_ASPECT or area / (rw * rh) < _MIN_FILL:
            continue
        x, y, bw, bh = cv2.boundingRect(contour)
        if x <= 1 or y <= 1 or x + bw >= cols - 1 or y + bh >= rows - 1:
            continue  # cut by the frame border: not a whole square
        # the blob's area is the square's up to the blur, which shifts the threshold contour symmetrically
        found.append(((float(cx), float(cy)), float(math.sqrt(area)), float(angle)))
    return found


def _side_normals(angle_deg: float) -> list[np.ndarray]:
    """Outward unit normals of a square's four sides, for a rectangle rotated by ``angle_deg``."""
    a = math.radians(angle_deg)
    u = np.array([math.cos(a), math.sin(a)])
    v = np.array([-math.sin(a), math.cos(a)])
    return [u, -u, v, -v]


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
