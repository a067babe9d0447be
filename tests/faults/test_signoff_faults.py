"""Whole sign-offs on a faulty twin bench, through the real command line (issue #8). Slow: ~1 min per run.

``fault-recoverable``: faults the bench gets over by itself — each must show as a recorded retry, the run PASSes.
``fault-lost``: faults no retry fixes — the affected steps end as ERROR with their reason, nothing measured before
is lost, and ``rig signoff --resume`` on the repaired bench finishes the run with a complete record.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from rig.results.record import RunRecord, Verdict
from rig.results.store import open_store

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

EXIT = {"PASS": 0, "FAIL": 1, "ERROR": 3}
ALL_STEPS = {
    "lens_detection", "raw_bit_depth", "light_intake", "decentre", "zebra", "flange_alignment", "sharpness",
    "focus_assists", "sag", "settling", "remount",
}  # fmt: skip


def _signoff(reports: Path, *args: str) -> tuple[int, RunRecord, Path]:
    result = subprocess.run(
        [sys.executable, "-m", "rig", "signoff", "--quiet", "--reports", str(reports), *args],
        capture_output=True,
        text=True,
        timeout=500,
        check=False,
    )
    words = result.stdout.strip().splitlines()[-1].split()  # "VERDICT SERIAL PLAN RUN_DIR [resume with: …]"
    run_dir = Path(words[words.index("signoff") + 1])
    return result.returncode, RunRecord.load(run_dir / "record.json"), run_dir


def _stored(reports: Path, run_id: str) -> RunRecord:
    store = open_store(str(reports / "results.sqlite"))
    try:
        stored = store.get_run(run_id)
    finally:
        store.close()
    assert stored is not None
    return stored


def _key(record: RunRecord, steps: set[str] | None = None) -> list[tuple]:
    return sorted(
        (m.step, m.name, m.zone or "", m.value, m.verdict.value)
        for m in record.measurements
        if steps is None or m.step in steps
    )


def test_recoverable_faults_are_retried_recorded_and_the_run_passes(tmp_path: Path) -> None:
    code, record, _ = _signoff(tmp_path, "--unit", "fault-recoverable")
    assert code == EXIT["PASS"], [(s.name, s.error) for s in record.steps if s.verdict is not Verdict.PASS]
    assert {s.name for s in record.steps} == ALL_STEPS
    events = "; ".join(s.error or "" for s in record.steps)
    # one recorded retry per injected fault, each naming what went wrong
    for evidence in ("error:22", "CRC-32", "truncated", "ALARM:1 Hard limit", "connection lost", "reconnect phone"):
        assert evidence in events, evidence
    assert sum(s.retries for s in record.steps) >= 6
    assert _key(_stored(tmp_path, record.run_id)) == _key(record)


def test_unrecoverable_faults_end_steps_as_error_keep_measurements_and_resume_completes(tmp_path: Path) -> None:
    code, first, run_dir = _signoff(tmp_path, "--unit", "fault-lost")
    assert code == EXIT["ERROR"] and first.verdict is Verdict.ERROR
    steps = {s.name: s for s in first.steps}
    assert steps["lens_detection"].verdict is Verdict.PASS and steps["raw_bit_depth"].verdict is Verdict.PASS
    assert "light unstable" in (steps["light_intake"].error or "")
    assert "+4.00 %" in (steps["light_intake"].error or "")  # the 4 % flicker the unit file injects
    for name in ("decentre", "zebra"):
        assert steps[name].verdict is Verdict.ERROR and "lens changed mid-test" in (steps[name].error or "")
    for name in ("flange_alignment", "sharpness", "focus_assists", "sag", "settling", "remount"):
        assert steps[name].verdict is Verdict.ERROR and "stage lost" in (steps[name].error or ""), name
    completed = {name for name, s in steps.items() if s.verdict is not Verdict.ERROR}
    kept = _key(first, completed)
    assert len(kept) >= 4  # lens detection (2) and bit depth (2) were measured before the faults
    assert _key(_stored(tmp_path, first.run_id)) == _key(first)

    # the bench repaired (the golden unit, no faults): continue from the first step not completed
    code, resumed, resumed_dir = _signoff(tmp_path, "--resume", first.run_id, "--unit", "golden")
    assert resumed_dir == run_dir and resumed.run_id == first.run_id
    assert code == EXIT["PASS"], [(s.name, s.error) for s in resumed.steps if s.verdict is not Verdict.PASS]
    assert {s.name for s in resumed.steps} == ALL_STEPS
    assert all(s.verdict is Verdict.PASS for s in resumed.steps)
    assert _key(resumed, completed) == kept  # nothing recorded before the faults was lost or changed
    assert any("resumed at" in e for e in resumed.history)  # a resume is history, not a current error (issue #13)
    assert _key(_stored(tmp_path, first.run_id)) == _key(resumed)
