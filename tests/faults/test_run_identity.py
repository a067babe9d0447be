"""Run identity and crash consistency (issues #13.7 and #20): unique run ids, exclusive run folders, one process
per run and per unit on a station, and a finished run whose outputs were lost completed by ``--resume``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from rig.bench import runlock
from rig.bench.preflight import plan_requirements
from rig.bench.recording import RunRecorder, new_run_id
from rig.cli import main
from rig.config.limits import load_limits
from rig.config.loader import FIXTURES_DIR
from rig.errors import ArgumentError, RunBusyError
from rig.results.record import RunRecord, Verdict, utcnow
from rig.results.store import open_store

SERIAL = "XM12SU-000001"
STATION = FIXTURES_DIR / "stations" / "twin.toml"


def test_run_ids_of_one_serial_in_one_second_are_unique() -> None:
    second = datetime(2026, 12, 1, 9, 0, 0, tzinfo=UTC)
    ids = {new_run_id(SERIAL, "signoff", second) for _ in range(5000)}
    assert len(ids) == 5000
    assert all(i.startswith(f"20261201T090000-{SERIAL}-signoff-") for i in ids)


def test_a_run_id_is_a_folder_name_not_a_path() -> None:
    for bad in ("../x", "a/b", ".hidden", "", "..", "x" * 300):
        with pytest.raises(ArgumentError):
            new_run_id(bad, "signoff", utcnow())


def _start(tmp_path: Path, run_id: str | None = None, serial: str = SERIAL) -> RunRecorder:
    return RunRecorder.start(
        plan="signoff",
        limits=load_limits("signoff"),
        station="twin-01",
        station_file=None,
        unit_serial=serial,
        lens=None,
        reports_dir=tmp_path,
        run_id=run_id,
    )


def test_a_run_folder_is_created_once(tmp_path: Path) -> None:
    _start(tmp_path, "r1")
    with pytest.raises(ArgumentError, match="already exists"):
        _start(tmp_path, "r1")


def _hold_lock_in_another_process(path: Path) -> subprocess.Popen[str]:
    code = (
        "import sys, time; from pathlib import Path; from rig.bench import runlock; "
        "runlock.acquire(Path(sys.argv[1]), 'test'); print('held', flush=True); time.sleep(120)"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True, start_new_session=True
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def _stop(proc: subprocess.Popen[str]) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


@pytest.mark.timeout(120)
def test_a_second_signoff_of_a_unit_being_signed_off_is_refused(tmp_path: Path, capsys) -> None:
    reports = tmp_path / "reports"
    owner = _hold_lock_in_another_process(runlock.unit_lock_path(reports, "twin-01", SERIAL))
    try:
        code = main(["signoff", "--station", str(STATION), "--reports", str(reports)])
    finally:
        _stop(owner)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert f"unit {SERIAL} on station twin-01 is in progress (pid {owner.pid} on " in err[0]
    assert not [p for p in reports.iterdir() if not p.name.startswith(".")], "nothing was written"


@pytest.mark.timeout(120)
def test_two_resumes_of_one_run_cannot_both_proceed(tmp_path: Path, capsys) -> None:
    reports = tmp_path / "reports"
    rec = _start(reports, "run-a")
    runlock.release_all()
    owner = _hold_lock_in_another_process(runlock.run_lock_path(reports, "run-a"))
    try:
        with pytest.raises(RunBusyError, match="run run-a is in progress"):
            RunRecorder.resume(rec.run_dir, load_limits("signoff"), [])
        code = main(["signoff", "--station", str(STATION), "--reports", str(reports), "--resume", "run-a"])
    finally:
        _stop(owner)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "run run-a is in progress" in err[0], err


def test_a_dead_owner_leaves_no_stale_lock(tmp_path: Path) -> None:
    path = runlock.unit_lock_path(tmp_path, "twin-01", SERIAL)
    _stop(_hold_lock_in_another_process(path))  # kill -9: the kernel drops the flock
    lock = runlock.acquire(path, "test")
    lock.release()


@pytest.mark.timeout(300)
def test_two_signoffs_started_together_one_runs_one_is_refused(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    cmd = [sys.executable, "-m", "rig", "signoff", "--quiet", "--station", str(STATION), "--reports", str(reports)]
    procs = [subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, start_new_session=True) for _ in range(2)]
    try:
        deadline = time.monotonic() + 240
        while all(p.poll() is None for p in procs) and time.monotonic() < deadline:
            time.sleep(0.2)
        refused = [p for p in procs if p.poll() is not None]
        assert refused, "neither process ended"
        assert refused[0].stderr is not None
        err = refused[0].stderr.read().strip().splitlines()
        assert refused[0].returncode == 2 and len(err) == 1, err
        assert f"unit {SERIAL} on station twin-01 is in progress" in err[0]
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=30)
    runs = [p for p in reports.iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert len(runs) <= 1, runs  # the winner's folder at most: never two writers in one folder


@pytest.mark.timeout(300)
def test_resume_completes_a_finished_run_whose_report_and_store_row_were_lost(tmp_path: Path, capsys) -> None:
    reports = tmp_path / "reports"
    rec = _start(reports, "done")
    t = utcnow()
    for step in plan_requirements("signoff").steps:
        rec.step(step, Verdict.PASS, started=t, ended=utcnow())
    rec.measure("flange_alignment", "flange_offset_um", 1.0)
    rec.finish()  # the verdict is saved; then the process "dies" before the report and the store row
    runlock.release_all()
    assert not (rec.run_dir / "report.html").exists()
    code = main(["signoff", "--station", str(STATION), "--reports", str(reports), "--resume", "done", "--quiet"])
    assert code == 0, capsys.readouterr().err
    assert (rec.run_dir / "report.html").is_file() and (rec.run_dir / "measurements.csv").is_file()
    with open_store(str(reports / "results.sqlite")) as store:
        assert store.count()["runs"] == 1
        stored = store.get_run("done")
    # the record declared more than it measured, so the resume re-measured those steps (issue #13) and then
    # published: the store holds exactly the record's measurements
    final = RunRecord.load(rec.run_dir / "record.json")
    assert stored is not None and [m.value for m in stored.measurements] == [m.value for m in final.measurements]
    first_count = store_count = None
    with open_store(str(reports / "results.sqlite")) as store:
        first_count = store.count()
    # publishing again is idempotent: still one row, same measurements
    code = main(["signoff", "--station", str(STATION), "--reports", str(reports), "--resume", "done", "--quiet"])
    assert code == 0
    with open_store(str(reports / "results.sqlite")) as store:
        store_count = store.count()
    assert store_count == first_count and store_count["runs"] == 1
    assert RunRecord.load(rec.run_dir / "record.json").verdict is Verdict.PASS
