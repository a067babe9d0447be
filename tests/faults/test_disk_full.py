"""No space left when the run's report and store are written (issue #8): the run keeps every measurement.

The disk is really full: the run folder lives on a 2 MiB tmpfs mounted for the test and filled to the last byte,
so the kernel answers ENOSPC to the report writer and to SQLite exactly as a full factory disk would. (A
read-only folder would not do as root, who may write anywhere; mounting needs CAP_SYS_ADMIN, which the test
machines have — elsewhere the test is skipped with that reason.)
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from rig.bench.outputs import publish_run
from rig.bench.recording import RECORD_FILE, RunRecorder
from rig.config.limits import load_limits
from rig.results.record import RunRecord, Verdict, utcnow

pytestmark = pytest.mark.timeout(120)

TMPFS_SIZE = "2m"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE}", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()}): needs CAP_SYS_ADMIN")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def _fill(disk: Path) -> None:
    """Write a filler file until the kernel says ENOSPC, down to the last byte (unbuffered writes)."""
    fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        size = 1 << 16
        while size:
            try:
                os.write(fd, b"\0" * size)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                size //= 2
    finally:
        os.close(fd)


def test_a_full_disk_costs_the_report_and_the_store_but_no_measurement(small_disk: Path) -> None:
    recorder = RunRecorder.start(
        plan="signoff",
        limits=load_limits("signoff"),
        station="twin-01",
        station_file=None,
        unit_serial="XM12SU-000001",
        lens="summilux-m-35-f1.4-asph-2022",
        reports_dir=small_disk,
        run_id="full-disk-run",
    )
    started = utcnow()
    values = {"flange_offset_um": 0.8, "tilt_x_arcmin": 0.3, "tilt_y_arcmin": -0.2, "decentre_um": 7.2}
    for name, value in values.items():
        recorder.measure("flange_alignment", name, value)
    recorder.step("flange_alignment", Verdict.PASS, started=started, ended=utcnow())
    recorder.finish()
    run_dir = recorder.run_dir
    before = sorted(p.name for p in run_dir.iterdir())

    _fill(small_disk)
    problems = publish_run(recorder, store_url=f"sqlite:///{small_disk / 'results.sqlite'}", pdf=False)

    assert any(p.startswith("report not written") and "No space left" in p for p in problems), problems
    assert any(p.startswith("results store") for p in problems), problems
    # the record on disk is the last good one: every measurement, its verdict, nothing half-written beside it
    on_disk = RunRecord.load(run_dir / RECORD_FILE)
    assert {m.name: m.value for m in on_disk.measurements if m.value is not None} == values
    # the other declared figures were never measured: recorded as ERROR, so the run cannot be PASS (issue #13)
    assert on_disk.verdict is Verdict.ERROR and on_disk.verdict is recorder.record.verdict
    assert sorted(p.name for p in run_dir.iterdir()) == before
    # once space is back, the outputs can be written from that record
    os.unlink(small_disk / "filler")
    assert publish_run(recorder, store_url=f"sqlite:///{small_disk / 'results.sqlite'}", pdf=False) == []
    assert (run_dir / "report.html").is_file()
