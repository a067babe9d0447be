"""A plan's steps run outside pytest for a study (rig.bench.msa_steps): the right figures, fixtures taken once per
trial and shared as pytest shares a module-scoped fixture, teardown at the end, clear errors for what cannot run."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

from rig.bench.msa_steps import PlanSteps, StepRunner, plan_step_names
from rig.bench.recording import RunRecorder
from rig.config.limits import load_limits
from rig.errors import ArgumentError, MeasurementError
from rig.plans import signoff
from rig.results.record import RunRecord, utcnow

LIMITS = """
revision = "2026-11-A"

[lens_detected]
unit = "bool"
step = "detect"
low = 1.0

[x_um]
unit = "um"
step = "shared"
low = -1.0
high = 1.0

[y_um]
unit = "um"
step = "shared"

[mtf50_cy_px]
unit = "cy/px"
step = "zones"
zones.center = { low = 0.3 }
zones.corner = { low = 0.2 }
"""


def _plan(log: list[str]) -> ModuleType:
    """A plan module like rig.plans.signoff: a module-level fixture two steps share, a yield fixture, steps."""
    module = ModuleType("fake_plan")
    module.PLAN = "fake"

    @pytest.fixture(scope="module")
    def capture(bench: dict) -> float:
        log.append("capture")
        return bench["x"]

    @pytest.fixture(scope="module")
    def lamp() -> object:
        log.append("lamp on")
        yield "lamp"
        log.append("lamp off")

    def test_detect(measure, bench) -> None:
        measure("lens_detected", 1.0)

    def test_shared(measure, capture: float, lamp: str) -> None:
        measure("x_um", capture)
        measure("y_um", capture * 2)

    def test_zones(measure, capture: float) -> None:
        measure("mtf50_cy_px", 0.4, zone="center")
        measure("mtf50_cy_px", None, zone="corner", error="no edge")

    def test_asks_too_much(measure, oscilloscope) -> None:  # a name nobody provides
        pass

    module.capture, module.lamp = capture, lamp
    module.test_detect, module.test_shared, module.test_zones = test_detect, test_shared, test_zones
    module.test_asks_too_much = test_asks_too_much
    return module


def _recorder(tmp_path: Path, limits) -> RunRecorder:
    record = RunRecord(run_id="msa", plan="fake", station="s", software_version="0", unit_serial="u", started=utcnow())
    return RunRecorder(record, tmp_path / "msa", limits)


@pytest.fixture
def limits(tmp_path: Path):
    path = tmp_path / "fake.toml"
    path.write_text(LIMITS)
    return load_limits(path)


def _provided(x: float) -> dict[str, object]:
    return {"bench": {"x": x}, "run": None, "lens": None, "lenses": None, "station": None}


def test_steps_are_the_plan_s_in_its_order_and_figures_leave_yes_no_out(limits) -> None:
    plan = PlanSteps.of(_plan([]), limits, ["zones", "shared"])
    assert plan.steps == ("shared", "zones")  # plan order, whatever order they were asked in
    assert plan.figures == ("x_um", "y_um", "mtf50_cy_px[center]", "mtf50_cy_px[corner]")
    assert plan_step_names(signoff)[:3] == ["lens_detection", "raw_bit_depth", "light_intake"]


@pytest.mark.parametrize(
    ("steps", "needles"),
    [(["nope"], ["--steps nope", "detect, shared, zones"]), (["detect"], ["--steps detect", "no variable figure"])],
)
def test_a_step_a_study_cannot_repeat_is_refused(limits, steps: list[str], needles: list[str]) -> None:
    with pytest.raises(ArgumentError) as caught:
        PlanSteps.of(_plan([]), limits, steps)
    assert all(n in str(caught.value) for n in needles), str(caught.value)


def test_a_fixture_is_taken_once_per_trial_shared_and_torn_down(tmp_path: Path, limits) -> None:
    log: list[str] = []
    plan = PlanSteps.of(_plan(log), limits, ["shared"])
    recorder = _recorder(tmp_path, limits)
    for trial, x in enumerate((0.5, 0.7)):
        runner = StepRunner(plan, recorder, _provided(x))
        assert runner.run("shared") == {"x_um": x, "y_um": 2 * x}, trial
        runner.close()
    assert log == ["capture", "lamp on", "lamp off"] * 2  # a new capture each trial, the lamp off after each


def test_a_figure_not_measured_stops_the_study_with_its_reason(tmp_path: Path, limits) -> None:
    plan = PlanSteps.of(_plan([]), limits, ["zones"])
    runner = StepRunner(plan, _recorder(tmp_path, limits), _provided(0.1))
    with pytest.raises(MeasurementError, match=r"mtf50_cy_px\[corner\] was not measured \(no edge\)"):
        runner.run("zones")


def test_a_step_asking_for_what_no_one_provides_is_named(tmp_path: Path, limits) -> None:
    module = _plan([])
    runner = StepRunner(PlanSteps(module, limits, ("asks_too_much",)), _recorder(tmp_path, limits), _provided(0.1))
    with pytest.raises(ArgumentError, match="step asks_too_much asks for 'oscilloscope'"):
        runner.run("asks_too_much")
