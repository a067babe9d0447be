"""Mechanical rework of the mount (issue #21): shim recipe → the operator re-shims → the bench re-measures.

Each round solves a recipe (:func:`rig.calibrate.shim.solve_recipe`) from the latest through-focus measurement and
the stacks now under the screws, has the operator take the lens off, set the stacks and mount the lens again (the
lens seats anew: its seating scatter, ``MountTruth.remount_sigma_arcmin`` on the twin, comes on top of the
recipe's residual), and re-measures flange and tilt with the same through-focus sweep the calibration uses. It
stops when the re-measurement is within the target, when the recipe changes nothing or cannot bring the unit
within the limits (it goes to a technician as it is), or after the station's
``rework.max_iterations`` rounds. The rework succeeded when the last measurement is within the limits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rig.bench import procedures as proc
from rig.bench.ops import BenchOps
from rig.calibrate.shim import MountMeasurement, RecipeStatus, ReworkTolerance, ShimRecipe, solve_recipe
from rig.config.lenses import LensSpec
from rig.results.reportdata import Check, ChecksPlot


@dataclass(frozen=True)
class ReworkRound:
    """One recipe, applied, and what the bench measured afterwards (residual = re-measured − predicted)."""

    index: int
    recipe: ShimRecipe
    remeasured: MountMeasurement
    captures: tuple[Path, ...]

    @property
    def flange_residual_um(self) -> float:
        return self.remeasured.flange_offset_um - self.recipe.predicted_flange_um

    @property
    def tilt_x_residual_arcmin(self) -> float:
        return self.remeasured.tilt_x_arcmin - self.recipe.predicted_tilt_x_arcmin

    @property
    def tilt_y_residual_arcmin(self) -> float:
        return self.remeasured.tilt_y_arcmin - self.recipe.predicted_tilt_y_arcmin

    def to_dict(self) -> dict[str, object]:
        return {
            "index": self.index,
            "recipe": self.recipe.to_dict(),
            "remeasured": vars(self.remeasured),
            "flange_residual_um": self.flange_residual_um,
            "tilt_x_residual_arcmin": self.tilt_x_residual_arcmin,
            "tilt_y_residual_arcmin": self.tilt_y_residual_arcmin,
            "captures": [str(p) for p in self.captures],
        }


@dataclass(frozen=True)
class ReworkOutcome:
    """The whole loop: where it started, every round, where it ended, and why it stopped."""

    initial: MountMeasurement
    rounds: tuple[ReworkRound, ...]
    final: MountMeasurement
    final_stacks_um: dict[str, tuple[float, ...]]
    succeeded: bool  # the last measurement is within the limits
    within_target: bool
    reason: str
    last_recipe: ShimRecipe  # the recipe of the last round, or the one that was not applied (nothing to change)
    tolerance: ReworkTolerance = field(repr=False)

    def to_dict(self) -> dict[str, object]:
        return {
            "initial": vars(self.initial),
            "rounds": [r.to_dict() for r in self.rounds],
            "final": vars(self.final),
            "final_stacks_um": {k: list(v) for k, v in self.final_stacks_um.items()},
            "succeeded": self.succeeded,
            "within_target": self.within_target,
            "reason": self.reason,
            "last_recipe": self.last_recipe.to_dict(),
            "tolerance": vars(self.tolerance),
        }


def remeasure(bench: BenchOps, lens: LensSpec, *, tag: str) -> tuple[MountMeasurement, tuple[Path, ...]]:
    """Flange offset and tilt from a full through-focus sweep (the calibration's own procedure)."""
    sweep = proc.through_focus(bench, lens, t_stop=lens.t_stop, tag=tag, with_assists=False)
    return MountMeasurement.from_flange(sweep.flange), tuple(f.path for f in sweep.frames)


def rework_mount(
    bench: BenchOps,
    lens: LensSpec,
    measured: MountMeasurement,
    tolerance: ReworkTolerance,
    *,
    tag: str = "rework",
) -> ReworkOutcome:
    """Re-shim the mount until flange and tilt are within the target, at most ``station.rework.max_iterations`` times.

    Parameters
    ----------
    bench
        The open bench (its operator applies the shims, its phone re-measures).
    lens
        The lens the measurement was made with (mounted again after each re-shim).
    measured
        Flange offset and tilt as the calibration's sweep found them (µm, arcmin, with 1σ).
    tolerance
        Target (what the recipe aims for) and limits (what counts as success).
    tag
        Prefix of the captures' tags (``rework1-focus-00`` …).
    """
    station = bench.station
    stacks = {s.name: tuple(s.as_built_stack_um) for s in station.mount.screws}
    rounds: list[ReworkRound] = []
    current = measured
    target = {"flange_um": tolerance.target_flange_um, "tilt_arcmin": tolerance.target_tilt_arcmin}
    limits = {"flange_um": tolerance.limit_flange_um, "tilt_arcmin": tolerance.limit_tilt_arcmin}
    recipe = solve_recipe(current, station.mount, station.shims, tolerance, current=stacks)
    for index in range(1, station.rework.max_iterations + 1):
        if current.within(**target):
            reason = "flange and tilt within the target"
            break
        if recipe.status is RecipeStatus.OUT_OF_REACH:
            reason = f"not re-shimmed: {recipe.reason}"
            break
        if not recipe.plan.changes:
            reason = f"no shim change improves the prediction: {recipe.reason}"
            break
        proc.ensure_no_lens(bench)
        bench.operator.apply_shims(recipe.plan)
        stacks = recipe.plan.stacks_um()
        proc.ensure_lens(bench, lens)
        current, captures = remeasure(bench, lens, tag=f"{tag}{index}-focus")
        rounds.append(ReworkRound(index=index, recipe=recipe, remeasured=current, captures=captures))
        if current.within(**target):
            reason = f"flange and tilt within the target after {index} round(s)"
            break
        recipe = solve_recipe(current, station.mount, station.shims, tolerance, current=stacks)
    else:
        reason = f"{station.rework.max_iterations} rounds used, still outside the target"
    succeeded = current.within(**limits)
    if not succeeded and recipe.reason not in reason:
        reason = f"{reason}; {recipe.reason}"
    return ReworkOutcome(
        initial=measured,
        rounds=tuple(rounds),
        final=current,
        final_stacks_um=stacks,
        succeeded=succeeded,
        within_target=current.within(**target),
        reason=reason,
        last_recipe=rounds[-1].recipe if rounds else recipe,
        tolerance=tolerance,
    )


def rework_checks(outcome: ReworkOutcome, *, name: str = "mount_rework") -> ChecksPlot:
    """The report's table: every round's recipe, its prediction and the re-measurement side by side."""
    tol = outcome.tolerance
    m0 = outcome.initial
    checks = [
        Check(
            name="measured before rework",
            expected=f"±{tol.limit_flange_um:g} µm, ±{tol.limit_tilt_arcmin:g}′",
            observed=f"flange {m0.flange_offset_um:+.2f} µm, tilt {m0.tilt_x_arcmin:+.2f}′/{m0.tilt_y_arcmin:+.2f}′",
            ok=m0.within(flange_um=tol.limit_flange_um, tilt_arcmin=tol.limit_tilt_arcmin),
        )
    ]
    for r in outcome.rounds:
        p, m = r.recipe, r.remeasured
        checks.append(
            Check(
                name=f"round {r.index}: recipe",
                expected=p.plan.describe(),
                observed=f"{p.status.value}, warp {p.warp_um:.1f} µm",
                ok=p.within_target,
                detail=p.reason,
            )
        )
        checks.append(
            Check(
                name=f"round {r.index}: predicted vs re-measured",
                expected=f"flange {p.predicted_flange_um:+.2f} µm, tilt {p.predicted_tilt_x_arcmin:+.2f}′/"
                f"{p.predicted_tilt_y_arcmin:+.2f}′",
                observed=f"flange {m.flange_offset_um:+.2f} µm, tilt {m.tilt_x_arcmin:+.2f}′/{m.tilt_y_arcmin:+.2f}′",
                ok=m.within(flange_um=tol.target_flange_um, tilt_arcmin=tol.target_tilt_arcmin),
                detail=f"re-measured − predicted: {r.flange_residual_um:+.2f} µm, {r.tilt_x_residual_arcmin:+.2f}′/"
                f"{r.tilt_y_residual_arcmin:+.2f}′",
            )
        )
    if not outcome.rounds:
        checks.append(
            Check(
                name="recipe (not applied)",
                expected=outcome.last_recipe.plan.describe(),
                observed=outcome.last_recipe.status.value,
                ok=False,
                detail=outcome.last_recipe.reason,
            )
        )
    stacks = "; ".join(
        f"{k}: {' + '.join(f'{t:g}' for t in v) or 'none'} µm" for k, v in outcome.final_stacks_um.items()
    )
    return ChecksPlot(
        name=name,
        title="Mount rework: shim recipe, prediction and verification",
        checks=checks,
        caption=f"{'succeeded' if outcome.succeeded else 'failed'}: {outcome.reason}. Final stacks: {stacks}",
    )
