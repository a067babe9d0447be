"""Issue #18 end to end on the twin: a small gauge study of two non-flange sign-off steps from the command line, then
a sign-off on the same station that shows ± U beside each figure the study covers (and nowhere else).

The study is the CI-sized one the issue asks for: 3 parts × 2 operators × 2 trials of the sign-off's own
``decentre`` and ``light_intake`` steps (the plan's test functions, fixtures and limits), every trial a full
remount, ``rig msa grr`` in its own process with the real transports. What it must find is checked against the
twin's truth, which the study does not produce:

* the decentre and the light gain are read within 0.2 µm and 0.01× of the truth right after their step (the
  dot-grid fit and the flat-field ratio are that accurate on the twin: 0.02 µm and 0.001× in practice);
* the study's repeatability of the decentre is the seating's: the ANOVA of the *true* decentre over the same
  design gives the same EV within 0.3 µm (the measurement adds ≈ 0.02 µm in quadrature to a seating scatter of
  about 1 µm), so the station's EV is the bayonet's, not the measurement's.

Then ``rig signoff`` with the same results store records U = 2·√(EV² + AV² + INT²) of every accepted figure of
the study beside its value (record, report, JUnit), names the study, and leaves every other figure without U.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pandas as pd
import pytest
import xmlschema

from rig.results import msa
from rig.results.record import RunRecord
from tests.report.test_uncertainty_outputs import _rows

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

STEPS = ("decentre", "light_intake")
STUDY_FIGURES = {
    "decentre": ("decentre_um", "distortion_rms_px"),
    "light_intake": (
        "t_stop_error_stops",
        "light_gain_over_native_x",
        "corner_falloff_stops",
        "shading_centre_offset_um",
        "colour_shading_pct",
    ),
}
TRUTH_TOLERANCE = {"decentre_um": 0.2, "light_gain_over_native_x": 0.01}
SCHEMA = xmlschema.XMLSchema(Path(__file__).parents[1] / "report" / "jenkins-junit-10.xsd")
RUN_TIMEOUT_S = 1500  # the twin drives a study for a minute or two; a shared machine can make it many


def _rig(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rig", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, dict]:
    """``rig msa grr`` of two sign-off steps into a fresh store: (study folder, store URL, study.json)."""
    folder = tmp_path_factory.mktemp("msa")
    store = f"sqlite:///{folder / 'results.sqlite'}"
    run = _rig(
        "msa", "grr", "--plan", "signoff", "--steps", *STEPS, "--parts", "3", "--appraisers", "2", "--trials", "2",
        "--store", store, "--out", folder / "study",
    )  # fmt: skip
    assert run.returncode in (0, 1), run.stderr[-3000:]
    assert "ETA" in run.stderr  # the progress bar
    return folder / "study", store, json.loads((folder / "study" / "study.json").read_text())


def test_the_study_covers_every_figure_of_both_steps_and_says_if_the_station_is_capable(study) -> None:
    out, _, data = study
    assert data["steps"] == ["light_intake", "decentre"]  # in the plan's order, as a sign-off takes them
    studied = set(data["figures"]) | set(data["not_assessable"])
    assert studied == {f for step in STEPS for f in STUDY_FIGURES[step]}
    readings = pd.read_csv(out / "readings.csv")
    assert len(readings) == len(studied) * 3 * 2 * 2
    html = (out / "msa.html").read_text()
    assert 'id="capability"' in html
    for figure, entry in data["figures"].items():
        assert f'id="{figure}"' in html
        verdict = msa.GrrVerdict(entry["grr"]["verdict"])
        assert msa.CAPABILITY[verdict] in html, figure


def test_the_study_reads_decentre_and_light_gain_at_the_twin_s_truth(study) -> None:
    out, _, _ = study
    readings = pd.read_csv(out / "readings.csv")
    for figure, tolerance in TRUTH_TOLERANCE.items():
        rows = readings[readings["figure"] == figure]
        error = (rows["value"] - rows["true_value"]).abs()
        assert error.max() < tolerance, f"{figure}: worst |reading − truth| {error.max():.4f}"


def test_the_decentre_repeatability_is_the_seating_s(study) -> None:
    out, _, data = study
    readings = pd.read_csv(out / "readings.csv")
    rows = readings[readings["figure"] == "decentre_um"]
    truth = msa.gauge_rr(rows[["part", "appraiser", "trial", "true_value"]].rename(columns={"true_value": "value"}))
    assert truth.ev > 0.1, "the seating should scatter the optical axis on the sensor"
    assert data["figures"]["decentre_um"]["grr"]["ev"] == pytest.approx(truth.ev, abs=0.3)


def test_a_signoff_shows_plus_minus_u_beside_each_figure_the_study_covers(study, tmp_path: Path) -> None:
    _, store, data = study
    accepted = {name for name, e in data["figures"].items() if e["grr"]["verdict"] != "not acceptable"}
    assert accepted, "the study accepted no figure: nothing would carry U"
    run = _rig("signoff", "--reports", tmp_path, "--store", store, "--json")
    assert run.returncode in (0, 1), run.stderr[-3000:]
    run_dir = Path(json.loads(run.stdout)["run_dir"])
    record = RunRecord.load(run_dir / "record.json")
    rows = _rows((run_dir / "report.html").read_text())
    props = {p.get("name"): p.get("value") for p in ET.parse(run_dir / "junit.xml").getroot().iter("property")}
    SCHEMA.validate(str(run_dir / "junit.xml"))
    for m in record.measurements:
        if m.key in accepted:
            g = data["figures"][m.key]["grr"]
            expected = 2 * math.sqrt(g["ev"] ** 2 + g["av"] ** 2 + g["interaction_sd"] ** 2)
            assert m.uncertainty is not None and m.uncertainty.expanded_u == pytest.approx(expected, rel=1e-9)
            assert m.uncertainty.study_id == "study" and m.uncertainty.coverage_factor == 2.0
            assert rows[m.key]["± U"].startswith("± "), (m.key, rows[m.key])
            assert props[f"{m.step}.{m.key}.U"] == f"{m.uncertainty.expanded_u!r} {m.unit}"
            assert props[f"{m.step}.{m.key}.U_source"].startswith("MSA study of ")
        else:  # no study of this figure on this station: nothing changes
            assert m.uncertainty is None and m.decision is None and m.decision_note is None, m.key
            assert rows[m.key]["± U"] == "" and f"{m.step}.{m.key}.U" not in props
