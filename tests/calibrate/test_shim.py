"""Mount kinematics and the shim recipe against hand calculations (issue #21).

Hand calculation for three screws at 120° on radius R (A at angle 0 on +x, B at 120°, C at 240°): the plane
z = a + b·x + c·y through heights (h, 0, 0) has a = h/3 (the centroid of the screws is the axis), and solving
the three equations gives b = 2h/(3R), c = 0. With R = 24 mm and h = 10 µm: a = 3.333 µm, b = 0.2778 mrad
= 0.9549′ of ``tilt_y`` (+x half farther from the lens), tilt_x = 0. A screw at 90° (on +y, R = 24) with the
others at 210° and 330° gives the same numbers on ``tilt_x``.

Four screws on a square (±d, ±d) with h under one of them: the least-squares plane has a = h/4,
b = h/(4d)·sign(x), c = h/(4d)·sign(y), and each screw departs from the plane by h/4 (the warp).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from rig.calibrate.shim import (
    ARCMIN_PER_MRAD,
    MountMeasurement,
    RecipeStatus,
    ReworkTolerance,
    pose_change,
    solve_recipe,
)
from rig.config.mount import MountDesign, MountScrew, ShimStock
from rig.twin.mount import shim_pose

R_MM = 24.0
TOL_UM = 1e-6  # both are exact linear algebra: rounding only
TOL_ARCMIN = 1e-4  # the twin's atan against the small-angle model: 0.28 mrad → relative 3e-8


def three_screws(first_deg: float = 0.0) -> MountDesign:
    return MountDesign(
        screws=[
            MountScrew(
                name="ABC"[i],
                x_mm=R_MM * math.cos(math.radians(first_deg + 120 * i)),
                y_mm=R_MM * math.sin(math.radians(first_deg + 120 * i)),
            )
            for i in range(3)
        ]
    )


TOLERANCE = ReworkTolerance(target_flange_um=1.5, target_tilt_arcmin=0.3, limit_flange_um=5.0, limit_tilt_arcmin=1.5)


def test_one_shim_under_a_three_screw_mount_matches_the_hand_calculation() -> None:
    design = three_screws()
    expected_tilt_y = 2 * 10.0 / (3 * R_MM) * ARCMIN_PER_MRAD  # 0.9549′
    twin = shim_pose(design, {"A": [50.0, 50.0, 10.0]})  # as built 100 µm: +10 µm under A
    assert twin.flange_offset_um == pytest.approx(10.0 / 3, abs=TOL_UM)
    assert twin.tilt_y_arcmin == pytest.approx(expected_tilt_y, abs=TOL_ARCMIN)
    assert twin.tilt_x_arcmin == pytest.approx(0.0, abs=TOL_ARCMIN)
    assert twin.warp_um == pytest.approx(0.0, abs=TOL_UM)
    flange, tilt_x, tilt_y = pose_change(design, [10.0, 0.0, 0.0])
    assert (flange, tilt_x, tilt_y) == pytest.approx((10.0 / 3, 0.0, expected_tilt_y), abs=TOL_ARCMIN)


def test_a_shim_on_the_plus_y_screw_tilts_about_x() -> None:
    design = three_screws(first_deg=90.0)  # A on +y (down on the sensor)
    twin = shim_pose(design, {"A": [50.0, 50.0, 10.0]})
    assert twin.tilt_x_arcmin == pytest.approx(2 * 10.0 / (3 * R_MM) * ARCMIN_PER_MRAD, abs=TOL_ARCMIN)
    assert twin.tilt_y_arcmin == pytest.approx(0.0, abs=TOL_ARCMIN)


def test_removing_a_shim_moves_the_other_way() -> None:
    twin = shim_pose(three_screws(), {"A": [50.0, 20.0, 20.0]})  # 90 µm: −10 µm under A
    assert twin.flange_offset_um == pytest.approx(-10.0 / 3, abs=TOL_UM)
    assert twin.tilt_y_arcmin == pytest.approx(-2 * 10.0 / (3 * R_MM) * ARCMIN_PER_MRAD, abs=TOL_ARCMIN)


def test_four_screw_mount_settles_in_the_least_squares_plane() -> None:
    d = 16.0
    design = MountDesign(
        screws=[
            MountScrew(name=n, x_mm=x, y_mm=y) for n, x, y in (("A", d, -d), ("B", d, d), ("C", -d, d), ("D", -d, -d))
        ]
    )
    twin = shim_pose(design, {"B": [50.0, 50.0, 20.0]})  # +20 µm under B at (+d, +d)
    slope_arcmin = 20.0 / (4 * d) * ARCMIN_PER_MRAD
    assert twin.flange_offset_um == pytest.approx(5.0, abs=TOL_UM)
    assert twin.tilt_y_arcmin == pytest.approx(slope_arcmin, abs=TOL_ARCMIN)
    assert twin.tilt_x_arcmin == pytest.approx(slope_arcmin, abs=TOL_ARCMIN)
    assert twin.warp_um == pytest.approx(5.0, abs=TOL_UM)
    assert pose_change(design, [0.0, 20.0, 0.0, 0.0]) == pytest.approx((5.0, slope_arcmin, slope_arcmin), abs=1e-4)


def test_unknown_screw_is_refused() -> None:
    with pytest.raises(ValueError, match="screws \\['Z'\\]"):
        shim_pose(three_screws(), {"Z": [5.0]})


def test_stock_stacks_use_fewest_shims() -> None:
    stacks = ShimStock(thicknesses_um=[5.0, 10.0, 20.0, 50.0], max_per_screw=3).stacks()
    assert stacks[0.0] == ()
    assert stacks[70.0] == (50.0, 20.0)
    assert stacks[75.0] == (50.0, 20.0, 5.0)
    assert 155.0 not in stacks  # 50+50+50+5 needs four


def test_recipe_corrects_a_hand_solvable_error_exactly() -> None:
    """The pose a 20/10/0 µm change makes is corrected by exactly the opposite change (a lattice point)."""
    design = three_screws()
    flange, tilt_x, tilt_y = pose_change(design, [20.0, 10.0, 0.0])
    measured = MountMeasurement(-flange, 0.2, -tilt_x, 0.05, -tilt_y, 0.05)
    recipe = solve_recipe(measured, design, ShimStock(), TOLERANCE)
    assert [s.change_um for s in recipe.plan.screws] == [20.0, 10.0, 0.0]
    assert recipe.predicted_flange_um == pytest.approx(0.0, abs=1e-9)
    assert recipe.status is RecipeStatus.WITHIN_TARGET and recipe.within_limits
    assert recipe.summary().startswith("screw A +20 µm, screw B +10 µm, screw C +0 µm; predicted flange +0.0 µm")


def test_recipe_prediction_is_the_twin_plant_after_applying_it() -> None:
    """What the recipe predicts is what the twin's (independently written) kinematics do with its stacks."""
    design = MountDesign()
    rng = np.random.default_rng(21)
    for _ in range(5):
        measured = MountMeasurement(rng.uniform(-60, 60), 0.3, rng.uniform(-5, 5), 0.05, rng.uniform(-5, 5), 0.05)
        recipe = solve_recipe(measured, design, ShimStock(), TOLERANCE)
        moved = shim_pose(design, recipe.plan.stacks_um())
        assert measured.flange_offset_um + moved.flange_offset_um == pytest.approx(recipe.predicted_flange_um, abs=1e-6)
        # small-angle model vs atan: 5′ = 1.45 mrad, relative error 7e-7
        assert measured.tilt_x_arcmin + moved.tilt_x_arcmin == pytest.approx(recipe.predicted_tilt_x_arcmin, abs=1e-4)
        assert measured.tilt_y_arcmin + moved.tilt_y_arcmin == pytest.approx(recipe.predicted_tilt_y_arcmin, abs=1e-4)
        assert moved.warp_um <= design.max_warp_um + 1e-9
        assert recipe.within_target, recipe.reason


def test_random_errors_within_60um_and_5arcmin_reach_the_target_with_the_default_stock() -> None:
    rng = np.random.default_rng(7)
    design = MountDesign()
    for _ in range(10):
        measured = MountMeasurement(rng.uniform(-60, 60), 0.3, rng.uniform(-5, 5), 0.05, rng.uniform(-5, 5), 0.05)
        recipe = solve_recipe(measured, design, ShimStock(), TOLERANCE)
        assert abs(recipe.predicted_flange_um) <= 1.5
        assert abs(recipe.predicted_tilt_x_arcmin) <= 0.3 and abs(recipe.predicted_tilt_y_arcmin) <= 0.3


def test_out_of_reach_says_which_screw_and_why() -> None:
    measured = MountMeasurement(150.0, 0.3, 0.0, 0.05, 0.0, 0.05)  # needs −150 µm, as built is 100 µm
    recipe = solve_recipe(measured, MountDesign(), ShimStock(), TOLERANCE)
    assert recipe.status is RecipeStatus.OUT_OF_REACH and not recipe.within_limits
    assert recipe.predicted_flange_um == pytest.approx(50.0, abs=1e-6)  # every stack removed
    assert "screw A needs -150 µm, its stack can change by -100…+150 µm" in recipe.reason


def test_coarse_stock_reaches_limits_but_not_target() -> None:
    """20 µm shims only: flange steps of 5 µm (four screws) cannot hit ±1.5 µm for a +8 µm error."""
    measured = MountMeasurement(8.0, 0.3, 0.0, 0.05, 0.0, 0.05)
    recipe = solve_recipe(
        measured, MountDesign(max_warp_um=0.0), ShimStock(thicknesses_um=[20.0, 50.0], max_per_screw=5), TOLERANCE
    )
    assert recipe.status is RecipeStatus.WITHIN_LIMITS
    assert recipe.predicted_flange_um == pytest.approx(-2.0, abs=1e-6)  # −10 µm under every screw … not with 20/50
    assert "thinnest shim" in recipe.reason


def test_no_recipe_needed_within_target() -> None:
    recipe = solve_recipe(MountMeasurement(0.8, 0.3, 0.1, 0.05, -0.2, 0.05), MountDesign(), ShimStock(), TOLERANCE)
    assert recipe.status is RecipeStatus.NOT_NEEDED and not recipe.plan.changes
