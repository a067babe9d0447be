"""What a finished run keeps of its raw captures (issue #14 scope 7): the policy, and a real sign-off under it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from rig.bench.recording import RunRecorder
from rig.bench.retention import apply_retention, captures_to_drop
from rig.config.limits import load_limits
from rig.results.record import RunRecord, Verdict, utcnow
from rig.spec.types import CaptureRetention

PASSING_SIGNOFF_BUDGET_BYTES = 20 * 1024 * 1024  # the bound for a passing sign-off with default retention


def _run(tmp_path: Path, flange_um: float) -> RunRecorder:
    rec = RunRecorder.start(
        plan="signoff",
        limits=load_limits("signoff"),
        station="twin-01",
        station_file=None,
        unit_serial="XM12SU-000001",
        lens=None,
        reports_dir=tmp_path,
        run_id="r",
    )
    for name in ("0001-focus.dng", "0002-focus.dng", "0003-flat.dng", "0003-flat.png"):
        rec.save_file(f"captures/{name}", b"raw")
    t = utcnow()
    rec.measure("flange_alignment", "flange_offset_um", flange_um, captures=["captures/0001-focus.dng"])
    rec.measure("flange_alignment", "tilt_x_arcmin", 0.1, captures=["captures/0002-focus.dng"])
    rec.step("flange_alignment", Verdict.PASS, started=t, ended=utcnow())
    rec.record.verdict = rec.record.final_verdict()
    return rec


def test_failed_keeps_exactly_the_raws_behind_a_failure_and_what_a_broken_run_left_unexplained(tmp_path: Path) -> None:
    rec = _run(tmp_path, flange_um=9.0)  # outside ±5 µm: FAIL; the run also misses declared figures (ERROR)
    assert rec.record.verdict is not Verdict.PASS
    # the FAIL's frame stays; 0003 is named by no measurement and the run did not pass: kept to explain it
    assert captures_to_drop(rec.record, rec.run_dir, CaptureRetention.FAILED) == ["captures/0002-focus.dng"]
    assert captures_to_drop(rec.record, rec.run_dir, CaptureRetention.ALL) == []
    assert captures_to_drop(rec.record, rec.run_dir, CaptureRetention.NONE) == [
        "captures/0001-focus.dng",
        "captures/0002-focus.dng",
        "captures/0003-flat.dng",
    ]


def test_a_passing_run_keeps_no_raw_but_its_thumbnails_and_the_record_names_what_went(tmp_path: Path) -> None:
    rec = _run(tmp_path, flange_um=0.5)
    rec.record.verdict = Verdict.PASS  # as if every declared figure had passed
    dropped = apply_retention(rec.record, rec.run_dir, CaptureRetention.FAILED)
    assert dropped == ["captures/0001-focus.dng", "captures/0002-focus.dng", "captures/0003-flat.dng"]
    assert sorted(p.name for p in (rec.run_dir / "captures").iterdir()) == ["0003-flat.png"]
    assert rec.record.capture_retention is CaptureRetention.FAILED and rec.record.captures_dropped == dropped


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_passing_signoff_with_the_default_retention_leaves_under_20_mb(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "rig", "signoff", "--quiet", "--reports", str(tmp_path), "--run-id", "keep"],
        capture_output=True,
        text=True,
        timeout=550,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    run_dir = tmp_path / "keep"
    size = sum(p.stat().st_size for p in run_dir.rglob("*") if p.is_file())
    assert size <= PASSING_SIGNOFF_BUDGET_BYTES, f"{size / 2**20:.1f} MiB"
    record = RunRecord.load(run_dir / "record.json")
    assert record.capture_retention is CaptureRetention.FAILED and len(record.captures_dropped) > 20
    assert not list(run_dir.glob("captures/*.dng")) and list(run_dir.glob("captures/*.png"))
    assert (run_dir / "report.html").is_file()
