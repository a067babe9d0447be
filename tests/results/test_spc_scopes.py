"""``rig spc`` scoped by plan, lens and limits revision, against an independent pandas computation (issue #13).

The store holds sign-off, calibration and certification runs of three lenses under two limits revisions, written
through the store API, with reruns of failed units (first-pass yield differs from yield) and runs that ended ERROR
before measuring anything. For each scope the CLI's ``--json`` figures must equal what pandas computes from the
raw rows read straight out of the SQLite file (sqlite3, not the store's code): same arithmetic on the same rows,
so only summation order can differ (relative tolerance 1e-12).
"""

from __future__ import annotations

import json
import sqlite3
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rig.cli import main
from rig.results.record import RunRecord, Verdict
from rig.results.spc import MIN_CAPABILITY_N
from rig.results.store import open_store
from tests.results.factory import BASE_TIME, SIGNOFF_SPEC, Spec, make_run

REL = 1e-12
D2 = 1.128  # Montgomery, Appendix VI: d2 for moving ranges of span 2

LENS_A = "summilux-m-35-f1.4-asph-2022"
LENS_B = "noctilux-m-50-f0.95-asph"
LENS_C = "apo-summicron-m-90-f2-asph"
OLD, NEW = "2026-10-A", "2026-11-A"

SIGNOFF = (*SIGNOFF_SPEC, Spec("field_curvature_um", "test_flange", None, "um", None, None, 2.0, 0.6))  # + an INFO
SIGNOFF_OLD = tuple(  # the October limits: flange ±6 µm, since tightened to ±5 µm
    Spec(s.name, s.step, s.zone, s.unit, -6.0, 6.0, s.mean, s.sigma) if s.name == "flange_offset_um" else s
    for s in SIGNOFF
)
CALIBRATION = (
    Spec("flange_offset_um", "flange_alignment", None, "um", -40.0, 40.0, 8.0, 14.0),
    Spec("decentre_um", "decentre", None, "um", None, 100.0, 35.0, 22.0),
    Spec("shading_gain_max", "shading", None, "x", 1.0, 4.0, 2.2, 0.5),
)
CERTIFICATION = (
    Spec("mtf50_cy_px", "sharpness", "f1.4:center", "cy/px", 0.28, None, 0.33, 0.02),
    Spec("mtf50_cy_px", "sharpness", "corner", "cy/px", 0.18, None, 0.21, 0.02),
    Spec("sag_shift_um", "sag", None, "um", None, 3.0, 0.9, 0.8),
)


# (plan, lens, revision, specs, units, ERROR-before-measuring runs)
SCOPES = (
    ("signoff", LENS_A, OLD, SIGNOFF_OLD, 30, 1),
    ("signoff", LENS_A, NEW, SIGNOFF, 40, 3),
    ("signoff", LENS_B, NEW, SIGNOFF, 12, 1),
    ("calibration", LENS_A, NEW, CALIBRATION, 27, 2),
    ("certification", LENS_B, NEW, CERTIFICATION, 10, 0),
    ("certification", LENS_C, NEW, CERTIFICATION, 26, 1),
)


def _runs() -> list[RunRecord]:
    """Every scope's runs, interleaved in time; a unit whose first run did not pass is run again a minute later.

    The old revision's runs all come first (limits change once, then stay).
    """
    rng = np.random.default_rng(13)
    jobs = []  # (scope index, unit index, ERROR before measuring)
    for k, (_plan, _lens, _rev, _specs, units, unmeasured) in enumerate(SCOPES):
        jobs += [(k, u, u < unmeasured) for u in range(units)]
    old = [j for j in jobs if SCOPES[j[0]][2] == OLD]
    new = [j for j in jobs if SCOPES[j[0]][2] == NEW]
    order = [old[i] for i in rng.permutation(len(old))] + [new[i] for i in rng.permutation(len(new))]
    runs = []
    for slot, (k, u, unmeasured) in enumerate(order):
        plan, lens, revision, specs, _units, _unmeasured = SCOPES[k]
        serial = f"XM12SU-{k:02d}{u:04d}"
        started = BASE_TIME + timedelta(minutes=10 * slot)
        common = {"plan": plan, "lens": lens, "limits_revision": revision, "specs": specs, "unit_serial": serial}
        first = make_run(rng, run_id=f"{serial}-1", started=started, error_rate=1.0 if unmeasured else 0.02, **common)
        runs.append(first)
        if first.verdict is not Verdict.PASS:
            runs.append(make_run(rng, run_id=f"{serial}-2", started=started + timedelta(minutes=1), **common))
    return runs


@pytest.fixture(scope="module")
def store_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("spc-scopes") / "results.sqlite"
    with open_store(path) as store:
        store.add_runs(_runs())
    return path


def _raw(path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The runs and measurements rows as stored, read with sqlite3 and pandas only."""
    with sqlite3.connect(path) as conn:
        runs = pd.read_sql_query(
            "SELECT run_id, plan, unit_serial, lens, limits_revision, started, verdict FROM runs", conn
        )
        meas = pd.read_sql_query(
            "SELECT m.run_id, m.seq, m.name, m.zone, m.value, m.low, m.high, m.verdict, r.started "
            "FROM measurements m JOIN runs r USING (run_id)",
            conn,
        )
    return runs, meas


def _expected(path: Path, plan: str, lens: str, revision: str | None) -> dict:
    """Every figure of one scope from the definitions in rig.results.spc's docstring, computed here anew."""
    runs, meas = _raw(path)
    runs = runs[(runs["plan"] == plan) & (runs["lens"] == lens)]
    if revision is not None:
        runs = runs[runs["limits_revision"] == revision]
    valued = set(meas.loc[meas["value"].notna(), "run_id"])
    unmeasured = runs[(runs["verdict"] == "ERROR") & ~runs["run_id"].isin(valued)]
    judged = runs[runs["verdict"].notna() & ~runs["run_id"].isin(set(unmeasured["run_id"]))]
    firsts = judged.sort_values(["started", "run_id"]).groupby("unit_serial").head(1)
    meas = meas[meas["run_id"].isin(set(judged["run_id"]))].sort_values(["started", "run_id", "seq"])
    failed = meas[meas["verdict"] == "FAIL"].groupby("name")["run_id"].nunique()
    values = meas[meas["verdict"].isin(["PASS", "FAIL", "INFO"]) & meas["value"].notna()].assign(
        zone=lambda f: f["zone"].fillna("")
    )
    g = values.groupby(["name", "zone"])
    cap = pd.DataFrame(
        {
            "n": g.size(),
            "mean": g["value"].mean(),
            "sigma": g["value"].std(ddof=1),
            "sigma_within": g["value"].apply(lambda v: v.diff().abs().mean() / D2),
            "low": g["low"].last(),
            "high": g["high"].last(),
            "fail_count": g["verdict"].apply(lambda v: int((v == "FAIL").sum())),
        }
    )
    mu, lo, hi, enough = cap["mean"], cap["low"], cap["high"], cap["n"] >= MIN_CAPABILITY_N
    for index, potential, s in (("cpk", "cp", cap["sigma_within"]), ("ppk", "pp", cap["sigma"])):
        cap[potential] = ((hi - lo) / (6 * s)).where(enough)
        cap[index] = pd.concat([(hi - mu) / (3 * s), (mu - lo) / (3 * s)], axis=1).min(axis=1).where(enough)
    return {
        "runs": len(judged),
        "passed_runs": int((judged["verdict"] == "PASS").sum()),
        "unmeasured_runs": len(unmeasured),
        "yield": (judged["verdict"] == "PASS").mean(),
        "units": len(firsts),
        "first_pass_units": int((firsts["verdict"] == "PASS").sum()),
        "first_pass_yield": (firsts["verdict"] == "PASS").mean(),
        "pareto": failed.to_dict(),
        "capability": cap.sort_index(),
    }


def _spc_json(path: Path, out: Path, capsys: pytest.CaptureFixture[str], *flags: str) -> dict:
    code = main(["spc", "--store", str(path), "--out", str(out), "--no-charts", "--json", *flags])
    assert code == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


def _assert_equal(got: dict, expect: dict) -> None:
    for key in ("runs", "passed_runs", "unmeasured_runs", "units", "first_pass_units"):
        assert got[key] == expect[key], key
    assert got["yield"] == pytest.approx(expect["yield"], rel=REL)
    assert got["first_pass_yield"] == pytest.approx(expect["first_pass_yield"], rel=REL)
    assert {p["cause"]: p["failed_runs"] for p in got["pareto"]} == expect["pareto"]
    counts = [p["failed_runs"] for p in got["pareto"]]
    assert counts == sorted(counts, reverse=True)
    if got["pareto"]:
        total = sum(counts)
        np.testing.assert_allclose([p["share"] for p in got["pareto"]], np.array(counts) / total, rtol=REL)
    cap = pd.DataFrame(got["capability"]).assign(zone=lambda f: f["zone"].fillna(""))
    cap = cap.set_index(["name", "zone"]).sort_index()
    want = expect["capability"]
    assert list(cap.index) == list(want.index)
    for col in ("n", "mean", "sigma", "sigma_within", "low", "high", "cp", "cpk", "pp", "ppk", "fail_count"):
        np.testing.assert_allclose(
            cap[col].astype(float).to_numpy(), want[col].astype(float).to_numpy(), rtol=REL, equal_nan=True, err_msg=col
        )


@pytest.mark.parametrize(
    ("plan", "lens", "revision"),
    [(plan, lens, revision) for plan, lens, revision, *_ in SCOPES],
    ids=[f"{plan}-{lens.split('-')[0]}{lens.split('-')[2]}-{revision}" for plan, lens, revision, *_ in SCOPES],
)
def test_each_scope_equals_an_independent_pandas_computation(
    store_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], plan: str, lens: str, revision: str
) -> None:
    got = _spc_json(store_file, tmp_path, capsys, "--plan", plan, "--lens", lens, "--revision", revision)
    assert (got["plan"], got["lens"], got["limits_revision"]) == (plan, lens, revision)
    expect = _expected(store_file, plan, lens, revision)
    _assert_equal(got, expect)
    assert expect["runs"] > 0
    capability = pd.DataFrame(got["capability"])
    small = capability["n"] < MIN_CAPABILITY_N
    # below the minimum n the indices are withheld and say so; at or above it they are there
    assert capability.loc[small, ["cp", "cpk", "pp", "ppk"]].isna().all().all()
    assert capability.loc[small, "note"].str.startswith("n too small").all()
    assert capability.loc[~small & capability["high"].notna(), "cpk"].notna().all()


def test_the_store_holds_scopes_both_sides_of_the_minimum_n(store_file: Path) -> None:
    # the parametrised test above must see both a withheld and a reported Cpk, or it proves half of what it says
    sizes = {(p, lens, r): _expected(store_file, p, lens, r)["capability"]["n"] for p, lens, r, *_ in SCOPES}
    assert (sizes[("signoff", LENS_B, NEW)] < MIN_CAPABILITY_N).all()
    assert (sizes[("signoff", LENS_A, NEW)] >= MIN_CAPABILITY_N).all()
    expect = _expected(store_file, "signoff", LENS_A, NEW)
    assert expect["unmeasured_runs"] == 3 and expect["first_pass_units"] < expect["passed_runs"]
    assert expect["pareto"]  # failures to rank


def test_the_default_scope_is_the_newest_revision_and_says_so(
    store_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    got = _spc_json(store_file, tmp_path, capsys, "--plan", "signoff", "--lens", LENS_A)
    assert got["limits_revision"] == NEW and got["limits_revisions_present"] == [OLD, NEW]
    assert f"limits revision {NEW} (newest)" in got["scope"] and f"also stored: {OLD}" in got["scope"]
    _assert_equal(got, _expected(store_file, "signoff", LENS_A, NEW))
    widen = ("--force", "--plan", "signoff", "--lens", LENS_A, "--all-revisions")
    pooled = _spc_json(store_file, tmp_path, capsys, *widen)
    assert pooled["limits_revision"] is None and "all limits revisions" in pooled["scope"]
    _assert_equal(pooled, _expected(store_file, "signoff", LENS_A, None))
    # pooled, the capability is judged against the newest limits: flange ±5, not October's ±6
    flange = next(c for c in pooled["capability"] if c["name"] == "flange_offset_um")
    assert (flange["low"], flange["high"]) == (-5.0, 5.0)


def test_the_printed_report_names_its_scope(
    store_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flags = ["--out", str(tmp_path), "--no-charts", "--plan", "calibration"]
    assert main(["spc", "--store", str(store_file), *flags]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first == f"SPC plan calibration, lens {LENS_A}, limits revision {NEW} (newest)"
    assert f"lens {LENS_A}, limits revision {NEW}" in (tmp_path / "spc.html").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("flags", "needles"),
    [
        (["--plan", "signof"], ["--plan 'signof': not in the store; known: calibration, certification, signoff"]),
        (["--plan", "signoff", "--revision", "2026-09-A"], ["--revision '2026-09-A'", f"known: {OLD}, {NEW}"]),
        (["--plan", "calibration", "--revision", OLD], [f"--revision '{OLD}': no calibration run of lens", NEW]),
        (["--lens", "elmar-m-24"], ["--lens 'elmar-m-24': not in the store; known: ", LENS_B]),
    ],
    ids=["plan", "revision", "revision-of-another-plan", "lens"],
)
def test_unknown_names_are_one_line_exit_2(
    store_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], needles: list[str]
) -> None:
    assert main(["spc", "--store", str(store_file), "--out", str(tmp_path), *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err
    for needle in needles:
        assert needle in err
    assert not (tmp_path / "spc.html").exists()


def test_revision_flags_exclude_each_other(store_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["spc", "--store", str(store_file), "--revision", NEW, "--all-revisions"])
    assert exc.value.code == 2 and "not allowed with argument" in capsys.readouterr().err


def test_terminal_pipe_and_page_show_the_same_figures_at_resolution(
    store_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import io

    from rich.console import Console

    from rig.cli.results import _print_spc
    from rig.report.spc_page import write_spc_outputs
    from rig.results.spc import capability_text, compute_spc, scope_runs

    with open_store(store_file) as store:
        every = store.runs()
        scope = scope_runs(every, plan="signoff", lens=LENS_B, all_lenses=False)
        result = compute_spc(scope.select(every), store.measurements(plan="signoff"), charts=False)
    paths = write_spc_outputs(result, tmp_path, scope=scope.describe())
    terminal = Console(file=io.StringIO(), force_terminal=True, width=400, color_system=None, highlight=False)
    _print_spc(terminal, result, scope.describe(), paths)
    shown = terminal.file.getvalue()
    html = paths["html"].read_text(encoding="utf-8")
    for row in result.capability.to_dict("records"):
        text = capability_text(row)
        assert row["n"] < MIN_CAPABILITY_N and text["cpk"] == ""  # withheld: no index printed anywhere
        for key in ("mean", "sigma", "low", "high"):
            assert text[key] == "" or text[key] in shown, (row["name"], key)
        cells = f'<td class="num">{text["mean"]}</td><td class="num">{text["sigma"]}</td>'
        assert cells in html and "e-0" not in text["sigma"]
    assert html.count('<td class="num dim" colspan="4">n too small</td>') == len(result.capability)
    assert "n too small" in shown
