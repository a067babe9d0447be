"""Run records synthesised from a known law, for the store, report and SPC tests (and benchmarks/reporting.py).

Each measurement of :data:`SIGNOFF_SPEC` is drawn from a normal law with the given mean and σ (seeded
generator); its verdict is judged against the declared limits exactly as the plan recorder does, so a test
knows the truth without asking the code under test.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

import numpy as np

from rig.config.limits import DecisionRule
from rig.results.decision import judge_with_uncertainty
from rig.results.record import MeasurementRecord, RunRecord, StepRecord, Uncertainty, Verdict, combine


@dataclass(frozen=True)
class Spec:
    name: str
    step: str
    zone: str | None
    unit: str
    low: float | None
    high: float | None
    mean: float
    sigma: float


SIGNOFF_SPEC: tuple[Spec, ...] = (
    Spec("mtf50_cy_px", "test_sharpness", "center", "cy/px", 0.30, None, 0.36, 0.02),
    Spec("mtf50_cy_px", "test_sharpness", "mid", "cy/px", 0.25, None, 0.31, 0.025),
    Spec("mtf50_cy_px", "test_sharpness", "corner", "cy/px", 0.20, None, 0.24, 0.025),
    Spec("flange_offset_um", "test_flange", None, "µm", -5.0, 5.0, 0.5, 1.8),
    Spec("tilt_x_arcmin", "test_flange", None, "arcmin", -1.0, 1.0, 0.1, 0.35),
    Spec("tilt_y_arcmin", "test_flange", None, "arcmin", -1.0, 1.0, -0.05, 0.3),
    Spec("t_stop", "test_light", None, "T", None, 1.6, 1.5, 0.03),
    Spec("corner_illumination_stops", "test_light", None, "stops", -2.0, None, -1.5, 0.2),
    Spec("sensor_switch_latency_ms", "test_features", None, "ms", None, 200.0, 120.0, 30.0),
)

BASE_TIME = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


def make_run(
    rng: np.random.Generator,
    *,
    run_id: str,
    unit_serial: str,
    started: datetime,
    plan: str = "signoff",
    station: str = "twin-01",
    specs: tuple[Spec, ...] = SIGNOFF_SPEC,
    error_rate: float = 0.0,
    shift: dict[str, float] | None = None,
    lens: str = "summilux-m-35-f1.4-asph-2022",
    limits_revision: str | None = "2026-11-A",
) -> RunRecord:
    """A finished run whose values follow ``specs`` (plus ``shift[name]`` added to the mean); ``error_rate`` 1
    gives a run that ended ERROR before measuring anything."""
    shift = shift or {}
    measurements: list[MeasurementRecord] = []
    t = started
    for spec in specs:
        t += timedelta(seconds=2)
        if rng.random() < error_rate:
            measurements.append(
                MeasurementRecord(
                    name=spec.name,
                    step=spec.step,
                    zone=spec.zone,
                    value=None,
                    unit=spec.unit,
                    low=spec.low,
                    high=spec.high,
                    verdict=Verdict.ERROR,
                    error="no slanted edge found in the ROI",
                    timestamp=t,
                )
            )
            continue
        value = float(rng.normal(spec.mean + shift.get(spec.name, 0.0), spec.sigma))
        measurements.append(
            MeasurementRecord(
                name=spec.name,
                step=spec.step,
                zone=spec.zone,
                value=value,
                unit=spec.unit,
                low=spec.low,
                high=spec.high,
                verdict=MeasurementRecord.judge(value, spec.low, spec.high),
                captures=[f"captures/{spec.step}-{len(measurements):03d}.dng"],
                timestamp=t,
            )
        )
    steps = []
    for step in dict.fromkeys(s.step for s in specs):
        verdict = combine([m.verdict for m in measurements if m.step == step])
        error = next((m.error for m in measurements if m.step == step and m.error), None)
        steps.append(StepRecord(name=step, verdict=verdict, started=started, ended=t, error=error))
    record = RunRecord(
        run_id=run_id,
        plan=plan,
        station=station,
        software_version="0.1.0",
        git_sha="0" * 40,
        operator="test",
        unit_serial=unit_serial,
        lens=lens,
        limits_revision=limits_revision,
        started=started,
        ended=t + timedelta(seconds=1),
        measurements=measurements,
        steps=steps,
    )
    record.verdict = record.final_verdict()
    return record


def make_fleet(rng: np.random.Generator, *, units: int, reruns_of_failures: bool = True) -> list[RunRecord]:
    """One run per unit, plus a second run of every unit whose first run did not pass (a rework loop)."""
    runs = []
    for i in range(units):
        serial = f"XM12SU-{i:06d}"
        started = BASE_TIME + timedelta(minutes=10 * i)
        first = make_run(rng, run_id=f"{serial}-1", unit_serial=serial, started=started, error_rate=0.01)
        runs.append(first)
        if reruns_of_failures and first.verdict is not Verdict.PASS:
            second_start = started + timedelta(minutes=5)
            runs.append(make_run(rng, run_id=f"{serial}-2", unit_serial=serial, started=second_start))
    return runs


GRR_STUDY = Uncertainty(
    expanded_u=0.0,  # replaced per figure
    coverage_factor=2.0,
    study_id="grr-twin-01-2026-11-30",
    study_started=datetime(2026, 11, 30, 9, 30, tzinfo=timezone(timedelta(hours=1))),  # not UTC: kept as an instant
    bias_study_id="type1-twin-01-2026-11-29",
)
NO_STUDY_NOTE = "ISO 14253-1 asked for, no accepted gauge R&R on twin-01: judged by the limits as written"


def with_uncertainty(record: RunRecord, *, revision: str = "0042") -> RunRecord:
    """``record`` as a station with an accepted MSA records it (issue #18): U on every figure with a value and
    limits (40 % of the distance to the nearer limit), the first of them judged by ISO 14253-1
    (:func:`judge_with_uncertainty`, U = 2.5 × that distance, so its decision is UNDECIDED), the rest by the simple
    rule; the last figure asked for ISO
    14253-1 without a study (a decision note, no U). ``revision`` looks like a number on purpose: a table must
    keep it as text ("0042", not 42)."""
    out = record.model_copy(deep=True, update={"limits_revision": revision})
    judged = [i for i, m in enumerate(out.measurements) if m.value is not None and (m.low, m.high) != (None, None)]
    for n, i in enumerate(judged[:-1]):
        m = out.measurements[i]
        assert m.value is not None
        distance = min(abs(m.value - lim) for lim in (m.low, m.high) if lim is not None)
        bias_study = None if n % 2 else GRR_STUDY.bias_study_id
        expanded_u = (2.5 if n == 0 else 0.4) * distance
        u = GRR_STUDY.model_copy(update={"expanded_u": expanded_u, "bias_study_id": bias_study})
        update: dict[str, object] = {"uncertainty": u}
        if n == 0:
            j = judge_with_uncertainty(m.value, u.expanded_u, low=m.low, high=m.high, in_marginal_band=False)
            verdict = Verdict.PASS if j.passed else Verdict.FAIL
            update |= {"decision_rule": DecisionRule.ISO14253, "decision": j.decision, "verdict": verdict,
                       "marginal": j.marginal}  # fmt: skip
        out.measurements[i] = m.model_copy(update=update)
    last = judged[-1]
    out.measurements[last] = out.measurements[last].model_copy(
        update={"decision_rule": DecisionRule.ISO14253, "decision_note": NO_STUDY_NOTE}
    )
    out.verdict = out.final_verdict()
    return out
