"""Shim recipe: the stack under every mount screw that best brings a measured flange offset and tilt to nominal.

Model (the recipe's own, written independently of the twin's :func:`rig.twin.mount.shim_pose`): a change h_i (µm)
of the stack under screw i at (x_i, y_i) mm moves the bayonet plane z = a + b·x + c·y to the least-squares fit
of the heights (exact for three screws; for four the equal-stiffness joint model of :mod:`rig.twin.mount`):
(a, b, c) = A⁺·h with the design matrix A = [1, x_i, y_i]. ``a`` adds to the flange offset (µm), b and c are
slopes in µm/mm = mrad that add to ``tilt_y`` and ``tilt_x`` (small angles: 1 mrad = 3.4377′). Sign conventions
are :class:`rig.config.unit.MountTruth`'s; a thicker stack lifts the bayonet away from the sensor.

Search: every screw can carry any stack total the stock makes (:meth:`ShimStock.stacks`, K ≤ 120 values, the
fewest-shims stack for each); the recipe tries all Kⁿ combinations (n = 3 or 4 screws: 43⁴ ≈ 3.4·10⁶ for the
default stock of 5/10/20/50 µm, up to five stacked) vectorised over the last n − 1 screws, and keeps the one with
the least predicted residual, weighted by the tolerances:

    cost = (flange/tol_flange)² + (tilt_x/tol_tilt)² + (tilt_y/tol_tilt)² + 10⁻³·(screws touched)

subject to the warp (departure of the stack totals from their plane) staying within ``max_warp_um``; the last term
only breaks ties towards touching fewer screws. The shims are taken as exact: the prediction's uncertainty is the
measurement's (σ of the through-focus fit).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from enum import Enum

import numpy as np

from rig.config.limits import LimitSet
from rig.config.mount import MountDesign, ReworkSettings, ShimStock
from rig.errors import ConfigError
from rig.measure.focus import FlangeResult
from rig.spec.shims import ScrewShims, ShimPlan

ARCMIN_PER_MRAD = 180.0 * 60.0 / math.pi / 1000.0
_TOUCH_PENALTY = 1e-3
_REACH_SLACK_UM = 0.5
"""A needed change this close to a stack's end is counted as reachable (the reason names real shortfalls)."""


@dataclass(frozen=True)
class MountMeasurement:
    """Flange offset and tilt as a through-focus sweep measured them, with their 1σ."""

    flange_offset_um: float
    flange_offset_sigma_um: float
    tilt_x_arcmin: float
    tilt_x_sigma_arcmin: float
    tilt_y_arcmin: float
    tilt_y_sigma_arcmin: float

    @classmethod
    def from_flange(cls, result: FlangeResult) -> MountMeasurement:
        return cls(
            flange_offset_um=result.flange_offset_um,
            flange_offset_sigma_um=result.flange_offset_sigma_um,
            tilt_x_arcmin=result.tilt_x_arcmin,
            tilt_x_sigma_arcmin=result.tilt_x_sigma_arcmin,
            tilt_y_arcmin=result.tilt_y_arcmin,
            tilt_y_sigma_arcmin=result.tilt_y_sigma_arcmin,
        )

    def within(self, *, flange_um: float, tilt_arcmin: float) -> bool:
        return (
            abs(self.flange_offset_um) <= flange_um
            and abs(self.tilt_x_arcmin) <= tilt_arcmin
            and abs(self.tilt_y_arcmin) <= tilt_arcmin
        )


@dataclass(frozen=True)
class ReworkTolerance:
    """What a recipe aims for (``target_*``, the weights of its cost) and what a unit must meet (``limit_*``)."""

    target_flange_um: float
    target_tilt_arcmin: float
    limit_flange_um: float
    limit_tilt_arcmin: float

    @classmethod
    def from_settings(cls, rework: ReworkSettings, limits: LimitSet) -> ReworkTolerance:
        """The station's rework target and the sign-off limits of ``flange_offset_um`` and ``tilt_[xy]_arcmin``."""

        def half_width(name: str) -> float:
            limit = limits.get(name)
            if limit.low is None or limit.high is None:
                raise ConfigError(limits.source, f"{name}.low/high", None, "a two-sided limit for the shim recipe")
            return min(-limit.low, limit.high)

        return cls(
            target_flange_um=rework.target_flange_um,
            target_tilt_arcmin=rework.target_tilt_arcmin,
            limit_flange_um=half_width("flange_offset_um"),
            limit_tilt_arcmin=min(half_width("tilt_x_arcmin"), half_width("tilt_y_arcmin")),
        )


class RecipeStatus(Enum):
    NOT_NEEDED = "not needed"  # the measurement is within the target already
    WITHIN_TARGET = "within target"
    WITHIN_LIMITS = "within limits only"  # the stock cannot reach the target, but the unit would pass
    OUT_OF_REACH = "out of reach"  # the stock cannot bring the unit within the limits


@dataclass(frozen=True)
class ShimRecipe:
    """The stacks to set and what they are predicted to leave (µm, arcmin; 1σ from the measurement).

    ``reason`` says in one sentence why the status is what it is (which figure misses, what the stock lacks).
    """

    plan: ShimPlan
    measured: MountMeasurement
    predicted_flange_um: float
    predicted_tilt_x_arcmin: float
    predicted_tilt_y_arcmin: float
    predicted_flange_sigma_um: float
    predicted_tilt_x_sigma_arcmin: float
    predicted_tilt_y_sigma_arcmin: float
    warp_um: float
    status: RecipeStatus
    within_target: bool
    within_limits: bool
    reason: str

    def summary(self) -> str:
        """``screw A +20 µm, screw B +10 µm, screw C +0 µm; predicted flange −0.6 µm, tilt 0.1′/−0.2′``."""
        return (
            f"{self.plan.describe()}; predicted flange {self.predicted_flange_um:+.1f} µm, tilt "
            f"{self.predicted_tilt_x_arcmin:+.2f}′/{self.predicted_tilt_y_arcmin:+.2f}′ ({self.status.value})"
        )

    def to_dict(self) -> dict[str, object]:
        """JSON-ready (calibration record attachment)."""
        data = asdict(self)
        data["status"] = self.status.value
        data["summary"] = self.summary()
        return data


def design_matrix(design: MountDesign) -> np.ndarray:
    """A (n × 3): rows (1, x_i, y_i) in mm."""
    return np.array([[1.0, s.x_mm, s.y_mm] for s in design.screws])


def pose_change(design: MountDesign, heights_um: Sequence[float]) -> tuple[float, float, float]:
    """(flange µm, tilt_x ′, tilt_y ′) added by stack changes ``heights_um`` (per screw, the design's order)."""
    a, b, c = np.linalg.pinv(design_matrix(design)) @ np.asarray(heights_um, dtype=float)
    return float(a), float(c) * ARCMIN_PER_MRAD, float(b) * ARCMIN_PER_MRAD


def _current_stacks(design: MountDesign, current: Mapping[str, Sequence[float]] | None) -> list[tuple[float, ...]]:
    current = current or {}
    return [tuple(current.get(s.name, s.as_built_stack_um)) for s in design.screws]


def _reach_reason(design: MountDesign, stock: ShimStock, measured: MountMeasurement, currents: Sequence[float]) -> str:
    """Why no stack reaches: the least-norm exact correction per screw against what each stack can change by."""
    plane = np.array(
        [
            -measured.flange_offset_um,
            -measured.tilt_y_arcmin / ARCMIN_PER_MRAD,
            -measured.tilt_x_arcmin / ARCMIN_PER_MRAD,
        ]
    )
    need = design_matrix(design) @ plane  # the correcting plane's height at every screw (no warp)
    totals = stock.stack_totals_um()
    misses = [
        f"screw {s.name} needs {h:+.0f} µm, its stack can change by {totals[0] - c:+g}…{totals[-1] - c:+g} µm"
        for s, h, c in zip(design.screws, need, currents, strict=True)
        if not totals[0] - c - _REACH_SLACK_UM <= h <= totals[-1] - c + _REACH_SLACK_UM
    ]
    if misses:
        return "the stock cannot reach: " + "; ".join(misses)
    return (
        f"the stock's steps ({min(stock.thicknesses_um):g} µm thinnest shim) and the warp limit "
        f"({design.max_warp_um:g} µm) leave no closer combination"
    )


def solve_recipe(
    measured: MountMeasurement,
    design: MountDesign,
    stock: ShimStock,
    tolerance: ReworkTolerance,
    *,
    current: Mapping[str, Sequence[float]] | None = None,
) -> ShimRecipe:
    """The stacks that minimise the predicted residual (module docstring), from the stacks now under the screws.

    Parameters
    ----------
    measured
        Flange offset and tilt as measured now (µm, arcmin; + as :class:`~rig.config.unit.MountTruth`).
    design, stock
        The station's mount and shim stock.
    tolerance
        Target (the cost's weights) and limits (the verdict) of flange and tilt.
    current
        Stacks now under the screws by name (µm); screws not named are as built.

    Returns
    -------
    ShimRecipe
        The stacks per screw, the predicted residual with its 1σ, the warp, and whether it reaches target/limits.
    """
    stacks = stock.stacks()
    totals = np.array(list(stacks))
    now = _current_stacks(design, current)
    now_totals = np.array([sum(s) for s in now])
    n = len(design.screws)
    pinv = np.linalg.pinv(design_matrix(design))  # 3 × n: (a, b, c) per µm under each screw
    fit = design_matrix(design) @ pinv  # n × n: heights → their plane's heights
    base = np.array([measured.flange_offset_um, measured.tilt_y_arcmin, measured.tilt_x_arcmin])
    to_pose = pinv * np.array([[1.0], [ARCMIN_PER_MRAD], [ARCMIN_PER_MRAD]])  # µm → (µm, ′, ′)
    weights = np.array([tolerance.target_flange_um, tolerance.target_tilt_arcmin, tolerance.target_tilt_arcmin])

    # every combination of the last n − 1 screws, once: their share of pose, warp and cost is computed a single
    # time, and the first screw's options only add a column to it
    rest = np.stack(np.meshgrid(*([totals] * (n - 1)), indexing="ij"), axis=-1).reshape(-1, n - 1)
    rest_heights = rest - now_totals[1:]
    rest_pose = base + rest_heights @ to_pose[:, 1:].T
    rest_embedded = np.column_stack([np.zeros(len(rest)), rest])
    rest_warp = rest_embedded - rest @ fit[:, 1:].T
    rest_touched = _TOUCH_PENALTY * np.sum(np.abs(rest_heights) > 1e-9, axis=1)
    first_warp_column = np.eye(n)[0] - fit[:, 0]
    best_cost, best_totals = math.inf, now_totals
    for first in totals:
        height = first - now_totals[0]
        pose = rest_pose + height * to_pose[:, 0]
        cost = np.sum((pose / weights) ** 2, axis=1) + rest_touched + (_TOUCH_PENALTY if abs(height) > 1e-9 else 0.0)
        warp = np.max(np.abs(rest_warp + first * first_warp_column), axis=1)
        cost[warp > design.max_warp_um + 1e-9] = math.inf
        i = int(np.argmin(cost))
        if cost[i] < best_cost:
            best_cost, best_totals = float(cost[i]), np.concatenate([[first], rest[i]])

    already = measured.within(flange_um=tolerance.target_flange_um, tilt_arcmin=tolerance.target_tilt_arcmin)
    chosen = now_totals if already else best_totals
    heights = chosen - now_totals
    flange, tilt_y, tilt_x = base + to_pose @ heights
    warp = float(np.max(np.abs(chosen - fit @ chosen)))
    plan = ShimPlan(
        tuple(
            ScrewShims(
                screw=s.name,
                stack_um=old if abs(h) < 1e-9 else stacks[round(float(t), 6)],
                change_um=round(float(h), 6),
            )
            for s, old, t, h in zip(design.screws, now, chosen, heights, strict=True)
        )
    )

    def inside(limit_um: float, limit_arcmin: float) -> bool:
        return abs(flange) <= limit_um and abs(tilt_x) <= limit_arcmin and abs(tilt_y) <= limit_arcmin

    within_target = inside(tolerance.target_flange_um, tolerance.target_tilt_arcmin)
    within_limits = inside(tolerance.limit_flange_um, tolerance.limit_tilt_arcmin)
    target = f"±{tolerance.target_flange_um:g} µm / ±{tolerance.target_tilt_arcmin:g}′"
    limits = f"±{tolerance.limit_flange_um:g} µm / ±{tolerance.limit_tilt_arcmin:g}′"
    if already:
        status, reason = RecipeStatus.NOT_NEEDED, f"measured flange and tilt are within the target {target}"
    elif within_target:
        status, reason = RecipeStatus.WITHIN_TARGET, f"predicted within the target {target}"
    else:
        why = _reach_reason(design, stock, measured, now_totals)
        if within_limits:
            status = RecipeStatus.WITHIN_LIMITS
            reason = f"predicted within the limits {limits}, not the target {target}: {why}"
        else:
            status, reason = RecipeStatus.OUT_OF_REACH, f"predicted outside the limits {limits}: {why}"
    return ShimRecipe(
        plan=plan,
        measured=measured,
        predicted_flange_um=float(flange),
        predicted_tilt_x_arcmin=float(tilt_x),
        predicted_tilt_y_arcmin=float(tilt_y),
        predicted_flange_sigma_um=measured.flange_offset_sigma_um,
        predicted_tilt_x_sigma_arcmin=measured.tilt_x_sigma_arcmin,
        predicted_tilt_y_sigma_arcmin=measured.tilt_y_sigma_arcmin,
        warp_um=warp,
        status=status,
        within_target=within_target,
        within_limits=within_limits,
        reason=reason,
    )
