"""The twin's GRBL 1.1h controller on a pseudo-terminal, in parts a reader can hold in their head.

- :mod:`~rig.twin.grbl.transport`: the pty and its reader thread (bytes in, lines out).
- :mod:`~rig.twin.grbl.gcode`: what the firmware keeps of a line and the words it accepts.
- :mod:`~rig.twin.grbl.motion`: blocks and their trapezoidal profiles (the planner's limits).
- :mod:`~rig.twin.grbl.eeprom`: settings, coordinate systems, startup lines; a lost EEPROM.
- :mod:`~rig.twin.grbl.machine`: the state machine (states, alarms, resets, homing, status reports).

Wire strings, codes and the alarm table come from :mod:`rig.spec.grbl`, which the driver reads too.
"""

from rig.twin.grbl.machine import GrblFaults, GrblPeer
from rig.twin.grbl.motion import TrapezoidProfile

__all__ = ["GrblFaults", "GrblPeer", "TrapezoidProfile"]
