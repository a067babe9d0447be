"""Report figures from measurement results: what a person looks at beside the numbers (issue #7).

Each function turns typed results into one :mod:`rig.results.reportdata` plot; the plans attach them to the run.
Values that cannot be drawn (NaN) travel as ``None`` and are drawn as gaps.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from rig.measure.edges import ChartResult
from rig.measure.focus import FlangeResult
from rig.measure.imageio import bayer_mean
from rig.measure.uniformity import Uniformity
from rig.results.reportdata import Check, ChecksPlot, CurvesPlot, FieldPlot, FieldPoint, HeatmapPlot, RefLine, Series

PREVIEW_WIDTH_PX = 480


def _num(v: float) -> float | None:
    return float(v) if math.isfinite(v) else None


def mtf_curves(
    chart: ChartResult, *, name: str = "mtf", title: str = "MTF at best focus, median per zone"
) -> CurvesPlot:
    """Median SFR per field zone over the frequencies the edges share (0 … 1 cy/px)."""
    freqs = np.linspace(0.0, 1.0, 41)
    series = []
    for zone in sorted({str(e.roi.zone) for e in chart.measured}):
        curves = [[e.sfr.mtf_at(float(f)) for f in freqs] for e in chart.measured if str(e.roi.zone) == zone and e.sfr]
        median = np.nanmedian(np.asarray(curves, dtype=float), axis=0)
        series.append(
            Series(label=f"{zone} ({len(curves)} edges)", x=freqs.tolist(), y=[_num(v) for v in median], zone=zone)
        )
    return CurvesPlot(
        name=name,
        title=title,
        x_label="spatial frequency",
        x_unit="cy/px",
        y_label="MTF",
        series=series,
        hlines=[RefLine(value=0.5, label="MTF50")],
        vlines=[RefLine(value=0.25, label="Nyquist/2"), RefLine(value=0.5, label="Nyquist")],
    )


def through_focus_curves(flange: FlangeResult, rail_um_per_mm: float, *, per_zone: int = 2) -> CurvesPlot:
    """MTF50 against image-side focus for a few edges of each zone, with each edge's fitted best focus."""
    series, vlines = [], []
    taken: dict[str, int] = {}
    for edge in flange.edges:
        zone = str(edge.roi.zone)
        if edge.best is None or taken.get(zone, 0) >= per_zone:
            continue
        taken[zone] = taken.get(zone, 0) + 1
        x = (np.asarray(edge.rail_mm) - edge.rail_mm.mean()) * rail_um_per_mm
        label = f"{zone} r={edge.roi.field_r:.2f}"
        series.append(Series(label=label, x=x.tolist(), y=[_num(v) for v in edge.mtf50_cy_px], zone=zone))
        vlines.append(RefLine(value=(edge.best.position - edge.rail_mm.mean()) * rail_um_per_mm, label=label))
    return CurvesPlot(
        name="through_focus",
        title="Through focus: MTF50 per edge",
        x_label="image-side focus",
        x_unit="µm",
        y_label="MTF50",
        y_unit="cy/px",
        series=series or [Series(label="none", x=[0.0], y=[None])],
        vlines=vlines,
    )


def focus_field_map(flange: FlangeResult, *, half_diagonal_um: float) -> FieldPlot:
    """Each edge's best-focus position over the field, with the fitted sensor plane behind it."""
    points = [
        FieldPoint(
            x=max(-1.0, min(1.0, e.x_um / half_diagonal_um)),
            y=max(-1.0, min(1.0, e.y_um / half_diagonal_um)),
            value=_num(e.image_focus_um),
        )
        for e in flange.edges
    ]
    slope = half_diagonal_um * math.pi / (180 * 60)  # µm of focus per arcmin across one half diagonal
    return FieldPlot(
        name="focus_field",
        title="Best focus over the field (tilt map)",
        unit="µm",
        points=points,
        plane_offset=flange.flange_offset_um,
        plane_slope_x=flange.tilt_y_arcmin * slope,
        plane_slope_y=flange.tilt_x_arcmin * slope,
        caption=f"plane: flange {flange.flange_offset_um:+.2f} µm, tilt x {flange.tilt_x_arcmin:+.2f}′, "
        f"tilt y {flange.tilt_y_arcmin:+.2f}′; rms {flange.fit_rms_um:.2f} µm",
    )


def shading_map(u: Uniformity, *, channel: str = "Gr") -> HeatmapPlot:
    grid = u.relative_illumination[channel]
    return HeatmapPlot(
        name=f"relative_illumination_{channel}",
        title=f"Relative illumination ({channel})",
        unit="×",
        values=[[_num(v) for v in row] for row in np.asarray(grid, dtype=float)],
        colormap="magma",
    )


def trace(
    name: str,
    title: str,
    x: Sequence[float],
    ys: dict[str, Sequence[float]],
    *,
    x_label: str,
    x_unit: str,
    y_label: str,
    y_unit: str,
    hlines: Sequence[RefLine] = (),
) -> CurvesPlot:
    return CurvesPlot(
        name=name,
        title=title,
        x_label=x_label,
        x_unit=x_unit,
        y_label=y_label,
        y_unit=y_unit,
        series=[Series(label=k, x=[float(v) for v in x], y=[_num(float(v)) for v in vs]) for k, vs in ys.items()],
        hlines=list(hlines),
    )


def sag_trace(
    title: str, pitches: Sequence[float], shift_x_um: Sequence[float], shift_y_um: Sequence[float]
) -> CurvesPlot:
    return trace(
        "sag",
        title,
        pitches,
        {"x": shift_x_um, "y": shift_y_um},
        x_label="pitch",
        x_unit="°",
        y_label="shift",
        y_unit="µm",
    )


def checks(name: str, title: str, rows: Sequence[tuple[str, str, str, bool]]) -> ChecksPlot:
    return ChecksPlot(
        name=name, title=title, checks=[Check(name=n, expected=e, observed=o, ok=ok) for n, e, o, ok in rows]
    )


def preview_png(raw: np.ndarray, *, black_level: float, white_level: float, width_px: int = PREVIEW_WIDTH_PX) -> bytes:
    """A small gamma-encoded grey preview of a raw frame (2×2 mean, black to white) as PNG bytes."""
    luma = (bayer_mean(raw) - black_level) / max(white_level - black_level, 1.0)
    small = cv2.resize(
        np.clip(luma, 0, 1), (width_px, round(width_px * luma.shape[0] / luma.shape[1])), interpolation=cv2.INTER_AREA
    )
    ok, png = cv2.imencode(".png", np.round(255 * small ** (1 / 2.2)).astype(np.uint8))
    if not ok:
        raise ValueError("PNG encoding failed")
    return png.tobytes()
