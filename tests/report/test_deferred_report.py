"""The verdict first, the report after it (issue #17): the run folder says whether its report is complete.

``publish_run(defer_report=True)`` writes what the verdict needs (record, JUnit, CSV, the store row) and marks the
report PENDING; :func:`finish_pending_report` (what ``rig signoff`` runs after printing the verdict) and
:func:`complete_run` (``--resume`` of a finished run) write report.html, the Parquet table and the PDF and mark it
COMPLETE. The step table carries each step's hardware time beside its wall time.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from rig.bench.outputs import complete_run, finish_pending_report, publish_run
from rig.bench.recording import RECORD_FILE, RunRecorder
from rig.config.limits import load_limits
from rig.results.record import ReportState, Verdict, utcnow


def _finished_run(reports: Path) -> RunRecorder:
    rec = RunRecorder.start(
        plan="signoff",
        limits=load_limits("signoff"),
        station="twin-01",
        station_file=None,
        unit_serial="XM12SU-000001",
        lens="summilux-m-35-f1.4-asph-2022",
        reports_dir=reports,
        run_id="run-1",
    )
    readings = iter([0.0, 7.25])
    rec.attach_hardware_clock(lambda: next(readings))
    t0 = utcnow()
    rec.measure("flange_alignment", "flange_offset_um", 1.0)
    rec.step("flange_alignment", Verdict.PASS, started=t0, ended=t0 + timedelta(seconds=1.5))
    rec.finish()
    return rec


def _state(run_dir: Path) -> str | None:
    return json.loads((run_dir / RECORD_FILE).read_text())["report"]


def test_the_verdict_is_stored_before_the_report_and_the_folder_says_so(tmp_path: Path) -> None:
    rec = _finished_run(tmp_path)
    run_dir = rec.run_dir
    assert publish_run(rec, store_url=None, defer_report=True) == []
    assert _state(run_dir) == ReportState.PENDING.value
    assert (run_dir / "junit.xml").is_file() and (run_dir / "measurements.csv").is_file()
    assert not (run_dir / "report.html").exists() and not (run_dir / "report.pdf").exists()

    assert finish_pending_report(run_dir, pdf=False) == []
    assert _state(run_dir) == ReportState.COMPLETE.value
    html = (run_dir / "report.html").read_text()
    assert "hardware (s)" in html and ">7.25<" in html  # the step's hardware time beside its 1.50 s of wall
    assert (run_dir / "measurements.parquet").is_file()
    assert finish_pending_report(run_dir, pdf=False) == []  # nothing left to do: unchanged
    assert _state(run_dir) == ReportState.COMPLETE.value


def test_a_resume_of_a_run_that_died_with_its_report_pending_completes_it(tmp_path: Path) -> None:
    rec = _finished_run(tmp_path)
    publish_run(rec, store_url=None, defer_report=True)  # ... and the process is killed here
    assert complete_run(rec.run_dir, store_url=None, pdf=False) == []
    assert _state(rec.run_dir) == ReportState.COMPLETE.value
    assert (rec.run_dir / "report.html").is_file()
