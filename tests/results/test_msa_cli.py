"""``rig msa`` end to end: bad input is one line and exit 2; a small study writes its files and the store; the
station's U comes back from the store; a golden unit read off its baseline flags the station."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from rig.config.loader import FIXTURES_DIR
from tests.faults.test_bad_input import _one_line_error, _rig

REAL_STATION = FIXTURES_DIR / "stations" / "example-line.toml"
STUDY_TIMEOUT_S = 500  # a study drives the twin for tens of seconds; a shared machine can make it minutes


def _study(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """``rig msa …`` in a subprocess with room for the twin to work (the bad-input helper allows 60 s)."""
    return subprocess.run(
        [sys.executable, "-m", "rig", "msa", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=STUDY_TIMEOUT_S,
        check=False,
    )


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["type1", "--n", "10"], ["--n 10", "25–50"]),
        (["grr", "--parts", "1"], ["--parts 1", "at least 2"]),
        (["grr", "--appraisers", "1"], ["--appraisers 1", "at least 2"]),
        (["grr", "--station", str(REAL_STATION)], ["example-line.toml", "twin station"]),
        (["golden", "--baseline-runs", "1"], ["--baseline-runs 1", "at least 2"]),
        (["grr", "--plan", "no-such-plan", "--no-store"], ["no-such-plan"]),
        (["grr", "--steps", "no_such_step", "--no-store"], ["--steps no_such_step", "flange_alignment, sharpness"]),
        (["type1", "--steps", "decentre", "--no-store"], ["--steps decentre", "a low and a high limit"]),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], needles: list[str]) -> None:
    _one_line_error(_rig("msa", *args), *needles)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_small_type3_grr_writes_its_files_and_gives_the_station_its_uncertainty(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'results.sqlite'}"
    out = tmp_path / "study"
    # an automated type-3 study (no appraiser factor) keeps it to 4 twin readings
    run = _study("grr", "--appraiser-kind", "none", "--parts", "2", "--trials", "2", "--store", store, "--out", out)
    assert run.returncode in (0, 1), run.stderr
    assert {p.name for p in out.iterdir()} == {"readings.csv", "study.json", "msa.html"}
    study = json.loads((out / "study.json").read_text())
    verdicts = {name: f["grr"]["verdict"] for name, f in study["figures"].items()}
    assert all(f["grr"]["n_appraisers"] == 1 and f["grr"]["av"] == 0 for f in study["figures"].values())
    assert run.returncode == (0 if set(verdicts.values()) == {"acceptable"} else 1)
    html = (out / "msa.html").read_text()
    assert all(f'id="{name}"' in html for name in verdicts)
    budget = json.loads(_study("uncertainty", "--store", store, "--json").stdout)["figures"]
    accepted = {name for name, v in verdicts.items() if v != "not acceptable"}
    assert set(budget) == accepted
    for name in accepted:
        g = study["figures"][name]["grr"]
        expected = 2 * math.sqrt(g["ev"] ** 2 + g["av"] ** 2 + g["interaction_sd"] ** 2)
        assert budget[name]["expanded_u"] == pytest.approx(expected, rel=1e-9)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_golden_unit_read_off_its_baseline_flags_the_station(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'results.sqlite'}"
    for i in range(3):
        run = _study("golden", "--baseline-runs", "3", "--store", store, "--out", tmp_path / f"g{i}", "--json")
        assert run.returncode == 0, run.stderr
    # The same station now reads the golden unit 7.2 µm further back (as if its rail zero had slipped).
    run = _study(
        "golden",
        "--baseline-runs",
        "3",
        "--unit",
        "flange-plus8",
        "--store",
        store,
        "--out",
        tmp_path / "g3",
        "--json",
    )
    assert run.returncode == 1, run.stderr
    result = json.loads(run.stdout)
    assert "flange_offset_um" in result["drifting"]
    chart = result["figures"]["flange_offset_um"]["chart"]
    assert chart["beyond_limits"] == [3] and len(chart["values"]) == 4
