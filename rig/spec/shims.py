"""A shim plan: which shims go under which mount screw. What the calibration hands the operator's hands.

Neutral (imports nothing of ours), because the recipe is computed in :mod:`rig.calibrate.shim`, carried out by an
operator in :mod:`rig.devices` (prompts on a terminal) or by the twin's operator (:mod:`rig.twin.operator`), and
none of those may import another.

Sign: a thicker stack under a screw lifts the bayonet there away from the sensor, so it moves the lens away from
the sensor (``flange_offset_um`` of :class:`rig.config.unit.MountTruth` grows by the change).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ScrewShims:
    """The shims under one mount screw after the rework.

    Attributes
    ----------
    screw
        The screw's name in the station's ``[mount]`` table (``A``, ``B``…).
    stack_um
        Thicknesses of the shims to place under it, thickest first (µm); empty: no shim.
    change_um
        Total thickness after minus before (µm); + lifts the bayonet there away from the sensor.
    """

    screw: str
    stack_um: tuple[float, ...]
    change_um: float

    @property
    def total_um(self) -> float:
        return float(sum(self.stack_um))

    def instruction(self) -> str:
        """One line for the operator, e.g. ``screw A: 50 + 20 + 5 µm = 75 µm (+25 µm)``."""
        stack = " + ".join(f"{t:g}" for t in self.stack_um) or "no shim"
        unit = " µm" if self.stack_um else ""
        return f"screw {self.screw}: {stack}{unit} = {self.total_um:g} µm ({self.change_um:+g} µm)"


@dataclass(frozen=True)
class ShimPlan:
    """The stack for every screw of the mount (one entry per screw, in the station's order)."""

    screws: tuple[ScrewShims, ...]

    @property
    def changes(self) -> bool:
        """True when at least one screw's stack changes thickness."""
        return any(abs(s.change_um) > 1e-9 for s in self.screws)

    def stacks_um(self) -> dict[str, tuple[float, ...]]:
        return {s.screw: s.stack_um for s in self.screws}

    def describe(self) -> str:
        """``screw A +20 µm, screw B +10 µm, screw C +0 µm`` (the changes)."""
        return ", ".join(f"screw {s.screw} {s.change_um:+g} µm" for s in self.screws)
