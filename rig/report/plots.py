"""Figures of the report, drawn with matplotlib (object API, Agg/SVG canvases: no pyplot global state).

Each :mod:`rig.results.reportdata` plot becomes an inline SVG string. Text stays text (``svg.fonttype = none``)
so the HTML and the PDF printed from it are searchable; a heat map's raster travels as a data: URI inside the
SVG, so the page needs nothing from outside.
"""

from __future__ import annotations

import base64
import io
import math
import re
from pathlib import Path

import cv2
import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from rig.results.numbers import display_unit
from rig.results.reportdata import (
    ChecksPlot,
    CurvesPlot,
    FieldPlot,
    HeatmapPlot,
    Plot,
    as_floats,
)
from rig.results.spc import ControlChart

FIG_SIZE_IN = (6.4, 3.6)
ANNOTATE_MAX_CELLS = 16 * 16
THUMBNAIL_MAX_PX = 480

_RC = {"svg.fonttype": "none", "font.size": 8.5, "axes.grid": True, "grid.alpha": 0.3, "svg.hashsalt": "rig"}


def _label(name: str, unit: str) -> str:
    return f"{name} ({display_unit(unit)})" if unit else name


def _draw_curves(ax: Axes, plot: CurvesPlot) -> None:
    for series in plot.series:
        ax.plot(series.x, as_floats(series.y), marker="o" if len(series.x) <= 25 else None, ms=3, label=series.label)
    for line in plot.hlines:
        ax.axhline(line.value, color="0.35", ls="--", lw=0.9)
        if line.label:
            ax.annotate(line.label, (1.0, line.value), xycoords=("axes fraction", "data"), ha="right", va="bottom")
    for line in plot.vlines:
        ax.axvline(line.value, color="0.35", ls=":", lw=0.9)
        if line.label:
            ax.annotate(line.label, (line.value, 1.0), xycoords=("data", "axes fraction"), ha="left", va="top")
    if plot.log_y:
        ax.set_yscale("log")
    ax.set_xlabel(_label(plot.x_label, plot.x_unit))
    ax.set_ylabel(_label(plot.y_label, plot.y_unit))
    if len(plot.series) > 1 or plot.series[0].label:
        ax.legend(loc="best", fontsize=7.5)


def _draw_heatmap(fig: Figure, ax: Axes, plot: HeatmapPlot) -> None:
    grid = np.array([as_floats(row) for row in plot.values], dtype=float)
    image = ax.imshow(grid, cmap=plot.colormap, interpolation="nearest", aspect="equal")
    fig.colorbar(image, ax=ax, label=display_unit(plot.unit) or None, shrink=0.9)
    ax.grid(False)
    ax.set_xlabel("block column")
    ax.set_ylabel("block row")
    if plot.annotate and grid.size <= ANNOTATE_MAX_CELLS:
        finite = grid[np.isfinite(grid)]
        mid = float(np.mean(finite)) if finite.size else 0.0
        for (r, c), v in np.ndenumerate(grid):
            if math.isfinite(v):
                ax.text(c, r, f"{v:.3g}", ha="center", va="center", fontsize=6, color="white" if v < mid else "black")


def _draw_field(fig: Figure, ax: Axes, plot: FieldPlot) -> None:
    values = np.array(as_floats([p.value for p in plot.points]))
    finite = values[np.isfinite(values)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if plot.plane_offset is not None:
        sx, sy = plot.plane_slope_x or 0.0, plot.plane_slope_y or 0.0
        gx, gy = np.meshgrid(np.linspace(-1, 1, 81), np.linspace(-1, 1, 61))
        plane = plot.plane_offset + sx * gx + sy * gy
        lo, hi = min(lo, float(plane.min())), max(hi, float(plane.max()))
        ax.imshow(plane, extent=(-1, 1, 1, -1), cmap=plot.colormap, vmin=lo, vmax=hi, alpha=0.45, aspect="auto")
    xs = [p.x for p in plot.points]
    ys = [p.y for p in plot.points]
    sc = ax.scatter(xs, ys, c=values, cmap=plot.colormap, vmin=lo, vmax=hi, s=70, edgecolors="k", linewidths=0.6)
    for p, v in zip(plot.points, values, strict=True):
        text = f"{v:.3g}" if math.isfinite(v) else "n/a"
        ax.annotate(f"{p.label} {text}".strip(), (p.x, p.y), textcoords="offset points", xytext=(6, 5), fontsize=7)
    fig.colorbar(sc, ax=ax, label=display_unit(plot.unit) or None, shrink=0.9)
    ax.set_xlim(-1.1, 1.1)
    ax.set_ylim(1.1, -1.1)  # image rows run downwards
    ax.set_xlabel("field x (normalised)")
    ax.set_ylabel("field y (normalised, down)")
    ax.set_aspect(0.75)


def figure_for(plot: CurvesPlot | HeatmapPlot | FieldPlot) -> Figure:
    """A matplotlib figure for one plot (not attached to any pyplot state)."""
    fig = Figure(figsize=FIG_SIZE_IN)
    # Fixed margins rather than constrained layout, which doubled the time of a report's figures.
    fig.subplots_adjust(left=0.12, right=0.97 if isinstance(plot, CurvesPlot) else 0.95, top=0.9, bottom=0.14)
    ax = fig.add_subplot()
    if isinstance(plot, CurvesPlot):
        _draw_curves(ax, plot)
    elif isinstance(plot, HeatmapPlot):
        _draw_heatmap(fig, ax, plot)
    else:
        _draw_field(fig, ax, plot)
    ax.set_title(plot.title)
    return fig


_SVG_HEAD = re.compile(r"^.*?(?=<svg)", re.S)


def svg_for(plot: Plot) -> str | None:
    """Inline ``<svg>`` markup for a plot, or ``None`` for a table-only plot (``checks``)."""
    if isinstance(plot, ChecksPlot):
        return None
    with mpl.rc_context(_RC):
        fig = figure_for(plot)
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None})
    # Inline in HTML: drop the XML declaration and DOCTYPE (its DTD URL is never fetched, but has no place here).
    return _SVG_HEAD.sub("", buf.getvalue(), count=1)


def thumbnail_data_uri(path: Path, *, max_px: int = THUMBNAIL_MAX_PX) -> str | None:
    """A PNG data: URI of the image at ``path``, scaled down to ``max_px`` on its long side; ``None`` if the file
    is missing or not an image."""
    data = np.fromfile(path, dtype=np.uint8) if path.is_file() else None
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data is not None and data.size else None
    if image is None:
        return None
    scale = max_px / max(image.shape[:2])
    if scale < 1.0:
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    ok, png = cv2.imencode(".png", image)
    return "data:image/png;base64," + base64.b64encode(png.tobytes()).decode("ascii") if ok else None


# ---------------------------------------------------------------------------------------------------- SPC
SPC_FIG_SIZE_IN = (7.2, 2.6)
SPC_DPI = 90
_SPC_MARGINS = {"left": 0.09, "right": 0.91, "top": 0.88, "bottom": 0.2}


def png_data_uri(fig: Figure, *, dpi: int = SPC_DPI) -> str:
    """A figure as a PNG data: URI (Agg): SPC charts carry thousands of points, cheaper as pixels than SVG."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def pareto_png(table: pd.DataFrame) -> str | None:
    """Bars of failed runs per cause with the cumulative share line; ``None`` when nothing failed."""
    if table.empty:
        return None
    with mpl.rc_context(_RC):
        fig = Figure(figsize=SPC_FIG_SIZE_IN)
        fig.subplots_adjust(**{**_SPC_MARGINS, "bottom": 0.36})  # room for slanted measurement names
        ax = fig.add_subplot()
        x = np.arange(len(table))
        ax.bar(x, table["failed_runs"], color="#c62828")
        ax.set_xticks(x, table["cause"], rotation=20, ha="right")
        ax.set_ylabel("failed runs")
        share = ax.twinx()
        share.plot(x, 100 * table["cumulative_share"], color="0.2", marker="o", ms=3)
        share.set_ylim(0, 105)
        share.set_ylabel("cumulative %")
        share.grid(False)
        ax.set_title("Pareto of failure causes")
        return png_data_uri(fig)


def control_chart_png(chart: ControlChart) -> str:
    """Individuals chart: values in run order, centre line, ±3σ control limits, specification limits."""
    with mpl.rc_context(_RC):
        fig = Figure(figsize=SPC_FIG_SIZE_IN)
        fig.subplots_adjust(**_SPC_MARGINS)
        ax = fig.add_subplot()
        x = np.arange(len(chart.values))
        ax.plot(x, chart.values, lw=0.7, marker="." if len(x) <= 300 else None, ms=3, color="#1f5fa8")
        if chart.out_of_control.size:
            ax.plot(x[chart.out_of_control], chart.values[chart.out_of_control], "o", ms=3.5, color="#c62828")
        ax.axhline(chart.center, color="0.2", lw=0.9, label="mean")
        if math.isfinite(chart.sigma_within):
            ax.axhline(chart.ucl, color="#ef6c00", ls="--", lw=0.9, label="±3σ")
            ax.axhline(chart.lcl, color="#ef6c00", ls="--", lw=0.9)
        for limit in (chart.low, chart.high):
            if limit is not None:
                ax.axhline(limit, color="#c62828", ls=":", lw=1.0)
        ax.set_title(f"{chart.key}  (I chart; red dotted: limits)")
        ax.set_xlabel("run (time order)")
        ax.set_ylabel(display_unit(chart.unit) or "value")
        ax.legend(loc="upper right", fontsize=7)
        return png_data_uri(fig)
