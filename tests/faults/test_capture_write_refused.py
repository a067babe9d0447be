"""A capture the run folder refuses ends the step that took it ERROR, with its measurements kept (issue #17).

The bench writes captures behind itself (stamping and fsyncing a frame is off the path of the next move), and
each step's end waits for them: a refused write must still end *that* step ERROR — not PASS with a frame missing
from the folder — and stop the run, keeping what was measured. The refusal is real: the resumed run's
``captures`` is a file, so the kernel refuses every capture (``mkdir`` of its folder: File exists) while
``record.json`` beside it is written as usual.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from rig.results.record import RunRecord, Verdict

pytestmark = pytest.mark.timeout(300)


def _signoff(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "--pyargs", "rig.plans.signoff", "-p", "no:cacheprovider", "-q", "-n", "0",
         "--reports", str(tmp_path / "reports"), *args],
        capture_output=True, text=True, cwd=tmp_path, timeout=280, check=False,
    )  # fmt: skip


def test_a_refused_capture_ends_its_step_error_and_keeps_its_measurements(tmp_path: Path) -> None:
    first = _signoff(tmp_path, "-k", "lens_detection", "--run-id", "refused-1")
    run_dir = tmp_path / "reports" / "refused-1"
    assert (run_dir / "record.json").is_file(), first.stdout[-2000:]
    captures = run_dir / "captures"
    for kept in captures.iterdir():
        kept.unlink()
    captures.rmdir()
    captures.write_bytes(b"")  # a file where the captures folder should be
    done = _signoff(tmp_path, "-k", "lens_detection or raw_bit_depth or light_intake", "--resume", "refused-1")
    record = RunRecord.load(run_dir / "record.json")
    steps = {s.name: s for s in record.steps}
    assert steps["lens_detection"].verdict is Verdict.PASS
    refused = steps["raw_bit_depth"]
    assert refused.verdict is Verdict.ERROR, done.stdout[-2000:]
    assert refused.error is not None and "RunStorageError" in refused.error
    assert "captures/0001-flat-12.dng not written (File exists)" in refused.error
    # what the step measured before its end is in the record; the run stopped there
    measured = {m.name for m in record.measurements if m.value is not None}
    assert {"raw_effective_bits", "raw_missing_codes"} <= measured
    assert "light_intake" not in steps
    assert record.verdict is Verdict.ERROR
