"""The MSA study page ``msa.html`` (self-contained): ANOVA tables, components, verdicts and the AIAG charts.

Charts per figure of a gauge R&R (AIAG MSA 4th ed., ch. III §B, "Graphical analysis"): components of variation,
R chart by appraiser (R̄, UCL = D₄·R̄), X̄ chart by appraiser (X̿ ± A₂·R̄), readings by part, readings by
appraiser, and the part × appraiser interaction (cell means). A type-1 study gets its run chart against the
reference with the ±K/2·T band and a histogram. Control-chart factors: Montgomery, *Introduction to Statistical
Quality Control*, 7th ed., Appendix VI.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from rig import __version__
from rig.report.html import environment, stylesheet
from rig.report.plots import png_data_uri
from rig.results.msa import CAPABILITY, GaugeRR, GoldenChart, GrrVerdict, LinearityStudy, Type1Study
from rig.results.record import atomic_write_text

CONTROL_CHART_FACTORS = {
    2: (1.880, 0.0, 3.267),
    3: (1.023, 0.0, 2.574),
    4: (0.729, 0.0, 2.282),
    5: (0.577, 0.0, 2.114),
    6: (0.483, 0.0, 2.004),
    7: (0.419, 0.076, 1.924),
    8: (0.373, 0.136, 1.864),
    9: (0.337, 0.184, 1.816),
    10: (0.308, 0.223, 1.777),
}
"""(A₂, D₃, D₄) by subgroup size = trials per cell (Montgomery 7th ed., Appendix VI)."""

VERDICT_COLOUR = {
    GrrVerdict.ACCEPTABLE: "#2e7d32",
    GrrVerdict.CONDITIONAL: "#ef6c00",
    GrrVerdict.NOT_ACCEPTABLE: "#c62828",
}
_RC = {"font.size": 8, "axes.titlesize": 9, "axes.grid": True, "grid.alpha": 0.3}
COMPONENTS = ("EV", "AV", "INT", "GRR", "PV")


def _components_axes(ax: Any, result: GaugeRR) -> None:
    x = np.arange(len(COMPONENTS))
    series = [("% contribution", result.pct_contribution), ("% study var", result.pct_study_variation)]
    if result.pct_tolerance:
        series.append(("% tolerance", result.pct_tolerance))
    width = 0.8 / len(series)
    for i, (label, values) in enumerate(series):
        ax.bar(x + (i - (len(series) - 1) / 2) * width, [values[c] for c in COMPONENTS], width, label=label)
    ax.set_xticks(x, COMPONENTS)
    ax.axhline(10, color="#2e7d32", lw=0.8, ls=":")
    ax.axhline(30, color="#c62828", lw=0.8, ls=":")
    ax.set_title("components of variation")
    ax.set_ylabel("%")
    ax.legend(fontsize=6)


def grr_chart_png(study: pd.DataFrame, result: GaugeRR, *, figure: str) -> str:
    """The six AIAG gauge R&R charts of one figure as one PNG data URI."""
    cells = study.groupby(["appraiser", "part"])["value"]
    ranges = (cells.max() - cells.min()).rename("range").reset_index()
    means = cells.mean().rename("mean").reset_index()
    appraisers = sorted(study["appraiser"].unique(), key=str)
    parts = sorted(study["part"].unique(), key=str)
    part_pos = {p: i for i, p in enumerate(parts)}
    a2, d3, d4 = CONTROL_CHART_FACTORS.get(result.n_trials, (np.nan, np.nan, np.nan))
    r_bar = float(ranges["range"].mean())
    grand = float(study["value"].mean())
    with mpl.rc_context(_RC):
        fig = Figure(figsize=(11, 6.2))
        fig.subplots_adjust(left=0.06, right=0.99, top=0.92, bottom=0.08, wspace=0.28, hspace=0.45)
        axes = fig.subplots(2, 3)
        fig.suptitle(f"{figure}: gauge R&R charts", fontsize=10)
        _components_axes(axes[0, 0], result)

        for title, ax, column, centre, low, high in (
            ("R chart by appraiser", axes[0, 1], "range", r_bar, d3 * r_bar, d4 * r_bar),
            ("X̄ chart by appraiser", axes[0, 2], "mean", grand, grand - a2 * r_bar, grand + a2 * r_bar),
        ):
            data = ranges if column == "range" else means
            offset = 0
            for appraiser in appraisers:
                rows = data[data["appraiser"] == appraiser].sort_values("part", key=lambda s: s.astype(str))
                ax.plot(np.arange(len(rows)) + offset, rows[column], marker=".", lw=0.8, label=str(appraiser))
                offset += len(parts) + 1
            ax.axhline(centre, color="0.2", lw=0.8)
            if np.isfinite(high):
                ax.axhline(high, color="#ef6c00", ls="--", lw=0.8)
                ax.axhline(low, color="#ef6c00", ls="--", lw=0.8)
            ax.set_title(title)
            ax.set_xticks([])

        ax = axes[1, 0]
        ax.scatter([part_pos[p] for p in study["part"]], study["value"], s=6, alpha=0.6)
        ax.plot(range(len(parts)), study.groupby("part")["value"].mean().reindex(parts), color="0.2", lw=0.8)
        ax.set_xticks(range(len(parts)), [str(p)[-3:] for p in parts])
        ax.set_title("by part")

        ax = axes[1, 1]
        ax.boxplot([study.loc[study["appraiser"] == a, "value"] for a in appraisers])
        ax.set_xticks(range(1, len(appraisers) + 1), [str(a) for a in appraisers])
        ax.set_title("by appraiser")

        ax = axes[1, 2]
        for appraiser in appraisers:
            rows = means[means["appraiser"] == appraiser]
            ax.plot([part_pos[p] for p in rows["part"]], rows["mean"], marker=".", lw=0.8, label=str(appraiser))
        ax.set_xticks(range(len(parts)), [str(p)[-3:] for p in parts])
        ax.set_title("part × appraiser interaction")
        ax.legend(fontsize=6)
        return png_data_uri(fig)


def linearity_chart_png(reference: np.ndarray, measured: np.ndarray, result: LinearityStudy, *, figure: str) -> str:
    """Bias against reference value: readings, per-part mean bias, fitted line, its confidence band, bias = 0."""
    with mpl.rc_context(_RC):
        fig = Figure(figsize=(6, 2.8))
        fig.subplots_adjust(left=0.12, right=0.98, top=0.86, bottom=0.17)
        ax = fig.add_subplot()
        ax.scatter(reference, measured - reference, s=6, alpha=0.5, label="readings")
        means = result.mean_bias_per_reference
        ax.plot(means.index, means.to_numpy(), "s", ms=4, color="0.2", label="mean bias per part")
        grid = result.band_reference
        ax.plot(grid, result.slope * grid + result.intercept, color="#1f5fa8", lw=0.9, label="fit")
        ax.fill_between(grid, result.band_low, result.band_high, color="#1f5fa8", alpha=0.15, label="95 % band")
        ax.axhline(0.0, color="#c62828", lw=0.8, ls=":")
        ax.set_title(f"{figure}: bias and linearity against the twin's truth")
        ax.set_xlabel("reference value")
        ax.set_ylabel("bias")
        ax.legend(fontsize=6)
        return png_data_uri(fig)


def type1_chart_png(values: np.ndarray, result: Type1Study, *, figure: str) -> str:
    """Run chart of the readings against the reference with the ±K/2·T band, and their histogram."""
    half_band = result.tolerance_fraction / 2 * result.tolerance
    with mpl.rc_context(_RC):
        fig = Figure(figsize=(9, 2.8))
        fig.subplots_adjust(left=0.08, right=0.99, top=0.85, bottom=0.16, wspace=0.25)
        run, hist = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 1]})
        run.plot(np.arange(1, len(values) + 1), values, marker=".", lw=0.8)
        run.axhline(result.reference, color="0.2", lw=0.9, label="reference")
        run.axhline(result.reference + half_band, color="#c62828", ls=":", lw=0.9, label="±0.1·T")
        run.axhline(result.reference - half_band, color="#c62828", ls=":", lw=0.9)
        run.axhline(result.mean, color="#1f5fa8", ls="--", lw=0.8, label="mean")
        run.set_title(f"{figure}: type-1 readings")
        run.set_xlabel("reading")
        run.legend(fontsize=6)
        hist.hist(values, bins=min(15, max(5, len(values) // 3)), orientation="horizontal")
        hist.set_title("histogram")
        return png_data_uri(fig)


def golden_chart_png(chart: GoldenChart, *, figure: str) -> str:
    """The station's golden chart: results in time order, baseline centre and ±3σ limits, flagged points."""
    with mpl.rc_context(_RC):
        fig = Figure(figsize=(9, 2.6))
        fig.subplots_adjust(left=0.08, right=0.99, top=0.86, bottom=0.17)
        ax = fig.add_subplot()
        x = np.arange(1, chart.values.size + 1)
        ax.plot(x, chart.values, marker=".", lw=0.8)
        ax.axvspan(0.5, min(chart.baseline_runs, chart.values.size) + 0.5, color="0.9", label="baseline")
        if np.isfinite(chart.sigma_within):
            ax.axhline(chart.center, color="0.2", lw=0.9)
            ax.axhline(chart.ucl, color="#ef6c00", ls="--", lw=0.9, label="±3σ")
            ax.axhline(chart.lcl, color="#ef6c00", ls="--", lw=0.9)
        flagged = np.union1d(chart.beyond_limits, chart.run_rule).astype(int)
        if flagged.size:
            ax.plot(flagged + 1, chart.values[flagged], "o", ms=4, color="#c62828", label="rule 1 / 4")
        ax.set_title(f"{figure}: golden-unit chart")
        ax.set_xlabel("golden run")
        ax.legend(fontsize=6)
        return png_data_uri(fig)


def _golden_sections(study: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "figure": figure,
            "value": entry["value"],
            "chart": entry["chart"],
            "colour": "#c62828" if entry["chart"].drifting else "#2e7d32",
            "png": golden_chart_png(entry["chart"], figure=figure),
        }
        for figure, entry in study["figures"].items()
    ]


def _grr_sections(study: dict[str, Any], readings: pd.DataFrame) -> list[dict[str, Any]]:
    sections = []
    for figure, entry in study["figures"].items():
        rows = readings[readings["figure"] == figure][["part", "appraiser", "trial", "value"]]
        result: GaugeRR = entry["grr"]
        sections.append(
            {
                "figure": figure,
                "grr": result,
                "anova_full": result.anova.full_rows,
                "anova": result.anova.rows,
                "components": COMPONENTS,
                "colour": VERDICT_COLOUR[result.verdict],
                "capability": CAPABILITY[result.verdict],
                "expectation": entry.get("expectation"),
                "uncertainty": entry.get("uncertainty"),
                "png": grr_chart_png(rows, result, figure=figure),
                "linearity": entry.get("linearity"),
                "linearity_png": _linearity_png(readings, figure, entry.get("linearity")),
            }
        )
    return sections


def _linearity_png(readings: pd.DataFrame, figure: str, result: LinearityStudy | None) -> str | None:
    if result is None:
        return None
    rows = readings[readings["figure"] == figure]
    return linearity_chart_png(rows["reference_value"].to_numpy(), rows["value"].to_numpy(), result, figure=figure)


def _type1_sections(study: dict[str, Any], readings: pd.DataFrame) -> list[dict[str, Any]]:
    sections = []
    for figure, entry in study["figures"].items():
        result: Type1Study = entry["type1"]
        values = readings.loc[readings["figure"] == figure, "value"].to_numpy()
        sections.append(
            {
                "figure": figure,
                "t1": result,
                "reference_kind": entry.get("reference", ""),
                "colour": "#2e7d32" if result.capable else "#c62828",
                "png": type1_chart_png(values, result, figure=figure),
            }
        )
    return sections


def write_msa_page(path: Path, study: dict[str, Any], readings: pd.DataFrame) -> Path:
    """Render the study (as :mod:`rig.cli.msa_studies` assembles it) and its readings to ``path``."""
    kind = study["study"]
    if kind == "grr":
        sections = _grr_sections(study, readings)
    elif kind == "type1":
        sections = _type1_sections(study, readings)
    else:
        sections = _golden_sections(study)
    html = (
        environment()
        .get_template("msa.html.j2")
        .render(
            study=study,
            kind=kind,
            sections=sections,
            css=stylesheet(),
            version=__version__,
            generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        )
    )
    atomic_write_text(path, html)
    return path
