"""The SPC page and tables: ``spc.html`` (self-contained), ``spc_capability.csv``, ``spc_pareto.csv``.

The page shows every figure as the CLI prints it (:func:`rig.results.spc.capability_text`, the formatting of
rig.results.numbers); the CSV tables keep the full floats for analysis.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from rig import __version__
from rig.report.html import environment, stylesheet
from rig.report.plots import control_chart_png, pareto_png
from rig.results.numbers import display_unit, format_fraction_pct
from rig.results.record import atomic_write_bytes, atomic_write_text
from rig.results.spc import SpcResult, capability_text

CPK_TARGET = 1.33
"""Capability below this is shaded on the page (the usual automotive minimum for an established process)."""

SPC_FILES = {"html": "spc.html", "capability": "spc_capability.csv", "pareto": "spc_pareto.csv"}


def write_spc_outputs(result: SpcResult, out_dir: Path, *, scope: str) -> dict[str, Path]:
    """Write the SPC page and CSV tables into ``out_dir``; ``scope`` says what was selected (plan, dates)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {k: out_dir / v for k, v in SPC_FILES.items()}
    atomic_write_bytes(paths["capability"], result.capability.to_csv(index=False).encode("utf-8"))
    atomic_write_bytes(paths["pareto"], result.pareto.to_csv(index=False).encode("utf-8"))
    charts = [
        {"key": c.key, "png": control_chart_png(c), "n": len(c.values), "outside": len(c.out_of_control)}
        for c in result.charts
    ]
    capability = [
        {
            **row,
            "unit": display_unit(row["unit"]),
            "text": capability_text(row),
            "below_target": row["cpk"] == row["cpk"] and row["cpk"] < CPK_TARGET,  # NaN (withheld) is never shaded
        }
        for row in result.capability.to_dict("records")
    ]
    pareto = [
        {**row, "share": format_fraction_pct(row["share"]), "cumulative": format_fraction_pct(row["cumulative_share"])}
        for row in result.pareto.to_dict("records")
    ]
    y = result.yields
    yields = {"yield": format_fraction_pct(y.yield_frac), "first_pass": format_fraction_pct(y.first_pass_yield_frac)}
    html = (
        environment()
        .get_template("spc.html.j2")
        .render(
            scope=scope,
            y=y,
            yields=yields,
            pareto=pareto,
            pareto_png=pareto_png(result.pareto),
            capability=capability,
            cpk_target=CPK_TARGET,
            charts=charts,
            css=stylesheet(),
            version=__version__,
            generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        )
    )
    atomic_write_text(paths["html"], html)
    return paths
