"""Hardware behind small Protocols (DESIGN.md §8.4): plans ask for a capability, never a class."""

from rig.devices.protocols import (
    AssistOutputs,
    Axis,
    Capture,
    Exposure,
    LensState,
    Light,
    Operator,
    Phone,
    PhoneIdentity,
    Stage,
    StageState,
    StageStatus,
)

__all__ = [
    "AssistOutputs",
    "Axis",
    "Capture",
    "Exposure",
    "LensState",
    "Light",
    "Operator",
    "Phone",
    "PhoneIdentity",
    "Stage",
    "StageState",
    "StageStatus",
]
