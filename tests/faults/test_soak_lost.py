"""The soak's lost-measurement count covers the store and the published report, not only the record (issue #20)."""

from __future__ import annotations

from pathlib import Path

from rig.bench import runlock
from rig.bench.outputs import publish_run
from rig.bench.recording import RunRecorder
from rig.cli import main
from rig.cli.soak import _lost_in_report, _lost_in_store
from rig.config.limits import load_limits
from rig.results.record import Verdict, utcnow


def _finished_run(reports: Path) -> RunRecorder:
    rec = RunRecorder.start(
        plan="signoff",
        limits=load_limits("signoff"),
        station="twin-01",
        station_file=None,
        unit_serial="XM12SU-000001",
        lens=None,
        reports_dir=reports,
        run_id="r",
    )
    t = utcnow()
    rec.measure("flange_alignment", "flange_offset_um", 0.8)
    rec.measure("flange_alignment", "tilt_x_arcmin", 0.3)
    rec.step("flange_alignment", Verdict.PASS, started=t, ended=utcnow())
    rec.finish()
    runlock.release_all()
    return rec


def test_a_finished_run_killed_before_publishing_counts_every_measurement_lost(tmp_path: Path) -> None:
    rec = _finished_run(tmp_path)
    assert _lost_in_report(rec.run_dir) == len(rec.record.measurements)
    assert _lost_in_store(tmp_path, "r") == len(rec.record.measurements)


def test_a_published_run_loses_nothing(tmp_path: Path) -> None:
    rec = _finished_run(tmp_path)
    assert publish_run(rec, store_url=None, pdf=False) == []
    assert _lost_in_report(rec.run_dir) == 0
    assert _lost_in_store(tmp_path, "r") == 0
    (rec.run_dir / "report.html").unlink()  # a report lost afterwards is counted again
    assert _lost_in_report(rec.run_dir) == len(rec.record.measurements)


def test_rig_report_completes_a_finished_run_that_a_crash_left_out_of_the_store(tmp_path: Path) -> None:
    """The process died after the verdict and before publishing: `rig report RUN` writes the report and the
    store row (issue #20: the run's outputs are derived from the record, publishing is idempotent)."""
    rec = _finished_run(tmp_path)
    assert _lost_in_store(tmp_path, "r") == len(rec.record.measurements)
    for _ in range(2):  # twice: still exactly one row with the record's measurements
        assert main(["report", str(rec.run_dir), "--no-pdf", "--quiet"]) == 0
        assert _lost_in_report(rec.run_dir) == 0 and _lost_in_store(tmp_path, "r") == 0
