"""The MSA study page renders every kind of study with its tables and charts (no twin: synthetic readings)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from rig.report.msa_page import write_msa_page
from rig.results import msa
from tests.results.test_msa import aiag_study


def _readings(figure: str) -> pd.DataFrame:
    study = aiag_study()
    reference = study.groupby("part")["value"].transform("mean")
    return study.assign(figure=figure, reference_value=reference, true_value=reference)


def _images(html: str) -> int:
    return len(re.findall(r'<img class="chart" src="data:image/png;base64,', html))


def test_grr_page_has_the_anova_the_components_the_charts_and_the_linearity(tmp_path: Path) -> None:
    readings = _readings("flange_offset_um")
    result = msa.gauge_rr(readings[["part", "appraiser", "trial", "value"]], tolerance=6.0)
    study = {
        "study": "grr",
        "plan": "signoff",
        "station": "twin-01",
        "appraiser_kind": "operator",
        "parts": 10,
        "appraisers": ["A", "B", "C"],
        "trials": 3,
        "seed": 1,
        "figures": {
            "flange_offset_um": {
                "grr": result,
                "uncertainty": msa.expanded_uncertainty(result),
                "linearity": msa.bias_linearity(readings["reference_value"], readings["value"]),
            }
        },
    }
    html = write_msa_page(tmp_path / "msa.html", study, readings).read_text()
    assert "Part x Appraiser" in html and "pooled into repeatability" in html
    assert "conditionally acceptable" in html
    assert f"± {result.grr * 2:.5g}" in html  # U = 2·GRR without a bias term
    assert _images(html) == 2  # the six gauge R&R charts in one image, and the linearity chart


def test_type1_and_golden_pages_render(tmp_path: Path) -> None:
    values = np.random.default_rng(3).normal(0.8, 0.02, 25)
    readings = pd.DataFrame({"figure": "flange_offset_um", "value": values})
    type1 = {
        "study": "type1",
        "plan": "signoff",
        "station": "twin-01",
        "unit": "XM12SU-000001",
        "n": 25,
        "remount": False,
        "seed": 1,
        "figures": {
            "flange_offset_um": {
                "type1": msa.type1_study(values, reference=0.8, tolerance=10.0),
                "reference": "true_value",
            }
        },
    }
    html = write_msa_page(tmp_path / "t1.html", type1, readings).read_text()
    assert "Type-1 results" in html and _images(html) == 1
    chart = msa.golden_chart([*values[:10], 1.5], baseline_runs=10)
    golden = {
        "study": "golden",
        "plan": "signoff",
        "station": "twin-01",
        "unit": "XM12SU-000001",
        "seed": 1,
        "figures": {"flange_offset_um": {"value": 1.5, "chart": chart}},
    }
    html = write_msa_page(tmp_path / "g.html", golden, readings.iloc[:1]).read_text()
    assert "drifting" in html and _images(html) == 1
