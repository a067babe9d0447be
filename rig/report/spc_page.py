"""The SPC page and tables: ``spc.html`` (self-contained), ``spc_capability.csv``, ``spc_pareto.csv``."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path

from rig import __version__
from rig.report.html import environment, stylesheet
from rig.report.plots import control_chart_png, pareto_png
from rig.results.record import atomic_write_bytes, atomic_write_text
from rig.results.spc import SpcResult

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
        {k: (None if isinstance(v, float) and math.isnan(v) and k in {"low", "high"} else v) for k, v in row.items()}
        for row in result.capability.to_dict("records")
    ]
    html = (
        environment()
        .get_template("spc.html.j2")
        .render(
            scope=scope,
            y=result.yields,
            pareto=result.pareto.to_dict("records"),
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
