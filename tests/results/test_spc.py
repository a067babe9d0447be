"""SPC figures against an independent pandas computation on the same runs, and against known laws."""

from __future__ import annotations

import json
import math
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rig.cli import main
from rig.results.record import Verdict
from rig.results.spc import D2_SPAN2, capability, compute_spc, control_charts, cpk
from rig.results.store import open_store
from tests.results.factory import BASE_TIME, make_fleet

UNITS = 120
REL = 1e-12  # same arithmetic on the same rows: only summation order can differ


@pytest.fixture(scope="module")
def fleet_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list]:
    runs = make_fleet(np.random.default_rng(7), units=UNITS)
    url = f"sqlite:///{tmp_path_factory.mktemp('spc') / 'results.sqlite'}"
    with open_store(url) as store:
        for run in runs:
            store.add_run(run)
    return url, runs


def _truth_frame(runs: list) -> pd.DataFrame:
    # Built straight from the records, not through the store or rig.results.tables.
    rows = [
        {
            "run_id": r.run_id,
            "started": r.started,
            "name": m.name,
            "zone": m.zone or "",
            "value": m.value,
            "low": m.low,
            "high": m.high,
            "verdict": m.verdict.value,
            "seq": i,
        }
        for r in runs
        for i, m in enumerate(r.measurements)
    ]
    return pd.DataFrame(rows).sort_values(["started", "run_id", "seq"], kind="stable")


def test_yield_and_first_pass_yield(fleet_store: tuple[str, list]) -> None:
    url, runs = fleet_store
    with open_store(url) as store:
        result = compute_spc(store.runs(plan="signoff"), store.measurements(plan="signoff"), charts=False)
    passed = sum(r.verdict is Verdict.PASS for r in runs)
    firsts = {}
    for r in sorted(runs, key=lambda r: (r.started, r.run_id)):
        firsts.setdefault(r.unit_serial, r)
    y = result.yields
    assert (y.runs, y.passed_runs, y.units) == (len(runs), passed, UNITS)
    assert y.first_pass_units == sum(r.verdict is Verdict.PASS for r in firsts.values())
    assert 0 < y.first_pass_yield_frac < 1 and y.yield_frac == pytest.approx(passed / len(runs), rel=REL)
    # reworked units pass on their second run more often than not, so the yield counts them twice
    assert len(runs) > UNITS


def test_pareto_counts_failing_runs_per_measurement(fleet_store: tuple[str, list]) -> None:
    url, runs = fleet_store
    with open_store(url) as store:
        result = compute_spc(store.runs(), store.measurements(), charts=False)
    truth = _truth_frame(runs)
    expect = truth[truth["verdict"] == "FAIL"].groupby("name")["run_id"].nunique().sort_values(ascending=False)
    got = result.pareto.set_index("cause")["failed_runs"]
    assert got.to_dict() == expect.to_dict() and got.is_monotonic_decreasing
    assert result.pareto["cumulative_share"].iloc[-1] == pytest.approx(1.0, rel=REL)


def test_capability_equals_an_independent_pandas_computation(fleet_store: tuple[str, list]) -> None:
    url, runs = fleet_store
    with open_store(url) as store:
        got = compute_spc(store.runs(), store.measurements(), charts=False).capability
    truth = _truth_frame(runs)
    truth = truth[truth["verdict"].isin(["PASS", "FAIL"])]
    grouped = truth.groupby(["name", "zone"])["value"]
    expect = pd.DataFrame(
        {
            "n": grouped.size(),
            "mean": grouped.mean(),
            "sigma": grouped.std(ddof=1),
            "sigma_within": grouped.apply(lambda v: v.diff().abs().mean() / 1.128),
            "low": truth.groupby(["name", "zone"])["low"].last(),
            "high": truth.groupby(["name", "zone"])["high"].last(),
        }
    )
    mu, sw, lo, hi = expect["mean"], expect["sigma_within"], expect["low"], expect["high"]
    expect["cpk"] = pd.concat([(hi - mu) / (3 * sw), (mu - lo) / (3 * sw)], axis=1).min(axis=1)  # skips NaN side
    got = got.assign(zone=got["zone"].fillna("")).set_index(["name", "zone"]).sort_index()
    assert list(got.index) == list(expect.index)
    for col in ("n", "mean", "sigma", "sigma_within", "cpk"):
        np.testing.assert_allclose(got[col].to_numpy(float), expect[col].to_numpy(float), rtol=REL, err_msg=col)
    # one-sided specs get a one-sided index: t_stop has only a high limit
    t_stop = got.loc[("t_stop", "")]
    assert pd.isna(t_stop["low"])
    assert t_stop["cpk"] == pytest.approx((1.6 - t_stop["mean"]) / (3 * t_stop["sigma_within"]), rel=REL)


def test_cpk_and_control_limits_recover_a_known_process() -> None:
    # N(μ=10, σ=0.5) against [8, 13]: Cpk = min(3, 2) / 1.5 = 4/3. n = 4000 puts σ̂ within ~1.5 % (1 SE);
    # 5 % is > 3 SE of the moving-range estimate.
    rng = np.random.default_rng(11)
    n, mu, sigma, low, high = 4000, 10.0, 0.5, 8.0, 13.0
    values = rng.normal(mu, sigma, n)
    frame = pd.DataFrame(
        {
            "run_id": [f"r{i}" for i in range(n)],
            "name": "x_mm",
            "zone": None,
            "value": values,
            "unit": "mm",
            "low": low,
            "high": high,
            "verdict": "PASS",
        }
    )
    row = capability(frame).iloc[0]
    assert row["cpk"] == pytest.approx(min(high - mu, mu - low) / (3 * sigma), rel=0.05)
    assert row["sigma_within"] == pytest.approx(sigma, rel=0.05)
    chart = control_charts(frame)[0]
    assert chart.ucl == pytest.approx(mu + 3 * sigma, abs=0.1) and chart.lcl == pytest.approx(mu - 3 * sigma, abs=0.1)
    # beyond ±3σ: 0.27 % of a normal law → 10.8 expected of 4000; Poisson 3 SE ≈ 10
    assert 1 <= len(chart.out_of_control) <= 21
    # a step change of 5σ after point 3000 is flagged at once
    shifted = frame.assign(value=np.where(np.arange(n) >= 3000, values + 5 * sigma, values))
    flagged = control_charts(shifted)[0].out_of_control
    assert (flagged >= 3000).sum() > 100
    assert math.isnan(cpk(1.0, 0.0, 0.0, 2.0)) and math.isnan(cpk(1.0, 0.1, None, None))
    assert math.isclose(D2_SPAN2, 2 / math.sqrt(math.pi), abs_tol=1e-3)  # E|X1 − X2| = 2σ/√π for a normal law


def test_rig_spc_prints_json_and_writes_its_page(
    fleet_store: tuple[str, list], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, runs = fleet_store
    since = BASE_TIME + timedelta(minutes=10 * (UNITS // 2))
    code = main(
        ["spc", "--store", url, "--plan", "signoff", "--since", since.isoformat(), "--out", str(tmp_path), "--json"]
    )
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    selected = [r for r in runs if r.started >= since]
    assert summary["runs"] == len(selected)
    assert summary["yield"] == pytest.approx(sum(r.verdict is Verdict.PASS for r in selected) / len(selected))
    html = (tmp_path / "spc.html").read_text(encoding="utf-8")
    assert html.count("data:image/png;base64,") == len(summary["capability"]) + bool(summary["pareto"])
    table = pd.read_csv(tmp_path / "spc_capability.csv")
    assert len(table) == len(summary["capability"]) == 9


def test_rig_spc_rejects_a_bad_date(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["spc", "--since", "2026-13-01"])
    assert exc.value.code == 2
    assert "--since: '2026-13-01': expected an ISO 8601 date" in capsys.readouterr().err


def test_capability_is_withheld_below_the_minimum_n() -> None:
    from rig.results.spc import MIN_CAPABILITY_N

    n = MIN_CAPABILITY_N - 1
    frame = pd.DataFrame(
        {"run_id": [f"r{i}" for i in range(n)], "name": "x_mm", "zone": None, "value": np.linspace(9, 11, n),
         "unit": "mm", "low": 8.0, "high": 13.0, "verdict": "PASS"}
    )  # fmt: skip
    row = capability(frame).iloc[0]
    assert math.isnan(row["cpk"]) and math.isnan(row["ppk"]) and row["note"].startswith("n too small")
    assert row["mean"] == pytest.approx(10.0)  # the other figures stay


def test_rig_spc_refuses_unknown_names_and_overwrites_and_prints_at_resolution(
    fleet_store: tuple[str, list], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, _ = fleet_store
    assert main(["spc", "--store", url, "--plan", "signof", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--plan 'signof': not in the store; known: signoff" in err
    assert not (tmp_path / "spc.html").exists()
    assert main(["spc", "--store", url, "--plan", "signoff", "--out", str(tmp_path), "--no-charts"]) == 0
    out = capsys.readouterr().out  # captured: not a terminal, so plain tab-separated lines
    capability_rows = [line.split("\t") for line in out.splitlines() if line.count("\t") >= 10]
    header = capability_rows[0]
    assert header[:4] == ["measurement", "zone", "unit", "n"]
    at = {name: header.index(name) for name in ("mean", "σ", "low", "high", "Cpk", "Ppk")}
    table = pd.read_csv(tmp_path / "spc_capability.csv")
    html = (tmp_path / "spc.html").read_text(encoding="utf-8")
    for row in capability_rows[1:]:
        (match,) = table[(table["name"] == row[0]) & (table["zone"].fillna("") == row[1])].to_dict("records")
        decimals = len(row[at["mean"]].partition(".")[2])
        # the mean rounded at the row's resolution: whole, fixed point, never cut
        assert float(row[at["mean"]]) == round(match["mean"], decimals)
        assert len(row[at["σ"]].partition(".")[2]) == decimals
        assert row[at["Cpk"]] == f"{match['cpk']:.2f}" and row[at["Ppk"]] == f"{match['ppk']:.2f}"
        assert f'<td class="num">{row[at["mean"]]}</td><td class="num">{row[at["σ"]]}</td>' in html  # same text
    assert "…" not in out and "e-0" not in out and "e+0" not in out
    assert main(["spc", "--store", url, "--plan", "signoff", "--out", str(tmp_path), "--no-charts"]) == 2
    assert "spc.html exists; give --force" in capsys.readouterr().err
    assert main(["spc", "--store", url, "--plan", "signoff", "--out", str(tmp_path), "--no-charts", "--force"]) == 0
