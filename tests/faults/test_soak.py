"""The soak run's own bookkeeping: fault draws and the lost-measurement check must be able to fail."""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np

from rig.bench.recording import RunRecorder
from rig.cli.soak import FRAMES_PER_SIGNOFF, SoakFigures, _account, _draw_faults, _faults_toml
from rig.config.faults import FaultKind
from rig.config.limits import load_limits
from rig.config.loader import validate
from rig.config.unit import UNITS_DIR, TwinUnit
from rig.results.record import Verdict, utcnow


def test_fault_draws_follow_the_rate_and_make_a_valid_unit_file() -> None:
    draws = [len(_draw_faults(np.random.default_rng([7, i]), steps=11, rate=0.05)) for i in range(2000)]
    # binomial(11, 0.05): mean 0.55 per run, σ of the mean over 2000 runs ≈ 0.016
    assert abs(np.mean(draws) - 0.55) < 0.05
    plan = _draw_faults(np.random.default_rng(1), steps=11, rate=1.0)
    assert len(plan) == 11 and all(0 <= at < FRAMES_PER_SIGNOFF for _, at in plan)
    data = tomllib.loads((UNITS_DIR / "golden.toml").read_text() + _faults_toml(plan))
    unit = validate(TwinUnit, data, "soak unit")
    assert unit.faults is not None and [s.kind for s in unit.faults.inject] == [FaultKind(k) for k, _ in plan]


def test_a_measurement_missing_after_a_resume_is_counted_as_lost(tmp_path: Path) -> None:
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
    t = utcnow()
    rec.measure("flange_alignment", "flange_offset_um", 0.8)
    rec.measure("flange_alignment", "tilt_x_arcmin", 0.3)
    rec.step("flange_alignment", Verdict.PASS, started=t, ended=utcnow(), retries=2)
    rec.step("sag", Verdict.ERROR, started=t, ended=utcnow(), error="DeviceLost: stage lost")
    figures = SoakFigures()
    done = _account(rec.run_dir, {}, figures)
    assert (figures.steps, figures.retries, figures.errors, figures.lost_measurements) == (2, 2, 1, 0)
    assert figures.errors_without_reason == 0
    # a resume that dropped one completed measurement (what must never happen) is caught
    rec.record.measurements = rec.record.measurements[:1]
    rec.save()
    _account(rec.run_dir, done, figures)
    assert figures.lost_measurements == 1
