"""Measurements are judged against declared limits and survive any later fault (record rewritten atomically)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rig.bench.recording import RECORD_FILE, RunRecorder
from rig.config.limits import load_limits
from rig.devices.retry import RetryLog, with_retries
from rig.errors import ConfigError, DeviceLost, DeviceTimeout, FrameError
from rig.results.record import RunRecord, Verdict, utcnow


def _recorder(tmp_path: Path) -> RunRecorder:
    return RunRecorder.start(
        plan="signoff",
        limits=load_limits("signoff"),
        station="twin-01",
        station_file=None,
        unit_serial="XM12SU-000001",
        lens="summilux-m-35-f1.4-asph-2022",
        reports_dir=tmp_path,
        run_id="run-1",
    )


def test_values_are_judged_against_zone_limits(tmp_path: Path) -> None:
    rec = _recorder(tmp_path)
    assert rec.measure("s", "flange_offset_um", 4.99).verdict is Verdict.PASS
    assert rec.measure("s", "flange_offset_um", 5.01).verdict is Verdict.FAIL
    assert rec.measure("s", "flange_offset_um", -5.01).verdict is Verdict.FAIL
    # zone limits: corner is looser than centre
    assert rec.measure("s", "mtf50_cy_px", 0.20, zone="corner").verdict is Verdict.PASS
    assert rec.measure("s", "mtf50_cy_px", 0.20, zone="center").verdict is Verdict.FAIL
    # a binned readout looks its limits up under its qualifier first; the record keeps the plain zone
    rec.zone_qualifier = "bin4"
    binned = rec.measure("s", "mtf50_cy_px", 0.30, zone="center")
    assert (binned.verdict, binned.zone, binned.low) == (Verdict.FAIL, "center", 0.33)
    rec.zone_qualifier = None
    nan = rec.measure("s", "flange_offset_um", float("nan"))
    assert nan.verdict is Verdict.ERROR and nan.value is None and "finite" in (nan.error or "")
    assert rec.measure("s", "flange_offset_um", None, error="no edge").verdict is Verdict.ERROR


def test_undeclared_measurement_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="flange_um"):
        _recorder(tmp_path).measure("s", "flange_um", 1.0)


def test_a_steps_measurements_are_on_disk_when_it_ends(tmp_path: Path) -> None:
    """Writes are batched per step (one fsync'd rewrite when the step ends, issue #17), never lost after it."""
    from rig.results.reportdata import REPORT_DATA_FILE, Check, ChecksPlot

    rec = _recorder(tmp_path)
    rec.measure("flange", "flange_offset_um", 1.0)
    rec.measure("flange", "tilt_x_arcmin", 0.2)
    check = Check(name="a", expected="1", observed="1", ok=True)
    rec.add_plot(ChecksPlot(name="checks", title="checks", checks=[check]))
    on_disk = json.loads((tmp_path / "run-1" / RECORD_FILE).read_text())
    assert on_disk["measurements"] == [], "batched: nothing rewritten before the step ends"
    rec.step("flange", Verdict.PASS, started=utcnow(), ended=utcnow())
    on_disk = json.loads((tmp_path / "run-1" / RECORD_FILE).read_text())
    assert [m["name"] for m in on_disk["measurements"]] == ["flange_offset_um", "tilt_x_arcmin"]
    assert [s["name"] for s in on_disk["steps"]] == ["flange"]
    assert [p["name"] for p in json.loads((tmp_path / "run-1" / REPORT_DATA_FILE).read_text())["plots"]] == ["checks"]
    assert not list((tmp_path / "run-1").glob(".*.tmp")), "no temporary files left behind"


def test_a_step_records_its_wall_cpu_and_hardware_time(tmp_path: Path) -> None:
    """Hardware time is what the bench's clock (the twin's ledger) advanced since the previous step ended."""
    from datetime import timedelta

    readings = iter([100.0, 112.5, 113.0])
    rec = _recorder(tmp_path)
    rec.attach_hardware_clock(lambda: next(readings))
    t0 = utcnow()
    first = rec.step("lens_detection", Verdict.PASS, started=t0, ended=t0 + timedelta(seconds=2.25))
    second = rec.step("flange", Verdict.PASS, started=t0, ended=t0 + timedelta(seconds=1))
    assert (first.wall_s, first.hardware_s) == (2.25, 12.5)
    assert (second.wall_s, second.hardware_s) == (1.0, 0.5)
    assert first.cpu_s is not None and first.cpu_s >= 0
    blind = _recorder(tmp_path / "real").step("flange", Verdict.PASS, started=t0, ended=t0)
    assert blind.hardware_s is None, "a bench without a hardware clock records no hardware time"


def test_resume_keeps_completed_steps_and_drops_the_ones_to_redo(tmp_path: Path) -> None:
    rec = _recorder(tmp_path)
    rec.measure("lens_detection", "lens_detected", 1.0)
    rec.step("lens_detection", Verdict.PASS, started=utcnow(), ended=utcnow())
    rec.measure("flange", "flange_offset_um", 1.0)
    rec.step("flange", Verdict.ERROR, started=utcnow(), ended=utcnow(), error="DeviceLost: phone")
    resumed = RunRecorder.resume(tmp_path / "run-1", load_limits("signoff"), redo_steps=["flange"])
    assert [m.name for m in resumed.record.measurements] == ["lens_detected"]
    assert resumed.completed_steps() == {"lens_detection"}
    assert RunRecord.load(tmp_path / "run-1" / RECORD_FILE).measurements[0].name == "lens_detected"


def test_final_verdict_error_beats_fail_beats_pass(tmp_path: Path) -> None:
    limits = tmp_path / "two.toml"
    limits.write_text(
        'revision = "2026-11-A"\n'
        '[flange_offset_um]\nunit = "um"\nlow = -5.0\nhigh = 5.0\n[tilt_x_arcmin]\nunit = "arcmin"\nhigh = 1.5\n'
    )
    rec = _recorder(tmp_path)
    rec.limits = load_limits(limits)
    rec.measure("a", "flange_offset_um", 1.0)
    rec.measure("b", "tilt_x_arcmin", 0.2)
    assert rec.finish() is Verdict.PASS
    rec.measure("b", "tilt_x_arcmin", 9.0)
    assert rec.finish() is Verdict.FAIL
    rec.step("c", Verdict.ERROR, started=utcnow(), ended=utcnow(), error="stage lost")
    assert rec.finish() is Verdict.ERROR


def test_retries_are_bounded_logged_and_reconnect_between_attempts() -> None:
    calls: list[str] = []
    log = RetryLog()

    def flaky() -> str:
        calls.append("try")
        if len(calls) < 3:
            raise FrameError("truncated DNG")
        return "frame"

    reconnects: list[str] = []
    assert (
        with_retries(
            flaky,
            what="capture",
            log_to=log,
            attempts=3,
            backoff_s=0.001,
            before_retry=lambda exc: reconnects.append(type(exc).__name__),
        )
        == "frame"
    )
    assert log.count == 2 and "truncated DNG" in log.events[0]
    assert reconnects == ["FrameError", "FrameError"]

    def always_lost() -> None:
        raise DeviceLost("phone gone")

    with pytest.raises(DeviceLost):
        with_retries(always_lost, what="capture", log_to=log, attempts=2, backoff_s=0.001)

    def timeout() -> None:
        raise DeviceTimeout("slow")

    # only the listed errors are retried
    with pytest.raises(DeviceTimeout):
        with_retries(timeout, what="x", log_to=RetryLog(), attempts=5, backoff_s=0.001, retry_on=(FrameError,))
