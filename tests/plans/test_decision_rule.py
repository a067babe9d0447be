"""The ISO 14253-1 decision rule in the limits file, applied by the run recorder with the station's U (issue #18).

Every case is computed by hand on the limits ``low = −5, high = 5, marginal_pct = 10`` (so the limit's own band is
|value| > 4) with U = 0.5 µm, the zones of ISO 14253-1:2017 §5 being:

* |v| ≤ 4.5 (inside by ≥ U): conformity proven → PASS; MARGINAL only for 4 < |v| ≤ 4.5 (the limit's band);
* 4.5 < |v| ≤ 5 (inside, within U): undecided → PASS + MARGINAL;
* 5 < |v| ≤ 5.5 (outside, within U): undecided → FAIL (the supplier has not proven conformity);
* |v| > 5.5 (outside by more than U): nonconformity proven → FAIL.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from rig.bench.recording import RunRecorder
from rig.config.limits import DecisionRule, load_limits
from rig.errors import ConfigError
from rig.results.decision import Decision, judge_with_uncertainty
from rig.results.record import RunRecord, Uncertainty, Verdict

U_UM = 0.5
STUDY = Uncertainty(
    expanded_u=U_UM, coverage_factor=2.0, study_id="grr-twin-01", study_started=datetime(2026, 11, 30, tzinfo=UTC)
)

LIMITS = """
revision = "2026-11-A"
decision_rule = "iso14253"

[flange_offset_um]
unit = "um"
step = "flange"
low = -5.0
high = 5.0
marginal_pct = 10

[tilt_x_arcmin]
unit = "arcmin"
step = "flange"
low = -1.5
high = 1.5
decision_rule = "simple"

[decentre_um]
unit = "um"
step = "decentre"
high = 40.0
"""


def _recorder(tmp_path: Path, text: str = LIMITS) -> RunRecorder:
    path = tmp_path / "limits.toml"
    path.write_text(text)
    return RunRecorder.start(
        plan="signoff",
        limits=load_limits(path),
        station="twin-01",
        station_file=None,
        unit_serial="XM12SU-000001",
        lens=None,
        reports_dir=tmp_path / "reports",
        run_id="run-1",
    )


@pytest.mark.parametrize(
    ("value", "verdict", "marginal", "decision"),
    [
        (0.0, Verdict.PASS, False, Decision.CONFORMS),
        (4.2, Verdict.PASS, True, Decision.CONFORMS),  # proven, but in the limit's own band (|v| > 4)
        (4.5, Verdict.PASS, True, Decision.CONFORMS),  # exactly U inside: proven (§5.2 is ≤)
        (4.8, Verdict.PASS, True, Decision.UNDECIDED),
        (-5.0, Verdict.PASS, True, Decision.UNDECIDED),  # on the limit: inside, not proven
        (5.2, Verdict.FAIL, False, Decision.UNDECIDED),
        (-5.5, Verdict.FAIL, False, Decision.UNDECIDED),  # exactly U outside: not yet proven bad
        (5.6, Verdict.FAIL, False, Decision.DOES_NOT_CONFORM),
        (-9.0, Verdict.FAIL, False, Decision.DOES_NOT_CONFORM),
    ],
)
def test_each_zone_of_the_iso_rule_maps_to_its_verdict(
    tmp_path: Path, value: float, verdict: Verdict, marginal: bool, decision: Decision
) -> None:
    rec = _recorder(tmp_path)
    rec.uncertainty = {"flange_offset_um": STUDY}
    m = rec.measure("flange", "flange_offset_um", value)
    assert (m.verdict, m.marginal, m.decision, m.decision_rule) == (verdict, marginal, decision, DecisionRule.ISO14253)
    assert m.uncertainty == STUDY and m.decision_note is None


def test_one_sided_limit_under_the_file_default(tmp_path: Path) -> None:
    rec = _recorder(tmp_path)
    rec.uncertainty = {"decentre_um": STUDY.model_copy(update={"expanded_u": 4.0})}
    # high 40 with U 4: ≤ 36 proven, 36–40 PASS + MARGINAL, 40–44 FAIL undecided, > 44 FAIL proven
    cases = {30.0: (Verdict.PASS, False), 37.0: (Verdict.PASS, True), 42.0: (Verdict.FAIL, False)}
    for value, expected in cases.items():
        m = rec.measure("decentre", "decentre_um", value)
        assert (m.verdict, m.marginal) == expected, value
    assert rec.measure("decentre", "decentre_um", 44.5).decision is Decision.DOES_NOT_CONFORM


def test_a_limit_may_keep_the_plain_rule_under_an_iso_file(tmp_path: Path) -> None:
    rec = _recorder(tmp_path)
    rec.uncertainty = {"tilt_x_arcmin": STUDY}
    m = rec.measure("flange", "tilt_x_arcmin", 1.4)  # within U of the limit, but judged plainly
    assert (m.verdict, m.marginal, m.decision, m.decision_rule) == (Verdict.PASS, False, None, DecisionRule.SIMPLE)
    assert m.uncertainty == STUDY  # U is shown all the same


def test_without_a_study_the_iso_rule_falls_back_to_the_limits_and_says_so(tmp_path: Path) -> None:
    rec = _recorder(tmp_path)
    inside, outside = rec.measure("flange", "flange_offset_um", 4.8), rec.measure("flange", "flange_offset_um", 5.2)
    assert (inside.verdict, inside.marginal, outside.verdict) == (Verdict.PASS, True, Verdict.FAIL)  # the 10 % band
    for m in (inside, outside):
        assert m.uncertainty is None and m.decision is None and m.decision_rule is DecisionRule.SIMPLE
        assert "no accepted MSA of flange_offset_um" in (m.decision_note or "")
        assert "plain limits" in (m.decision_note or "")


def test_without_a_study_and_without_the_rule_nothing_changes(tmp_path: Path) -> None:
    rec = _recorder(tmp_path, LIMITS.replace('decision_rule = "iso14253"\n', ""))
    m = rec.measure("flange", "flange_offset_um", 4.8)
    assert (m.verdict, m.marginal, m.uncertainty, m.decision, m.decision_note) == (Verdict.PASS, True, None, None, None)
    rec.flush()  # the record is written when a step ends
    saved = RunRecord.load(tmp_path / "reports" / "run-1" / "record.json").measurements[0]
    assert saved == m


def test_an_error_is_never_judged_by_the_rule(tmp_path: Path) -> None:
    rec = _recorder(tmp_path)
    rec.uncertainty = {"flange_offset_um": STUDY}
    m = rec.measure("flange", "flange_offset_um", None, error="no edge")
    assert (m.verdict, m.decision, m.decision_note) == (Verdict.ERROR, None, None)


def test_zone_figures_take_their_zone_s_uncertainty(tmp_path: Path) -> None:
    mtf = '\n[mtf50_cy_px]\nunit = "cy/px"\nstep = "sharpness"\nzones.center = { low = 0.30 }\n'
    rec = _recorder(tmp_path, LIMITS + mtf)
    rec.uncertainty = {"mtf50_cy_px[center]": STUDY.model_copy(update={"expanded_u": 0.02})}
    m = rec.measure("sharpness", "mtf50_cy_px", 0.31, zone="center")  # 0.30 + U = 0.32 > 0.31: not proven
    assert (m.verdict, m.marginal, m.decision) == (Verdict.PASS, True, Decision.UNDECIDED)


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        ('decision_rule = "guard-band"\n', ["decision_rule", "guard-band", '"iso14253"']),
        ('[x_um]\nunit = "um"\ndecision_rule = "iso"\n', ["x_um.decision_rule", "iso"]),
    ],
)
def test_a_bad_rule_names_the_file_field_and_value(tmp_path: Path, text: str, needles: list[str]) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('revision = "2026-11-A"\n' + text)
    with pytest.raises(ConfigError) as caught:
        load_limits(path)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message
    assert all(n in message for n in needles), message


def test_judgement_is_the_iso_decision_plus_our_vocabulary() -> None:
    # the pure function the recorder uses, on the one-sided low limit of a gain (low 1.7, U 0.05)
    judge = judge_with_uncertainty
    assert judge(1.80, 0.05, low=1.7, high=None, in_marginal_band=False).decision is Decision.CONFORMS
    undecided_in = judge(1.72, 0.05, low=1.7, high=None, in_marginal_band=False)
    assert (undecided_in.passed, undecided_in.marginal) == (True, True)
    undecided_out = judge(1.68, 0.05, low=1.7, high=None, in_marginal_band=False)
    assert (undecided_out.passed, undecided_out.decision) == (False, Decision.UNDECIDED)
    assert judge(1.64, 0.05, low=1.7, high=None, in_marginal_band=False).decision is Decision.DOES_NOT_CONFORM
