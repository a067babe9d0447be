"""A plan's own steps, run outside pytest for a gauge study: the same test functions, fixtures and limits.

A gauge study must measure the way the plan measures (a figure's capability is the capability of *that*
procedure), so :class:`StepRunner` calls the plan module's ``test_<step>`` functions themselves. Their arguments
are what the plugin would give them: ``measure``, ``run``, ``bench``, ``lens``, ``lenses`` and ``station`` from the
study, everything else from the plan module's own fixtures, taken the way pytest takes a module-scoped fixture —
once per run of the plan (here: once per trial, so every trial takes its own captures after its own remount) and
shared by the steps that ask for it, in the plan's step order. A fixture is found through ``__wrapped__``, which
``functools.update_wrapper`` sets on pytest's fixture definition (the function itself stays callable that way).

The plan module is handed in by the caller (the command line imports it): the bench layer never imports plans.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from rig.bench.recording import RunRecorder
from rig.config.limits import LimitSet
from rig.errors import ArgumentError, MeasurementError
from rig.results.record import MeasurementRecord, Verdict

STEP_PREFIX = "test_"

ATTRIBUTE_UNITS = frozenset({"bool"})
"""Units of yes/no figures: a gauge R&R needs a variable; an attribute is judged by an attribute agreement study
(AIAG MSA 4th ed., ch. III §C), so a study leaves these out."""

STUDY_PROVIDES = ("measure", "run", "bench", "lens", "lenses", "station")
"""Step arguments the study gives, as the plugin's fixtures of the same names do in a run."""


def plan_step_names(module: ModuleType) -> list[str]:
    """The steps of a plan module in definition order (the order pytest runs them): ``test_flange_alignment`` →
    ``flange_alignment``."""
    return [
        name.removeprefix(STEP_PREFIX)
        for name, obj in vars(module).items()
        if name.startswith(STEP_PREFIX) and inspect.isfunction(obj)
    ]


@dataclass(frozen=True)
class PlanSteps:
    """The steps of a plan a study repeats and the figures they record (from the plan's limits).

    A figure is named like :attr:`rig.results.record.MeasurementRecord.key`: ``flange_offset_um``, or
    ``mtf50_cy_px[center]`` for each field zone a limit declares.
    """

    module: ModuleType
    limits: LimitSet
    steps: tuple[str, ...]

    @classmethod
    def of(cls, module: ModuleType, limits: LimitSet, steps: Iterable[str]) -> PlanSteps:
        """The chosen ``steps`` of ``module`` in plan order; an unknown step or one without figures is refused."""
        available = plan_step_names(module)
        wanted = list(dict.fromkeys(steps))
        plan = getattr(module, "PLAN", module.__name__)
        for step in wanted:
            if step not in available:
                raise ArgumentError(f"--steps {step}: expected steps of plan {plan}: {', '.join(available)}")
        chosen = cls(module, limits, tuple(s for s in available if s in wanted))
        for step in chosen.steps:
            if not chosen.figures_of(step):
                raise ArgumentError(
                    f"--steps {step}: plan {plan} records no variable figure in this step (yes/no figures need an "
                    "attribute agreement study); expected a step with a measured value"
                )
        return chosen

    def figures_of(self, step: str) -> tuple[str, ...]:
        """The variable figures ``step`` records, in limits-file order."""
        out: list[str] = []
        for name, limit in self.limits.limits.items():
            if limit.step == step and limit.unit not in ATTRIBUTE_UNITS:
                out += [f"{name}[{zone}]" for zone in limit.base_zones] or [name]
        return tuple(out)

    @property
    def figures(self) -> tuple[str, ...]:
        return tuple(f for step in self.steps for f in self.figures_of(step))


class StepMeasure:
    """The ``measure`` a step is given: what the plugin's ``measure`` fixture does, into the study's recorder."""

    def __init__(self, recorder: RunRecorder, step: str) -> None:
        self._recorder = recorder
        self.step = step

    def __call__(
        self, name: str, value: float | None, *, zone: str | None = None, captures: Any = (), error: str | None = None
    ) -> MeasurementRecord:
        return self._recorder.measure(self.step, name, value, zone=zone, captures=captures, error=error)

    def skip(self, name: str, reason: str, *, zone: str | None = None) -> MeasurementRecord:
        return self._recorder.skip(self.step, name, reason, zone=zone)

    def attach(self, relative: str, data: bytes) -> str:
        return self._recorder.save_file(relative, data)


class StepRunner:
    """One trial of a plan's steps: each step's test function called with the study's objects and the plan's
    fixtures (each taken once in this trial, when a step first asks for it)."""

    def __init__(self, plan: PlanSteps, recorder: RunRecorder, provided: dict[str, object]) -> None:
        missing = [name for name in STUDY_PROVIDES if name != "measure" and name not in provided]
        if missing:
            raise ArgumentError(f"a study of plan steps must provide {', '.join(missing)}")
        self.plan = plan
        self.recorder = recorder
        self._provided = provided
        self._taken: dict[str, object] = {}
        self._teardown: list[Iterator[object]] = []

    def run(self, step: str) -> dict[str, float]:
        """Run ``step`` and return its figures (``name`` or ``name[zone]`` → value, the figure's unit).

        Raises
        ------
        MeasurementError
            A figure of the step was not measured (a study cannot use a missing reading).
        """
        first = len(self.recorder.record.measurements)
        function = getattr(self.plan.module, f"{STEP_PREFIX}{step}")
        self._call(function, {**self._provided, "measure": StepMeasure(self.recorder, step)}, step)
        taken = {m.key: m for m in self.recorder.record.measurements[first:]}
        readings: dict[str, float] = {}
        for figure in self.plan.figures_of(step):
            m = taken.get(figure)
            if m is None or m.value is None or m.verdict is Verdict.ERROR:
                why = m.error if m is not None else "not recorded"
                raise MeasurementError(f"step {step}: {figure} was not measured ({why})")
            readings[figure] = m.value
        return readings

    def close(self) -> None:
        """End the trial: finish the plan fixtures that yield (their teardown), newest first."""
        while self._teardown:
            next(self._teardown.pop(), None)

    def _call(self, function: Callable[..., Any], provided: dict[str, object], step: str) -> Any:
        kwargs = {name: self._argument(name, provided, step) for name in inspect.signature(function).parameters}
        return function(**kwargs)

    def _argument(self, name: str, provided: dict[str, object], step: str) -> object:
        if name in provided:
            return provided[name]
        if name in self._taken:
            return self._taken[name]
        candidate = getattr(self.plan.module, name, None)
        if candidate is None or not hasattr(candidate, "__wrapped__"):
            raise ArgumentError(
                f"step {step} asks for {name!r}: neither a plan fixture nor one of {', '.join(STUDY_PROVIDES)}"
            )
        value = self._call(inspect.unwrap(candidate), provided, step)
        if inspect.isgenerator(value):  # a yield fixture: its value now, its teardown at the end of the trial
            generator = value
            value = next(generator)
            self._teardown.append(generator)
        self._taken[name] = value
        return value
