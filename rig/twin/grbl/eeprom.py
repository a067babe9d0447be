"""What the twin GRBL keeps across resets: ``$$`` settings, G54–G59 and G28/G30 positions, ``$N`` startup lines.

A fresh (lost) EEPROM makes the next power-up report ``error:7`` and restore GRBL's defaults (settings.c
settings_init → settings_restore; defaults.h DEFAULTS_GENERIC), which :data:`rig.spec.grbl.DEFAULT_SETTINGS` holds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from rig.config.station import StationConfig, required_grbl_settings
from rig.spec.grbl import (
    BOOLEAN_SETTINGS,
    DEFAULT_SETTINGS,
    INTEGER_SETTINGS,
    STARTUP_LINES,
    GrblError,
    Setting,
    format_setting,
)
from rig.twin.grbl.gcode import NUMBER
from rig.twin.grbl.motion import Vec

ZERO: Vec = (0.0, 0.0, 0.0)
COORD_SYSTEMS = ("G54", "G55", "G56", "G57", "G58", "G59")


def provisioned_settings(station: StationConfig) -> dict[int, float]:
    """A controller set up for ``station``: GRBL's defaults overwritten with what the station requires.

    The homing feed ``$24`` and seek ``$25`` are the station engineer's choice (not checked by the driver): the
    seek is the slowest axis's max rate, the locate feed a tenth of it.
    """
    values = dict(DEFAULT_SETTINGS)
    values.update({number: need.value for number, need in required_grbl_settings(station).items()})
    seek = min(values[110], values[111], values[112])
    values[Setting.HOMING_SEEK_MM_MIN] = seek
    values[Setting.HOMING_FEED_MM_MIN] = seek / 10
    return values


@dataclass
class Eeprom:
    settings: dict[int, float]
    coord_systems: list[Vec] = field(default_factory=lambda: [ZERO] * len(COORD_SYSTEMS))
    g28: Vec = ZERO
    g30: Vec = ZERO
    startup_lines: list[str] = field(default_factory=lambda: [""] * STARTUP_LINES)
    lost: bool = False
    """The next power-up finds the EEPROM unreadable (checksum), reports error:7 and restores the defaults."""

    def restore_defaults(self) -> None:
        self.settings = dict(DEFAULT_SETTINGS)
        self.coord_systems = [ZERO] * len(COORD_SYSTEMS)
        self.g28 = self.g30 = ZERO
        self.startup_lines = [""] * STARTUP_LINES
        self.lost = False

    def __getitem__(self, number: int) -> float:
        return self.settings[number]

    def settings_lines(self) -> list[str]:
        return [format_setting(n, v) for n, v in sorted(self.settings.items())]

    def write(self, number: int, text: str) -> GrblError | None:
        """``$N=value`` (settings.c settings_store_global_setting and system.c): the errors GRBL gives."""
        if number not in self.settings:
            return GrblError.INVALID_STATEMENT
        if not NUMBER.fullmatch(text):
            return GrblError.BAD_NUMBER_FORMAT
        value = float(text)
        if value < 0:
            return GrblError.NEGATIVE_VALUE
        if number == Setting.STEP_PULSE_US and value < 3:
            return GrblError.SETTING_STEP_PULSE_MIN
        if number in BOOLEAN_SETTINGS:
            value = float(bool(value))
        if number == Setting.SOFT_LIMITS and value and not self.settings[Setting.HOMING_CYCLE]:
            return GrblError.SOFT_LIMIT_ERROR
        if number == Setting.HOMING_CYCLE and not value:
            self.settings[Setting.SOFT_LIMITS] = 0.0  # settings.c: disabling homing disables soft limits
        self.settings[number] = float(int(value)) if number in INTEGER_SETTINGS else value
        return None

    def vector(self, base: int) -> Vec:
        return (self.settings[base], self.settings[base + 1], self.settings[base + 2])


STARTUP_SET_RE = re.compile(r"^\$N(?P<index>\d)=(?P<line>.*)$")
