"""A read-only reports folder (issue #20), tested for real through :mod:`tests.faults.child` (an unprivileged
user, or a read-only bind mount):

- read-only before the run: pre-flight refuses it, exit 2, one stderr line naming the folder, nothing written;
- read-only mid-run (after the first step is recorded): the run stops, ERROR, exit 3, one stderr line naming the
  run folder; the ``record.json`` on disk is the last one saved, whole; a resume while it is still read-only is
  refused by pre-flight (exit 2, naming the run folder); once the folder takes writes again, ``--resume``
  finishes the run with every measurement of the completed steps unchanged.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rig.results.record import RunRecord, Verdict
from tests.faults.child import CHILD_TIMEOUT_S, MECHANISMS, Child, frozen, make_child, one_line

pytestmark = pytest.mark.timeout(900)

RUN_ID = "read-only-mid-run"
EXIT_INPUT = 2
EXIT_ERROR = 3


@pytest.fixture(params=list(MECHANISMS))
def child(request: pytest.FixtureRequest) -> Iterator[Child]:
    with make_child(request.param) as made:
        yield made


# --------------------------------------------------------------------------------------------- before the run
@pytest.mark.parametrize("where", ["the-folder", "its-parent"])
def test_a_read_only_reports_folder_is_refused_by_pre_flight(child: Child, where: str) -> None:
    read_only = child.folder("reports")
    reports = read_only if where == "the-folder" else read_only / "new"
    with frozen(child, read_only):
        done = child.run("signoff", "--quiet", "--reports", str(reports))
        assert done.returncode == EXIT_INPUT, (done.returncode, done.stdout, done.stderr)
        line = one_line(done.stderr)
        assert line.startswith(f"rig: error: {reports}: --reports is not a writable folder ("), line
        assert done.stdout == "", "no verdict line: the run never started"
        assert list(read_only.iterdir()) == [], "nothing written"


# --------------------------------------------------------------------------------------------- during the run
def _record(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):  # not there yet, or between an atomic rename and our read
        return None


def _wait_for_a_completed_step(proc: subprocess.Popen[str], record_path: Path) -> None:
    deadline = time.monotonic() + CHILD_TIMEOUT_S
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the run ended before its first step was recorded"
        data = _record(record_path)
        if data and data.get("steps") and data.get("measurements"):
            return
        time.sleep(0.02)
    raise AssertionError("no step recorded in time")


def _completed(record: RunRecord) -> dict[tuple[str, str, str | None], float | None]:
    done = {s.name for s in record.steps if s.verdict is not Verdict.ERROR}
    return {(m.step, m.name, m.zone): m.value for m in record.measurements if m.step in done}


@pytest.mark.slow
def test_a_reports_folder_made_read_only_mid_run_ends_error_and_keeps_the_measurements(child: Child) -> None:
    reports = child.folder("reports")
    run_dir = reports / RUN_ID
    record_path = run_dir / "record.json"
    args = ("signoff", "--quiet", "--reports", str(reports))
    proc = subprocess.Popen(
        child.argv(*args, "--run-id", RUN_ID), cwd=child.work, env=child.env(), text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        _wait_for_a_completed_step(proc, record_path)
        with frozen(child, run_dir):
            saved = record_path.read_bytes()  # what the run folder holds from here on
            out, err = proc.communicate(timeout=CHILD_TIMEOUT_S)
            assert proc.returncode == EXIT_ERROR, (proc.returncode, out, err)
            line = one_line(err)
            assert line.startswith(f"rig: bench error: run folder {run_dir}: "), line
            assert "not written (" in line and "record.json keeps the" in line, line
            last = out.strip().splitlines()[-1]
            assert last.startswith(f"ERROR XM12SU-000001 signoff {run_dir}"), last
            assert last.endswith(f"--resume {RUN_ID}"), last
            assert record_path.read_bytes() == saved, "the last record saved stays whole"
            # still read-only: a resume is refused by pre-flight, before any device moves
            refused = child.run(*args, "--resume", RUN_ID)
            assert refused.returncode == EXIT_INPUT, (refused.stdout, refused.stderr)
            assert one_line(refused.stderr).startswith(f"rig: error: {run_dir}: --resume is not a writable folder")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=60)
    before = RunRecord.model_validate_json(saved)
    kept = _completed(before)
    assert kept, "the record held a completed step when the folder became read-only"
    # writable again: the resume finishes the run and publishes it; the completed steps are not measured again
    done = child.run(*args, "--resume", RUN_ID)
    assert done.returncode == 0, (done.stdout, done.stderr)
    final = RunRecord.load(record_path)
    assert final.verdict is Verdict.PASS
    assert {k: v for k, v in _completed(final).items() if k in kept} == kept
    assert (run_dir / "report.html").is_file()
