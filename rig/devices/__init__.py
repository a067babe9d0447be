"""Hardware behind small Protocols (DESIGN.md §8.4): plans ask for a capability, never a class.

The value types the Protocols return (``LensState``, ``StageStatus`` …) live in :mod:`rig.spec.types`.
"""

from rig.devices.protocols import Light, Operator, Phone, Stage

__all__ = ["Light", "Operator", "Phone", "Stage"]
