"""A pipelined bench (issue #17): frame k is measured while frame k+1 is taken, with the serial bench's numbers.

Fast tests hold the pool to its contract (results in order, a fault raised in the step that submitted the work,
the same bits as inline) on frames with a known shift. The slow ones sign off the twin's golden unit through the
command line: pipelined and serial runs of the same unit and seed record bit-identical measurements, and a fault
injected while a step's analyses are in flight ends exactly that step as ERROR, ``--resume`` completing the run
with every earlier measurement unchanged.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from rig.bench.pipeline import MeasurementPool, PipelineMode, gather
from rig.bench.procedures import ShiftTracker, shifts_against
from rig.config.loader import FIXTURES_DIR
from rig.errors import MeasurementError
from rig.results.record import ReportState, RunRecord, Verdict

SHIFT_TOLERANCE_PX = 0.05
"""Registration of a pure translation of a smooth random texture is good to ~0.01 px; 0.05 px is the bench's
own resolution for sag and remount positions."""


@dataclass(frozen=True)
class _Frame:
    raw: np.ndarray


def _textured_frames(shifts_px: list[tuple[int, int]], *, seed: int = 3) -> tuple[_Frame, list[_Frame]]:
    """A reference crop of a smooth random texture and crops whose content moved by each (dx, dy) read-out px."""
    rng = np.random.default_rng(seed)
    big = ndimage.gaussian_filter(rng.normal(size=(640, 800)), 3.0)
    big = (200 + 600 * (big - big.min()) / np.ptp(big)).astype(np.uint16)
    y0, x0, h, w = 64, 64, 384, 512

    def crop(dx: int, dy: int) -> _Frame:  # content shifted by +dx, +dy: the crop window moves the other way
        return _Frame(big[y0 - dy : y0 - dy + h, x0 - dx : x0 - dx + w])

    return crop(0, 0), [crop(dx, dy) for dx, dy in shifts_px]


SHIFTS = [(0, 0), (4, -2), (-6, 8), (10, 2)]


def test_pool_results_come_in_submission_order_in_both_modes() -> None:
    for mode in PipelineMode:
        pool = MeasurementPool(mode=mode)
        try:
            assert pool.map(lambda x: x * x, range(20)) == [x * x for x in range(20)]
        finally:
            pool.close()


def test_a_fault_in_a_worker_is_raised_where_the_step_collects_it() -> None:
    """The exception leaves the pool only through result(): inside the step that collects it, as if inline."""
    release = threading.Event()
    pool = MeasurementPool(mode=PipelineMode.ON, workers=1)

    def fails() -> None:
        release.wait(5.0)
        raise MeasurementError("no textured patch")

    try:
        failing = pool.submit(fails)
        queued = pool.submit(lambda: "never needed")
        release.set()
        with pytest.raises(MeasurementError, match="no textured patch"):
            gather([failing, queued])
        assert queued.cancelled() or queued.done()  # the rest of a failed step's work is dropped, not leaked
    finally:
        pool.close()
    inline = MeasurementPool(mode=PipelineMode.OFF).submit(fails)
    with pytest.raises(MeasurementError, match="no textured patch"):
        inline.result()


def test_registration_in_the_pool_gives_the_serial_bits_and_the_true_shifts() -> None:
    reference, frames = _textured_frames(SHIFTS)
    serial = shifts_against(reference, frames)  # type: ignore[arg-type]
    pool = MeasurementPool(mode=PipelineMode.ON)
    try:
        tracker = ShiftTracker(pool, reference)  # type: ignore[arg-type]
        for frame in frames:
            tracker.add(frame)  # type: ignore[arg-type]
        pipelined = tracker.shifts()
        first_is_reference = ShiftTracker(pool)
        for frame in [reference, *frames]:
            first_is_reference.add(frame)  # type: ignore[arg-type]
        from_first = first_is_reference.shifts()
    finally:
        pool.close()
    assert pipelined.tobytes() == serial.tobytes(), "pipelined and serial registration differ in their bits"
    assert from_first[1:].tobytes() == serial.tobytes()
    assert np.abs(from_first[0]).max() < SHIFT_TOLERANCE_PX  # the reference against itself
    np.testing.assert_allclose(serial, np.asarray(SHIFTS, dtype=float), atol=SHIFT_TOLERANCE_PX)


def test_a_burst_handed_over_again_counts_only_its_latest_frames() -> None:
    """A burst the phone repeats after a bad frame hands its frames over from index 0 again: the shifts are those
    of the frames of the last hand-over, bit for bit, also where the first one stopped part way, and also where
    the tracker takes frame 0 as its reference (the repeated frame 0 becomes the reference)."""
    reference, first_try = _textured_frames([(3, 3), (-5, 1), (7, -4)], seed=5)
    _, frames = _textured_frames(SHIFTS)
    serial = shifts_against(reference, frames)  # type: ignore[arg-type]
    from_first_serial = shifts_against(frames[0], frames)  # type: ignore[arg-type]
    pool = MeasurementPool(mode=PipelineMode.ON)
    try:
        tracker = ShiftTracker(pool, reference)  # type: ignore[arg-type]
        own_reference = ShiftTracker(pool)
        for index, frame in enumerate(first_try[:2]):  # the first hand-over breaks off after two frames
            tracker.put(index, frame.raw)
            own_reference.put(index, frame.raw)
        for index, frame in enumerate(frames):
            tracker.put(index, frame.raw)
            own_reference.put(index, frame.raw)
        repeated = tracker.shifts()
        repeated_from_first = own_reference.shifts()
        with pytest.raises(ValueError, match="frame index 6"):
            tracker.put(6, frames[0].raw)  # an index past the next one: a frame was skipped
    finally:
        pool.close()
    assert repeated.tobytes() == serial.tobytes()
    assert repeated_from_first.tobytes() == from_first_serial.tobytes()


# ------------------------------------------------------------------------------------------------ whole runs
def _signoff(reports: Path, *args: str) -> tuple[int, RunRecord, Path]:
    result = subprocess.run(
        [sys.executable, "-m", "rig", "signoff", "--quiet", "--reports", str(reports), *args],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    words = result.stdout.strip().splitlines()[-1].split()  # "VERDICT SERIAL PLAN RUN_DIR [resume with: …]"
    run_dir = Path(words[words.index("signoff") + 1])
    return result.returncode, RunRecord.load(run_dir / "record.json"), run_dir


def _values(record: RunRecord, steps: set[str] | None = None) -> list[tuple]:
    return [
        (m.step, m.name, m.zone or "", m.value, m.verdict.value)
        for m in record.measurements
        if steps is None or m.step in steps
    ]


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_pipelined_and_serial_signoffs_record_bit_identical_measurements(tmp_path: Path) -> None:
    code_on, on, on_dir = _signoff(tmp_path / "on", "--unit", "golden", "--pipeline", "on")
    code_off, off, _ = _signoff(tmp_path / "off", "--unit", "golden", "--pipeline", "off")
    not_passed = [(s.name, s.error) for s in [*on.steps, *off.steps] if s.verdict is not Verdict.PASS]
    assert code_on == code_off == 0, not_passed
    assert len(on.measurements) >= 20
    assert _values(on) == _values(off)  # floats compared with ==: the same bits
    # the verdict was out before the report; the report then completed, and each step says what it cost
    assert on.report is ReportState.COMPLETE and (on_dir / "report.pdf").is_file()
    steps = {s.name: s for s in on.steps}
    assert all(s.hardware_s is not None and s.wall_s is not None for s in on.steps)
    # four remounts by hand at the stated 5 s each, plus the rail and carousel moves of the step
    assert steps["remount"].hardware_s is not None and steps["remount"].hardware_s >= 4 * 5.0


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_a_fault_in_an_overlapped_step_ends_that_step_error_and_resume_completes(tmp_path: Path) -> None:
    """The lens is knocked off during the remount series, while the earlier remount frames are still being
    registered in the pool: remount alone ends ERROR; a resume on the repaired bench completes the run."""
    golden = (FIXTURES_DIR / "units" / "golden.toml").read_text()
    unit = tmp_path / "knocked-during-remount.toml"
    # the golden sign-off's frames 44-48 (as numbered in captures/) are the five remount frames: after 46 renders
    # the 47th, the fourth remount frame, is exposed with the lens off the bayonet (the fifth remount then fails)
    unit.write_text(f'{golden}\n[[faults.inject]]\nkind = "lens_removed"\nafter_captures = 46\n')
    code, first, run_dir = _signoff(tmp_path, "--unit", str(unit))
    assert code == 3 and first.verdict is Verdict.ERROR
    steps = {s.name: s for s in first.steps}
    assert steps["remount"].verdict is Verdict.ERROR and steps["remount"].error
    others = {name for name, s in steps.items() if name != "remount"}
    assert all(steps[name].verdict is Verdict.PASS for name in others), [(n, steps[n].error) for n in others]
    kept = _values(first, others)

    code, resumed, resumed_dir = _signoff(tmp_path, "--resume", first.run_id, "--unit", "golden")
    assert resumed_dir == run_dir
    assert code == 0, [(s.name, s.error) for s in resumed.steps if s.verdict is not Verdict.PASS]
    assert _values(resumed, others) == kept  # nothing measured before the fault changed or was lost
    assert {s.name for s in resumed.steps} == set(steps)
