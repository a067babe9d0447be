"""Verdicts that cannot lie (issue #13): declared means measured, no NaN limit, INFO is not PASS, MARGINAL bands,
a rejected calibration never reaches the phone, resumed errors are history.

The fast tests drive :class:`RunRecorder` directly against the shipped limit sets; the plan tests run the real
plans on the twin in a subprocess (``pytest -k`` for a partial sign-off, ``rig calibrate`` for a unit whose flange
is beyond the profile's range, with a spy that reads the twin phone's profile slot).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from rig.bench.recording import RunRecorder
from rig.calibrate import outputs
from rig.cli.plans import EXIT_REWORKED
from rig.config.lenses import load_lens_catalog
from rig.config.limits import load_limits
from rig.config.loader import FIXTURES_DIR
from rig.errors import ConfigError
from rig.report.html import render_html
from rig.report.junit import junit_tree
from rig.results.record import RunRecord, Verdict, utcnow

REPO = Path(__file__).resolve().parents[2]


def _recorder(tmp_path: Path, plan: str = "signoff") -> RunRecorder:
    return RunRecorder.start(
        plan=plan,
        limits=load_limits(plan),
        station="twin-01",
        station_file=None,
        unit_serial="XM12SU-000001",
        lens="summilux-m-35-f1.4-asph-2022",
        reports_dir=tmp_path,
        run_id="run-1",
    )


def _now() -> dict:
    return {"started": utcnow(), "ended": utcnow()}


# ---------------------------------------------------------------------------------------------- declared ⇒ measured
def test_a_run_that_recorded_only_some_declared_measurements_is_not_pass(tmp_path: Path) -> None:
    rec = _recorder(tmp_path)
    rec.measure("lens_detection", "lens_detected", 1.0)
    rec.step("lens_detection", Verdict.PASS, **_now())  # returned early: sensor_switch_latency_ms never recorded
    rec.step("flange_alignment", Verdict.ERROR, **_now(), error="DeviceLost: phone")
    assert rec.finish() is Verdict.ERROR
    declared = load_limits("signoff").limits
    missing = {m.key: m for m in rec.record.measurements if m.value is None}
    # every declared measurement but the one recorded, with each declared MTF zone
    expected = {n for n, lim in declared.items() if not lim.zones} - {"lens_detected"}
    expected |= {f"mtf50_cy_px[{z}]" for z in ("center", "mid", "corner")}
    assert set(missing) == expected
    assert all(m.verdict is Verdict.ERROR for m in missing.values())
    assert missing["sensor_switch_latency_ms"].error == (
        "declared, not measured: step lens_detection did not record it"
    )
    assert missing["flange_offset_um"].error.startswith(
        "declared, not measured: step flange_alignment ended ERROR before recording it (DeviceLost: phone)"
    )
    assert missing["zebra_iou"].error == "declared, not measured: step zebra did not run"
    # the step that silently skipped a measurement is ERROR too, and says what it left out
    (step,) = [s for s in rec.record.steps if s.name == "lens_detection"]
    assert step.verdict is Verdict.ERROR and "did not record sensor_switch_latency_ms" in (step.error or "")


def test_measurements_of_a_step_skipped_as_not_applicable_are_skip(tmp_path: Path) -> None:
    limits = tmp_path / "two.toml"
    limits.write_text(
        'revision = "2026-11-A"\n[zebra_iou]\nunit = "ratio"\nstep = "zebra"\nlow = 0.95\n'
        '[flange_offset_um]\nunit = "um"\nstep = "flange_alignment"\nlow = -5.0\nhigh = 5.0\n'
    )
    rec = _recorder(tmp_path)
    rec.limits = load_limits(limits)
    rec.measure("flange_alignment", "flange_offset_um", 1.0)
    rec.step("flange_alignment", Verdict.PASS, **_now())
    rec.step("zebra", Verdict.SKIP, **_now(), error="CapabilityMissing: no zebra on this phone")
    assert rec.finish() is Verdict.PASS
    (zebra,) = [m for m in rec.record.measurements if m.name == "zebra_iou"]
    assert zebra.verdict is Verdict.SKIP and "no zebra" in (zebra.error or "")


def test_a_deselected_step_makes_the_run_partial_and_never_pass(tmp_path: Path) -> None:
    limits = tmp_path / "one.toml"
    limits.write_text(
        'revision = "2026-11-A"\n[flange_offset_um]\nunit = "um"\nstep = "flange_alignment"\nlow = -5.0\nhigh = 5.0\n'
    )
    rec = _recorder(tmp_path)
    rec.limits = load_limits(limits)
    rec.measure("flange_alignment", "flange_offset_um", 1.0)
    rec.step("flange_alignment", Verdict.PASS, **_now())
    assert rec.finish(deselected=["sag"]) is Verdict.ERROR
    assert rec.record.partial and rec.record.deselected == ["sag"]


def test_a_nan_or_inf_measurement_is_error_never_pass_or_fail(tmp_path: Path) -> None:
    rec = _recorder(tmp_path)
    for bad in (math.nan, math.inf, -math.inf):
        m = rec.measure("flange_alignment", "flange_offset_um", bad)
        assert (m.verdict, m.value) == (Verdict.ERROR, None) and "finite" in (m.error or "")


# ---------------------------------------------------------------------------------------------- limits that cannot lie
STATION = FIXTURES_DIR / "stations" / "twin.toml"
UNIT = FIXTURES_DIR / "units" / "flange-plus8.toml"


def _with(path: Path, old: str, new: str, out: Path) -> Path:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{path} has no {old!r}"
    out.write_text(text.replace(old, new, 1), encoding="utf-8")
    return out


@pytest.mark.parametrize("bad", ["nan", "inf", "-inf"])
def test_nan_and_inf_in_station_and_unit_files_are_one_line_and_exit_2(
    bad: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from rig.cli import main

    station = _with(STATION, "luminance_cd_m2_at_max = 150.0", f"luminance_cd_m2_at_max = {bad}", tmp_path / "s.toml")
    assert main(["signoff", "--station", str(station), "--reports", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"{station}: light.luminance_cd_m2_at_max = {bad}" in err
    assert "expected a finite number" in err
    unit = _with(UNIT, "flange_offset_um = 8.0", f"flange_offset_um = {bad}", tmp_path / "u.toml")
    assert main(["signoff", "--unit", str(unit), "--reports", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"mount.flange_offset_um = {bad}" in err and "finite number" in err


@pytest.mark.parametrize("bad", ["nan", "inf"])
def test_nan_and_inf_in_limits_and_lens_files_are_refused(bad: str, tmp_path: Path) -> None:
    limits = _with(FIXTURES_DIR / "limits" / "signoff.toml", "low = -5.0 ", f"low = {bad} ", tmp_path / "signoff.toml")
    with pytest.raises(ConfigError, match=rf"flange_offset_um\.low = {bad}: expected a finite number"):
        load_limits(limits)
    marginal = _with(FIXTURES_DIR / "limits" / "signoff.toml", "marginal_pct = 10 ", f"marginal_pct = {bad} ",
                     tmp_path / "m.toml")  # fmt: skip
    with pytest.raises(ConfigError, match="marginal_pct"):
        load_limits(marginal)
    catalog = _with(FIXTURES_DIR / "lenses.toml", "focal_length_mm = 35.0", f"focal_length_mm = {bad}",
                    tmp_path / "lenses.toml")  # fmt: skip
    with pytest.raises(ConfigError, match=rf"focal_length_mm = {bad}: expected a finite number"):
        load_lens_catalog(catalog)


# ---------------------------------------------------------------------------------------------- INFO and MARGINAL
def test_marginal_band_and_info_in_record_report_and_junit(tmp_path: Path) -> None:
    rec = _recorder(tmp_path)
    inside = rec.measure("flange_alignment", "flange_offset_um", 3.9)  # ±5 µm, marginal_pct 10 → beyond ±4 µm
    marginal = rec.measure("flange_alignment", "tilt_x_arcmin", -1.4)  # ±1.5′ → beyond ±1.2′
    info = rec.measure("flange_alignment", "field_curvature_um", 4.0)  # no limit
    fail = rec.measure("decentre", "decentre_um", 41.0)
    assert (inside.verdict, inside.marginal) == (Verdict.PASS, False)
    assert (marginal.verdict, marginal.marginal) == (Verdict.PASS, True)
    assert (info.verdict, info.marginal) == (Verdict.INFO, False)
    assert (fail.verdict, fail.marginal) == (Verdict.FAIL, False)
    rec.finish()
    html = render_html(rec.record, None, tmp_path)
    rows = {r.split('title="', 1)[0]: r for r in html.split("<tr class=")[1:]}
    row_of = {name: next(r for r in html.split("<tr class=")[1:] if f">{name}</td>" in r) for name in
              ("flange_offset_um", "tilt_x_arcmin", "field_curvature_um")}  # fmt: skip
    assert rows and '"v-pass"' in row_of["flange_offset_um"] and '<span class="pill">PASS</span>' in row_of[
        "flange_offset_um"]  # fmt: skip
    assert '<span class="pill">MARGINAL</span>' in row_of["tilt_x_arcmin"]
    assert '<span class="pill">INFO</span>' in row_of["field_curvature_um"]
    assert "PASS" not in row_of["field_curvature_um"]
    assert "1 marginal" in html and "1 information" in html
    suite = junit_tree(rec.record).getroot().find("testsuite")
    assert suite is not None
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    props = {p.get("name"): p.get("value") for p in suite.findall("properties/property")}
    word = {n: props[f"{c.get('classname', '').split('.')[-1]}.{n}.verdict"] for n, c in cases.items()}
    assert word["tilt_x_arcmin"] == "MARGINAL" and word["flange_offset_um"] == "PASS"
    assert word["field_curvature_um"] == "INFO" and cases["field_curvature_um"].find("skipped") is not None
    skipped = int(suite.get("skipped", "-1"))
    assert skipped == sum(c.find("skipped") is not None for c in cases.values())  # INFO never counted as passed
    ET.tostring(suite)


def test_marginal_limits_are_validated(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[flange_offset_um]\nunit = "um"\nlow = -5.0\nhigh = 5.0\nmarginal_high = 6.0\n')
    with pytest.raises(ConfigError, match="marginal_high inside"):
        load_limits(bad)
    bad.write_text('[decentre_um]\nunit = "um"\nhigh = 40.0\nmarginal_pct = 10\n')
    with pytest.raises(ConfigError, match="marginal_pct with both low and high"):
        load_limits(bad)


# ---------------------------------------------------------------------------------------------- resume
def test_resumed_errors_are_history_not_current_errors(tmp_path: Path) -> None:
    limits = tmp_path / "one.toml"
    limits.write_text(
        'revision = "2026-11-A"\n[flange_offset_um]\nunit = "um"\nstep = "flange_alignment"\nlow = -5.0\nhigh = 5.0\n'
    )
    rec = _recorder(tmp_path)
    rec.limits = load_limits(limits)
    rec.step("flange_alignment", Verdict.ERROR, **_now(), error="DeviceLost: GRBL port closed")
    assert rec.finish() is Verdict.ERROR and rec.record.errors
    again = RunRecorder.resume(tmp_path / "run-1", load_limits(limits), ["flange_alignment"])
    again.measure("flange_alignment", "flange_offset_um", 1.0)
    again.step("flange_alignment", Verdict.PASS, **_now())
    assert again.finish() is Verdict.PASS
    record = RunRecord.load(tmp_path / "run-1" / "record.json")
    assert record.errors == [] and record.history and record.history[0].startswith("resumed at")
    (step,) = record.steps
    assert [(a.verdict, a.error) for a in step.attempts] == [(Verdict.ERROR, "DeviceLost: GRBL port closed")]
    html = render_html(record, None, tmp_path)
    assert "0 errors" in html and "Run errors" not in html
    assert "flange_alignment: attempt 1: ERROR DeviceLost: GRBL port closed, resumed: PASS" in html


# ---------------------------------------------------------------------------------------------- the plans, for real
def _rig(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rig", *args], capture_output=True, text=True, cwd=cwd, timeout=400, check=False
    )


def test_pytest_k_lens_detection_is_a_partial_run_and_not_pass(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--pyargs", "rig.plans.signoff", "-k", "lens_detection", "-p",
         "no:cacheprovider", "-q", "--reports", str(reports), "--run-id", "partial-1", "-n", "0"],
        capture_output=True, text=True, cwd=tmp_path, timeout=400, check=False,
    )  # fmt: skip
    record = RunRecord.load(reports / "partial-1" / "record.json")
    assert record.verdict is Verdict.ERROR, done.stdout[-2000:]
    assert record.partial and "flange_alignment" in record.deselected and "lens_detection" not in record.deselected
    measured = {m.name for m in record.measurements if m.value is not None}
    assert measured == {"lens_detected", "sensor_switch_latency_ms"}
    (flange,) = [m for m in record.measurements if m.name == "flange_offset_um"]
    assert (flange.verdict, flange.error) == (Verdict.ERROR, "declared, not measured: step flange_alignment deselected")
    assert record.headline == "ERROR"


SPY = textwrap.dedent(
    """
    import json, sys
    import pytest
    from rig.cli import main, plans

    SEEN = []

    class Spy(plans._Progress):
        @pytest.fixture(autouse=True)
        def _phone_profile_slot(self, twin):
            yield
            SEEN.append(twin.bench.state.profile is not None)

    plans._Progress = Spy
    code = main(sys.argv[1:])
    sys.stderr.write("SPY " + json.dumps({"code": code, "profile_after_each_step": SEEN}) + "\\n")
    sys.exit(code)
    """
)


def test_calibration_beyond_the_profile_range_is_reworked_never_written_and_says_so(tmp_path: Path) -> None:
    """cal-reshim (flange +50 µm) is beyond what a profile may store: the profile is not written to the phone, the
    bench re-shims the mount by its recipe and verifies it (issue #21), and the folder says REWORK, why and how."""
    reports, calibration = tmp_path / "reports", tmp_path / "calibration"
    done = subprocess.run(
        [sys.executable, "-c", SPY, "calibrate", "--unit", "cal-reshim", "--reports", str(reports),
         "--calibration-dir", str(calibration), "--run-id", "reshim-1"],
        capture_output=True, text=True, cwd=REPO, timeout=600, check=False,
    )  # fmt: skip
    spy = json.loads(done.stderr[done.stderr.rindex("SPY ") + 4 :].splitlines()[0])
    assert done.returncode == EXIT_REWORKED and spy["code"] == EXIT_REWORKED, done.stdout[-3000:] + done.stderr[-3000:]
    assert spy["profile_after_each_step"] and not any(spy["profile_after_each_step"]), "nothing written to the phone"
    folder = calibration / "XM12SU-000202"
    assert not (folder / outputs.PROFILE_FILE).exists() and (folder / outputs.REJECTED_PROFILE_FILE).is_file()
    assert not list(folder.glob(outputs.GAINMAP_FILE_PATTERN)), "no valid-named calibration file stays"
    decision = outputs.read_decision(folder / outputs.VERDICT_FILE)
    assert decision.verdict.value == "REWORK" and not decision.written_to_phone
    reason = decision.reasons[0]
    assert reason.startswith("re-shim the adapter: flange_offset_um +49.") and "profile range [-40, 40] um" in reason
    assert decision.rework and all(r.startswith("round ") and "screw " in r for r in decision.rework)
    lines = done.stdout.strip().splitlines()
    assert f"calibration folder {folder}: REWORK" in lines
    assert lines[-1] == f"REWORK XM12SU-000202 calibration {reports / 'reshim-1'}"
    record = RunRecord.load(reports / "reshim-1" / "record.json")
    assert record.verdict is Verdict.FAIL and record.headline == "REWORK"
    assert [m.key for m in record.measurements if m.verdict is Verdict.FAIL] == ["flange_offset_um"]
    skipped = {m.name for m in record.measurements if m.verdict is Verdict.SKIP}
    assert skipped == {"profile_readback_match", "flange_residual_um", "shading_residual_pct"}


def test_an_error_run_names_the_exact_resume_command() -> None:
    from rig.cli import build_parser
    from rig.cli.plans import EXIT_BY_HEADLINE, resume_command

    args = build_parser().parse_args(["signoff", "--unit", "fault-lost", "--reports", "/data/my reports"])
    assert resume_command(args, "20260101T000000-XM12SU-000001-signoff") == (
        "rig signoff --unit fault-lost --reports '/data/my reports' --resume 20260101T000000-XM12SU-000001-signoff"
    )
    levels = ("CERTIFIED", "CERTIFIED WITH LIMITATIONS", "NOT CERTIFIED")
    assert len({EXIT_BY_HEADLINE[w] for w in levels}) == 3 and EXIT_BY_HEADLINE["ERROR"] == 3
