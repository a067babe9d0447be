"""The phone's bayonet mount as the line can adjust it: screw positions, the shims under them, the line's stock.

The bayonet is screwed to the phone's frame; shims under the screws are the only adjustment a line can make
(issue #21). Coordinates are the sensor's (looking from the lens at the sensor, +x right, +y down, mm from the
optical axis, which the bayonet is centred on), as in :class:`rig.config.unit.MountTruth`. A shim under a screw
lifts the bayonet there away from the sensor by its thickness: the kinematics (plane through the screw heights,
least squares for more than three screws) are in :func:`rig.twin.mount.shim_pose` (the plant) and
:mod:`rig.calibrate.shim` (the recipe's model).

The search for a recipe is exhaustive over every screw's possible stacks (:mod:`rig.calibrate.shim`), so the mount
has three or four screws and the stock few enough thicknesses for it to stay small.
"""

from __future__ import annotations

import itertools
import math

from pydantic import Field, field_validator, model_validator

from rig.config.loader import StrictModel

MAX_STACK_OPTIONS = 120
"""Most distinct stack totals per screw the exhaustive recipe search accepts (120⁴ ≈ 2·10⁸ is its ceiling)."""


class MountScrew(StrictModel):
    """One screw of the bayonet and the shims it carries as built."""

    name: str = Field(min_length=1, max_length=8, pattern=r"^[A-Za-z0-9]+$")
    x_mm: float = Field(ge=-40, le=40, description="from the optical axis, +x right (sensor coordinates)")
    y_mm: float = Field(ge=-40, le=40, description="from the optical axis, +y down")
    as_built_stack_um: list[float] = Field(
        default_factory=lambda: [50.0, 50.0],
        description="shims under this screw as the line builds the phone (µm): room to remove as well as to add",
    )

    @property
    def as_built_total_um(self) -> float:
        return float(sum(self.as_built_stack_um))


def _bolt_circle(radius_mm: float, names: str, first_deg: float) -> list[MountScrew]:
    step = 360.0 / len(names)
    return [
        MountScrew(
            name=name,
            x_mm=round(radius_mm * math.cos(math.radians(first_deg + i * step)), 4),
            y_mm=round(radius_mm * math.sin(math.radians(first_deg + i * step)), 4),
        )
        for i, name in enumerate(names)
    ]


class MountDesign(StrictModel):
    """The bayonet's screws (3 or 4) and how much bending a 4-screw mount may take.

    Default: four screws at 45°, 135°, 225° and 315° on a 24 mm bolt-circle radius (the phone's bayonet), each on
    two 50 µm shims as built.
    """

    screws: list[MountScrew] = Field(
        default_factory=lambda: _bolt_circle(24.0, "ABCD", -45.0), min_length=3, max_length=4
    )
    max_warp_um: float = Field(
        5.0,
        ge=0,
        le=50,
        description=(
            "4 screws: largest departure of a screw's stack from the plane the bayonet settles in (µm); the "
            "bayonet takes that much bending elastically"
        ),
    )

    @model_validator(mode="after")
    def _geometry(self) -> MountDesign:
        names = [s.name for s in self.screws]
        if len(set(names)) != len(names):
            raise ValueError(f"unique screw names, got {names}")
        # three screws on one line cannot define a plane (and neither can four if every triple is collinear)
        spans = [
            abs((q.x_mm - p.x_mm) * (r.y_mm - p.y_mm) - (q.y_mm - p.y_mm) * (r.x_mm - p.x_mm))
            for p, q, r in itertools.combinations(self.screws, 3)
        ]
        if max(spans) < 1.0:
            positions = [(s.x_mm, s.y_mm) for s in self.screws]
            raise ValueError(f"screws that span a plane, got collinear positions {positions}")
        return self


class ShimStock(StrictModel):
    """The shims the line has: thicknesses (µm) and how many may be stacked under one screw."""

    thicknesses_um: list[float] = Field(default_factory=lambda: [5.0, 10.0, 20.0, 50.0], min_length=1, max_length=6)
    max_per_screw: int = Field(5, ge=1, le=8)

    @field_validator("thicknesses_um")
    @classmethod
    def _thicknesses(cls, v: list[float]) -> list[float]:
        if any(t <= 0 or t > 500 for t in v):
            raise ValueError(f"thicknesses in (0, 500] µm, got {v}")
        if len(set(v)) != len(v):
            raise ValueError(f"distinct thicknesses, got {v}")
        return sorted(v, reverse=True)

    @model_validator(mode="after")
    def _search_size(self) -> ShimStock:
        totals = len(self.stack_totals_um())
        if totals > MAX_STACK_OPTIONS:
            raise ValueError(
                f"at most {MAX_STACK_OPTIONS} distinct stack totals per screw for the recipe search, got {totals} "
                f"({len(self.thicknesses_um)} thicknesses, up to {self.max_per_screw} stacked)"
            )
        return self

    def stacks(self) -> dict[float, tuple[float, ...]]:
        """Every reachable stack total (µm) with the stack of fewest shims that makes it (thickest first)."""
        best: dict[float, tuple[float, ...]] = {0.0: ()}
        for count in range(1, self.max_per_screw + 1):
            for combo in itertools.combinations_with_replacement(sorted(self.thicknesses_um, reverse=True), count):
                total = round(float(sum(combo)), 6)
                if total not in best:
                    best[total] = tuple(combo)
        return dict(sorted(best.items()))

    def stack_totals_um(self) -> list[float]:
        return list(self.stacks())


class ReworkSettings(StrictModel):
    """The rework loop (issue #21): what a recipe aims for and how often the bench may re-shim one unit."""

    max_iterations: int = Field(3, ge=1, le=10, description="shim, re-measure: at most this many rounds")
    target_flange_um: float = Field(1.5, gt=0, le=20, description="flange the recipe aims within (± µm)")
    target_tilt_arcmin: float = Field(0.3, gt=0, le=10, description="tilt per axis the recipe aims within (± ′)")


def check_as_built(mount: MountDesign, stock: ShimStock) -> None:
    """Raise ``ValueError`` unless every as-built stack is made of the stock's thicknesses, within its count."""
    for screw in mount.screws:
        stack = screw.as_built_stack_um
        if len(stack) > stock.max_per_screw or any(t not in stock.thicknesses_um for t in stack):
            raise ValueError(
                f"mount screw {screw.name}: as-built stack {stack} made of shims.thicknesses_um "
                f"{stock.thicknesses_um}, at most {stock.max_per_screw} of them"
            )
