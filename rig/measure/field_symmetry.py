"""Corner-to-corner symmetry of sharpness from a through-focus sweep: the signature of a decentred lens element.

A centred lens images its four corners alike: the field dependence of its aberrations is rotationally symmetric
about the axis. A decentred element moves the centre of that field dependence off the axis (nodal aberration
theory: K. P. Thompson, JOSA A 22 (2005) 1389), so one corner carries more coma and astigmatism than the
opposite one, and the medial image surface tilts. A lens lab sees it as one corner softer than the others: the
ISO 12233 e-SFR of edges at the same image height, compared across the four corners.

Each corner's sharpness is the median MTF50 of the corner-zone edges on that frame diagonal, each edge *at its own
best focus* (:class:`rig.measure.focus.EdgeFocus`): a sensor tilt or a tilted image surface changes where an
edge is sharpest, not how sharp it gets there, so the mount's alignment (graded by the QA sign-off) does not count
against the lens, and what remains is the lens's own field asymmetry (coma, astigmatism, residual aberrations).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from rig.errors import MeasurementError
from rig.measure.edges import Zone
from rig.measure.focus import EdgeFocus

DIAGONAL_TOLERANCE_DEG = 20.0
"""Edges whose midpoint lies within this azimuth of a frame diagonal speak for that corner (the SFR chart's corner
squares sit on the diagonals; its 0.7-field squares on the horizontal axis do not belong to one corner)."""


class Corner(StrEnum):
    """A frame corner (+y down: the top corners have negative y)."""

    TOP_LEFT = "top_left"
    TOP_RIGHT = "top_right"
    BOTTOM_LEFT = "bottom_left"
    BOTTOM_RIGHT = "bottom_right"


@dataclass(frozen=True)
class CornerSymmetry:
    """Sharpness of the four corners, each edge at its own best focus.

    Attributes
    ----------
    mtf50_cy_px
        Median peak MTF50 (cycles/read-out pixel) of each corner's edges.
    edges
        Edges behind each median.
    ratio
        Softest corner over sharpest corner (1 = symmetric field).
    softest, sharpest
        Which corners those are.
    """

    mtf50_cy_px: dict[Corner, float]
    edges: dict[Corner, int]
    ratio: float
    softest: Corner
    sharpest: Corner


def corner_of(azimuth_deg: float, *, width_px: int, height_px: int) -> Corner | None:
    """The corner whose frame diagonal lies within :data:`DIAGONAL_TOLERANCE_DEG` of ``azimuth_deg``, or None.

    ``azimuth_deg`` is measured from +x towards +y (down), as :attr:`rig.measure.edges.EdgeRoi.azimuth_deg`.
    """
    diagonal = math.degrees(math.atan2(height_px, width_px))
    for corner, centre in (
        (Corner.BOTTOM_RIGHT, diagonal),
        (Corner.BOTTOM_LEFT, 180.0 - diagonal),
        (Corner.TOP_LEFT, diagonal - 180.0),
        (Corner.TOP_RIGHT, -diagonal),
    ):
        if abs((azimuth_deg - centre + 180.0) % 360.0 - 180.0) <= DIAGONAL_TOLERANCE_DEG:
            return corner
    return None


def corner_symmetry(edges: Sequence[EdgeFocus], *, width_px: int, height_px: int) -> CornerSymmetry:
    """Compare the four corners' sharpness at best focus (see the module notes).

    Parameters
    ----------
    edges
        Per-edge through-focus results of one sweep (:func:`rig.measure.focus.through_focus`).
    width_px, height_px
        Frame size (read-out pixels), for the directions of its diagonals.

    Returns
    -------
    CornerSymmetry

    Raises
    ------
    MeasurementError
        A corner has no corner-zone edge with a best focus.
    """
    per_corner: dict[Corner, list[float]] = {c: [] for c in Corner}
    for edge in edges:
        if edge.roi.zone is not Zone.CORNER or edge.best is None or not math.isfinite(edge.best.peak_mtf50_cy_px):
            continue
        corner = corner_of(edge.roi.azimuth_deg, width_px=width_px, height_px=height_px)
        if corner is not None:
            per_corner[corner].append(edge.best.peak_mtf50_cy_px)
    missing = [str(c) for c, values in per_corner.items() if not values]
    if missing:
        raise MeasurementError(f"no corner edge with a best focus at {', '.join(missing)}: corner symmetry unknown")
    medians = {c: float(np.median(v)) for c, v in per_corner.items()}
    softest = min(medians, key=medians.__getitem__)
    sharpest = max(medians, key=medians.__getitem__)
    return CornerSymmetry(
        mtf50_cy_px=medians,
        edges={c: len(v) for c, v in per_corner.items()},
        ratio=medians[softest] / medians[sharpest],
        softest=softest,
        sharpest=sharpest,
    )
