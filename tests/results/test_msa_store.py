"""MSA studies in the results store (SQLite and a real PostgreSQL), the station's U, and the golden chart rules."""

from __future__ import annotations

import json
import math
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from rig.results import msa
from rig.results.msa_store import (
    StudyKind,
    golden_figure_row,
    grr_figure_row,
    load_run_uncertainty,
    station_uncertainty,
    store_study,
    type1_figure_row,
)
from rig.results.store import open_store
from tests.results.test_msa import aiag_study
from tests.results.test_store import store_url  # noqa: F401 - the SQLite/PostgreSQL fixture

T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


def _type1(bias: float) -> msa.Type1Study:
    z = np.random.default_rng(1).normal(size=30)
    readings = 1.0 + bias + 0.01 * (z - z.mean()) / z.std(ddof=1)
    return msa.type1_study(readings, reference=1.0, tolerance=1.0)


def test_studies_round_trip_and_give_the_station_its_uncertainty(store_url: str) -> None:  # noqa: F811
    grr = msa.gauge_rr(aiag_study(), tolerance=6.0)  # %GRR 27.9: conditionally acceptable → accepted
    type1 = _type1(bias=0.02)
    with open_store(store_url) as store:
        store_study(
            store,
            study_id="grr-1",
            kind=StudyKind.GRR,
            station="st-1",
            plan="signoff",
            started=T0,
            study={"figures": {"x_um": {"grr": grr}}},
            figures=[grr_figure_row("x_um", grr, msa.expanded_uncertainty(grr))],
        )
        store_study(
            store,
            study_id="t1-1",
            kind=StudyKind.TYPE1,
            station="st-1",
            plan="signoff",
            started=T0 + timedelta(hours=1),
            study={"figures": {"x_um": {"type1": type1}}},
            figures=[type1_figure_row("x_um", type1)],
        )
        rows = store.msa_figures(station="st-1")
        stored = json.loads(store.msa_study_json("grr-1"))
    assert list(rows["kind"]) == ["grr", "type1"]
    assert rows.iloc[0]["pct_grr"] == pytest.approx(grr.pct_grr, rel=1e-12)
    assert stored["figures"]["x_um"]["grr"]["anova"]["interaction_pooled"] is True
    budget = station_uncertainty(rows)["x_um"]
    expected = 2 * math.sqrt(grr.ev**2 + grr.av**2 + grr.interaction_sd**2 + type1.bias**2 / 3)
    assert budget.expanded_u == pytest.approx(expected, rel=1e-12)
    assert type1.bias == pytest.approx(0.02, abs=1e-12)


def test_a_not_acceptable_study_gives_no_uncertainty_and_the_latest_accepted_one_wins(store_url: str) -> None:  # noqa: F811
    accepted = msa.gauge_rr(aiag_study())
    noisy = aiag_study()
    noisy["value"] += np.random.default_rng(2).normal(0, 2.0, len(noisy))  # repeatability swamps the parts
    rejected = msa.gauge_rr(noisy)
    assert rejected.verdict is msa.GrrVerdict.NOT_ACCEPTABLE
    with open_store(store_url) as store:
        for i, result in enumerate((accepted, rejected)):
            store_study(
                store,
                study_id=f"grr-{i}",
                kind=StudyKind.GRR,
                station="st-2",
                plan="signoff",
                started=T0 + timedelta(days=i),
                study={},
                figures=[grr_figure_row("x_um", result, None)],
            )
        rows = store.msa_figures(station="st-2")
    assert list(rows["accepted"]) == [True, False]
    assert station_uncertainty(rows)["x_um"].repeatability_u == pytest.approx(accepted.ev, rel=1e-12)
    assert station_uncertainty(rows[rows["accepted"] == False]) == {}  # noqa: E712 - a pandas mask


def test_golden_rows_are_kept_per_station_in_time_order(store_url: str) -> None:  # noqa: F811
    with open_store(store_url) as store:
        for i, value in enumerate((0.8, 0.9, 0.7)):
            store_study(
                store,
                study_id=f"golden-{i}",
                kind=StudyKind.GOLDEN,
                station="st-3",
                plan="signoff",
                started=T0 + timedelta(minutes=i),
                study={},
                figures=[golden_figure_row("flange_offset_um", value, accepted=True)],
            )
        rows = store.msa_figures(station="st-3", kind=StudyKind.GOLDEN, name="flange_offset_um")
        other = store.msa_figures(station="elsewhere")
    assert list(rows["value"]) == [0.8, 0.9, 0.7]
    assert other.empty


# --------------------------------------------------------------------------------------------- golden chart


def test_golden_chart_flags_a_step_beyond_three_sigma_of_the_baseline() -> None:
    rng = np.random.default_rng(4)
    baseline = rng.normal(1.0, 0.05, 10)
    sigma = np.abs(np.diff(baseline)).mean() / 1.128
    in_control = msa.golden_chart([*baseline, baseline.mean() + 2 * sigma])
    assert not in_control.drifting and in_control.baseline_complete
    shifted = msa.golden_chart([*baseline, baseline.mean() + 3.5 * sigma])
    assert shifted.drifting and shifted.beyond_limits.tolist() == [10]
    assert shifted.ucl == pytest.approx(baseline.mean() + 3 * sigma, rel=1e-12)


def test_golden_chart_flags_eight_in_a_row_on_one_side() -> None:
    baseline = np.array([1.0, 1.1, 0.9, 1.05, 0.95, 1.0, 1.1, 0.9, 1.05, 0.95])
    centre = baseline.mean()
    creeping = [centre + 0.01] * 7
    assert not msa.golden_chart([*baseline, *creeping]).drifting
    chart = msa.golden_chart([*baseline, *creeping, centre + 0.01])
    assert chart.drifting and chart.run_rule.tolist()[-1] == len(baseline) + 7


def test_golden_chart_gives_no_verdict_while_the_baseline_is_incomplete() -> None:
    chart = msa.golden_chart([1.0, 5.0, 9.0], baseline_runs=10)
    assert not chart.baseline_complete and not chart.drifting
    with pytest.raises(msa.StudyInputError, match="baseline_runs = 1"):
        msa.golden_chart([1.0, 2.0], baseline_runs=1)


def test_a_run_gets_each_figure_s_u_with_the_studies_it_comes_from(tmp_path: Path) -> None:
    """What the run recorder reads at the start of a run (rig.bench.recording.RunRecorder.use_station_uncertainty)."""
    url = f"sqlite:///{tmp_path / 'results.sqlite'}"
    grr, type1 = msa.gauge_rr(aiag_study(), tolerance=6.0), _type1(bias=0.02)
    with open_store(url) as store:
        for study_id, kind, started, row in (
            ("grr-zone", StudyKind.GRR, T0, grr_figure_row("mtf50_cy_px[center]", grr, None)),
            ("t1-zone", StudyKind.TYPE1, T0 + timedelta(hours=1), type1_figure_row("mtf50_cy_px[center]", type1)),
            ("grr-other-station", StudyKind.GRR, T0, grr_figure_row("x_um", grr, None)),
        ):
            station = "st-9" if study_id == "grr-other-station" else "st-1"
            store_study(
                store, study_id=study_id, kind=kind, station=station, plan="signoff", started=started, study={},
                figures=[row],
            )  # fmt: skip
    figures, problem = load_run_uncertainty(url, "st-1")
    assert problem is None and set(figures) == {"mtf50_cy_px[center]"}  # keyed like MeasurementRecord.key
    u = figures["mtf50_cy_px[center]"]
    expected = 2 * math.sqrt(grr.ev**2 + grr.av**2 + grr.interaction_sd**2 + type1.bias**2 / 3)
    assert u.expanded_u == pytest.approx(expected, rel=1e-12) and u.coverage_factor == 2.0
    assert (u.study_id, u.bias_study_id, u.study_started) == ("grr-zone", "t1-zone", T0)
    assert u.source == "MSA grr-zone of 2026-11-02, bias from t1-zone"
    assert load_run_uncertainty(url, "st-without-studies") == ({}, None)


def test_without_a_store_a_run_has_no_u_and_an_unreadable_one_says_why(tmp_path: Path) -> None:
    assert load_run_uncertainty(str(tmp_path / "none.sqlite"), "st-1") == ({}, None)  # never created by asking
    assert not (tmp_path / "none.sqlite").exists()
    legacy = tmp_path / "legacy.sqlite"
    sqlite3.connect(legacy).close()  # an SQLite file without the MSA tables (a store from before them)
    figures, problem = load_run_uncertainty(str(legacy), "st-1")
    assert figures == {} and problem is not None and problem.startswith("MSA studies not read: ")
