"""GRBL 1.1 response codes and their meanings, shared by the driver (to explain) and the twin's peer (to answer).

Source: gnea/grbl ``doc/csv/error_codes_en_US.csv`` and ``doc/csv/alarm_codes_en_US.csv`` (Grbl v1.1h); the
names are the v1.0 short messages, the descriptions the v1.1 long ones.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum, IntEnum, StrEnum


class GrblError(IntEnum):
    """``error:N`` codes of GRBL 1.1 (gnea/grbl report.h ``STATUS_*``)."""

    EXPECTED_COMMAND_LETTER = 1
    BAD_NUMBER_FORMAT = 2
    INVALID_STATEMENT = 3
    NEGATIVE_VALUE = 4
    SETTING_DISABLED = 5
    SETTING_STEP_PULSE_MIN = 6
    SETTING_READ_FAIL = 7
    IDLE_ERROR = 8
    SYSTEM_GC_LOCK = 9
    SOFT_LIMIT_ERROR = 10
    OVERFLOW = 11
    MAX_STEP_RATE_EXCEEDED = 12
    CHECK_DOOR = 13
    LINE_LENGTH_EXCEEDED = 14
    TRAVEL_EXCEEDED = 15
    INVALID_JOG_COMMAND = 16
    SETTING_DISABLED_LASER = 17
    GCODE_UNSUPPORTED_COMMAND = 20
    GCODE_MODAL_GROUP_VIOLATION = 21
    GCODE_UNDEFINED_FEED_RATE = 22
    GCODE_COMMAND_VALUE_NOT_INTEGER = 23
    GCODE_AXIS_COMMAND_CONFLICT = 24
    GCODE_WORD_REPEATED = 25
    GCODE_NO_AXIS_WORDS = 26
    GCODE_INVALID_LINE_NUMBER = 27
    GCODE_VALUE_WORD_MISSING = 28
    GCODE_UNSUPPORTED_COORD_SYS = 29
    GCODE_G53_INVALID_MOTION_MODE = 30
    GCODE_AXIS_WORDS_EXIST = 31
    GCODE_NO_AXIS_WORDS_IN_PLANE = 32
    GCODE_INVALID_TARGET = 33
    GCODE_ARC_RADIUS_ERROR = 34
    GCODE_NO_OFFSETS_IN_PLANE = 35
    GCODE_UNUSED_WORDS = 36
    GCODE_G43_DYNAMIC_AXIS_ERROR = 37
    GCODE_MAX_VALUE_EXCEEDED = 38


class GrblAlarm(IntEnum):
    """``ALARM:N`` codes of GRBL 1.1 (gnea/grbl report.h ``EXEC_ALARM_*``)."""

    HARD_LIMIT = 1
    SOFT_LIMIT = 2
    ABORT_CYCLE = 3
    PROBE_FAIL_INITIAL = 4
    PROBE_FAIL_CONTACT = 5
    HOMING_FAIL_RESET = 6
    HOMING_FAIL_DOOR = 7
    HOMING_FAIL_PULLOFF = 8
    HOMING_FAIL_APPROACH = 9


ERROR_MESSAGES: dict[int, tuple[str, str]] = {
    1: ("Expected command letter", "G-code words consist of a letter and a value. Letter was not found."),
    2: ("Bad number format", "Missing the expected G-code word value or numeric value format is not valid."),
    3: ("Invalid statement", "Grbl '$' system command was not recognized or supported."),
    4: ("Value < 0", "Negative value received for an expected positive value."),
    5: ("Setting disabled", "Homing cycle failure. Homing is not enabled via settings."),
    6: ("Value < 3 usec", "Minimum step pulse time must be greater than 3usec."),
    7: ("EEPROM read fail", "An EEPROM read failed. Auto-restoring affected EEPROM to default values."),
    8: ("Not idle", "Grbl '$' command cannot be used unless Grbl is IDLE. Ensures smooth operation during a job."),
    9: ("G-code lock", "G-code commands are locked out during alarm or jog state."),
    10: ("Homing not enabled", "Soft limits cannot be enabled without homing also enabled."),
    11: ("Line overflow", "Max characters per line exceeded. Received command line was not executed."),
    12: ("Step rate > 30kHz", "Grbl '$' setting value cause the step rate to exceed the maximum supported."),
    13: ("Check Door", "Safety door detected as opened and door state initiated."),
    14: ("Line length exceeded", "Build info or startup line exceeded EEPROM line length limit. Line not stored."),
    15: ("Travel exceeded", "Jog target exceeds machine travel. Jog command has been ignored."),
    16: ("Invalid jog command", "Jog command has no '=' or contains prohibited g-code."),
    17: ("Setting disabled", "Laser mode requires PWM output."),
    20: ("Unsupported command", "Unsupported or invalid g-code command found in block."),
    21: ("Modal group violation", "More than one g-code command from same modal group found in block."),
    22: ("Undefined feed rate", "Feed rate has not yet been set or is undefined."),
    23: ("Invalid gcode ID:23", "G-code command in block requires an integer value."),
    24: ("Invalid gcode ID:24", "More than one g-code command that requires axis words found in block."),
    25: ("Invalid gcode ID:25", "Repeated g-code word found in block."),
    26: (
        "Invalid gcode ID:26",
        "No axis words found in block for g-code command or current modal state which requires them.",
    ),
    27: ("Invalid gcode ID:27", "Line number value is invalid."),
    28: ("Invalid gcode ID:28", "G-code command is missing a required value word."),
    29: ("Invalid gcode ID:29", "G59.x work coordinate systems are not supported."),
    30: ("Invalid gcode ID:30", "G53 only allowed with G0 and G1 motion modes."),
    31: ("Invalid gcode ID:31", "Axis words found in block when no command or current modal state uses them."),
    32: ("Invalid gcode ID:32", "G2 and G3 arcs require at least one in-plane axis word."),
    33: ("Invalid gcode ID:33", "Motion command target is invalid."),
    34: ("Invalid gcode ID:34", "Arc radius value is invalid."),
    35: ("Invalid gcode ID:35", "G2 and G3 arcs require at least one in-plane offset word."),
    36: ("Invalid gcode ID:36", "Unused value words found in block."),
    37: ("Invalid gcode ID:37", "G43.1 dynamic tool length offset is not assigned to configured tool length axis."),
    38: ("Invalid gcode ID:38", "Tool number greater than max supported value."),
}
"""``error:N`` → (short name, description)."""

ALARM_MESSAGES: dict[int, tuple[str, str]] = {
    1: (
        "Hard limit",
        "Hard limit has been triggered. Machine position is likely lost due to sudden halt. "
        "Re-homing is highly recommended.",
    ),
    2: (
        "Soft limit",
        "Soft limit alarm. G-code motion target exceeds machine travel. Machine position retained. "
        "Alarm may be safely unlocked.",
    ),
    3: (
        "Abort during cycle",
        "Reset while in motion. Machine position is likely lost due to sudden halt. Re-homing is highly recommended.",
    ),
    4: (
        "Probe fail",
        "Probe fail. Probe is not in the expected initial state before starting probe cycle when G38.2 and G38.3 "
        "is not triggered and G38.4 and G38.5 is triggered.",
    ),
    5: (
        "Probe fail",
        "Probe fail. Probe did not contact the workpiece within the programmed travel for G38.2 and G38.4.",
    ),
    6: ("Homing fail", "Homing fail. The active homing cycle was reset."),
    7: ("Homing fail", "Homing fail. Safety door was opened during homing cycle."),
    8: (
        "Homing fail",
        "Homing fail. Pull off travel failed to clear limit switch. Try increasing pull-off setting or check wiring.",
    ),
    9: (
        "Homing fail",
        "Homing fail. Could not find limit switch within search distances. Try increasing max travel, decreasing "
        "pull-off distance, or check wiring.",
    ),
}
"""``ALARM:N`` → (short name, description)."""


def error_meaning(code: int) -> str:
    """One line explaining ``error:code``, e.g. ``"error:20 Unsupported command: Unsupported or invalid ..."``."""
    name, text = ERROR_MESSAGES.get(code, ("Unknown error", "not a GRBL 1.1 error code"))
    return f"error:{code} {name}: {text}"


def alarm_meaning(code: int) -> str:
    """One line explaining ``ALARM:code``, e.g. ``"ALARM:2 Soft limit: Soft limit alarm. ..."``."""
    name, text = ALARM_MESSAGES.get(code, ("Unknown alarm", "not a GRBL 1.1 alarm code"))
    return f"ALARM:{code} {name}: {text}"


# =========================================================================================== the wire (one place)
# Everything below is what GRBL 1.1h puts on or expects from the serial line. The driver (rig.devices.grbl) reads
# it, the twin's peer (rig.twin.grbl) writes it; neither spells a wire string of its own.
# Sources: gnea/grbl doc/markdown/interface.md ("Grbl Response Messages", "Real-time Status Reports", "Streaming
# Protocol: Character-Counting"), commands.md, settings.md, and grbl/report.c, protocol.c, limits.c, serial.c,
# config.h of v1.1h (build 20190830).

VERSION = "1.1h"
BUILD_DATE = "20190830"
BANNER = f"Grbl {VERSION} ['$' for help]"
"""report_init_message(): printed as ``\\r\\nGrbl 1.1h ['$' for help]\\r\\n`` -- GRBL emits a blank line first."""
BANNER_RE = re.compile(r"^Grbl (?P<version>\d\.\d\w?) \[.*\]$")
VERSION_LINE = f"[VER:{VERSION}.{BUILD_DATE}:]"
HELP_LINE = "[HLP:$$ $# $G $I $N $x=val $Nx=line $J=line $SLP $C $X $H ~ ! ? ctrl-x]"

LINE_MAX_CHARS = 79
"""protocol.c: LINE_BUFFER_SIZE is 80 including the terminator; a longer line is answered ``error:11``."""
RX_BUFFER_BYTES = 128
"""serial.h RX_BUFFER_SIZE on an ATmega328p: the bytes a host may have in flight (character counting)."""
PLANNER_BLOCKS = 15
"""planner.h BLOCK_BUFFER_SIZE 16; the planner reports (and holds) one block less."""
OPTIONS_LINE = f"[OPT:V,{PLANNER_BLOCKS},{RX_BUFFER_BYTES}]"
"""``$I``'s build options of a stock 1.1h on an ATmega328p: variable spindle, 15 planner blocks, 128 RX bytes."""
OPTIONS_RE = re.compile(r"^\[OPT:(?P<codes>[A-Z*+]*),(?P<blocks>\d+),(?P<rx>\d+)\]$")
"""``$I`` build options ``[OPT:V,15,128]``: codes, planner blocks, RX buffer bytes (interface.md, ``$I``)."""
STARTUP_LINES = 2
"""``$N0`` and ``$N1`` (config.h N_STARTUP_LINE)."""
ALARM_REPORT_DELAY_S = 0.5
"""report_alarm_message() waits 500 ms after ``ALARM:N`` (``delay_ms(500)``), and protocol_exec_rt_system() then
clears any reset received meanwhile before a critical alarm's loop: a Ctrl-X sent right after the alarm is lost."""
MM_PER_INCH = 25.4
COORD_DECIMALS_MM = 3
COORD_DECIMALS_INCH = 4
"""report.c N_DECIMAL_COORDVALUE_MM / _INCH: positions in status reports and ``$#``."""


class Realtime(bytes, Enum):
    """Realtime command bytes, acted on the moment they arrive, never queued (commands.md "Realtime commands")."""

    STATUS = b"?"
    FEED_HOLD = b"!"
    CYCLE_START = b"~"
    SOFT_RESET = b"\x18"
    SAFETY_DOOR = b"\x84"
    JOG_CANCEL = b"\x85"


class Message(StrEnum):
    """Feedback messages of 1.1h (report.c report_feedback_message), exactly as printed."""

    RESET_TO_CONTINUE = "[MSG:Reset to continue]"
    UNLOCK_HINT = "[MSG:'$H'|'$X' to unlock]"
    CAUTION_UNLOCKED = "[MSG:Caution: Unlocked]"
    ENABLED = "[MSG:Enabled]"
    DISABLED = "[MSG:Disabled]"
    CHECK_DOOR = "[MSG:Check Door]"
    CHECK_LIMITS = "[MSG:Check Limits]"
    PROGRAM_END = "[MSG:Pgm End]"
    RESTORING_DEFAULTS = "[MSG:Restoring defaults]"
    RESTORING_SPINDLE = "[MSG:Restoring spindle]"
    SLEEPING = "[MSG:Sleeping]"


OK = "ok"
ERROR_PREFIX = "error:"
ALARM_PREFIX = "ALARM:"
MESSAGE_PREFIX = "[MSG:"
STARTUP_RESULT_PREFIX = ">"
"""A ``$N`` startup line's result: ``>G21:ok`` (report.c report_execute_startup_message)."""


@dataclass(frozen=True)
class AlarmBehaviour:
    """What 1.1h does after printing ``ALARM:N`` (protocol.c protocol_exec_rt_system, limits.c, motion_control.c).

    Attributes
    ----------
    critical
        GRBL prints :attr:`Message.RESET_TO_CONTINUE` and spins in a loop that answers nothing, not even ``?``,
        until a soft reset (received after the 500 ms delay); the line being executed gets its ``ok`` only after
        that reset, before the banner.
    position_lost
        The machine stopped abruptly: re-home before any move (alarm_codes_en_US.csv: "Re-homing is highly
        recommended").
    resets_itself
        GRBL aborts by itself after the alarm (mc_reset from the homing cycle, or the reset that caused it): the
        line gets ``ok``, then a blank line, the banner and :attr:`Message.UNLOCK_HINT`; input sent before the banner
        is discarded.
    """

    critical: bool
    position_lost: bool
    resets_itself: bool


ALARM_BEHAVIOUR: dict[GrblAlarm, AlarmBehaviour] = {
    GrblAlarm.HARD_LIMIT: AlarmBehaviour(critical=True, position_lost=True, resets_itself=False),
    GrblAlarm.SOFT_LIMIT: AlarmBehaviour(critical=True, position_lost=False, resets_itself=False),
    GrblAlarm.ABORT_CYCLE: AlarmBehaviour(critical=False, position_lost=True, resets_itself=True),
    GrblAlarm.PROBE_FAIL_INITIAL: AlarmBehaviour(critical=False, position_lost=False, resets_itself=False),
    GrblAlarm.PROBE_FAIL_CONTACT: AlarmBehaviour(critical=False, position_lost=False, resets_itself=False),
    GrblAlarm.HOMING_FAIL_RESET: AlarmBehaviour(critical=False, position_lost=True, resets_itself=True),
    GrblAlarm.HOMING_FAIL_DOOR: AlarmBehaviour(critical=False, position_lost=True, resets_itself=True),
    GrblAlarm.HOMING_FAIL_PULLOFF: AlarmBehaviour(critical=False, position_lost=True, resets_itself=True),
    GrblAlarm.HOMING_FAIL_APPROACH: AlarmBehaviour(critical=False, position_lost=True, resets_itself=True),
}
"""The one table of GRBL's alarm behaviour the driver recovers by and the peer behaves by.

Soft limit (ALARM:2) is critical but keeps the position (limits_soft_check stops before moving); a hard limit
(ALARM:1) loses it. ALARM:6 and ALARM:3 follow a reset the host sent, so their banner is that reset's."""


CRITICAL_ALARMS: frozenset[int] = frozenset(code for code, how in ALARM_BEHAVIOUR.items() if how.critical)
"""Alarms after which GRBL answers nothing, not even ``?``, until a soft reset (protocol.c protocol_exec_rt_system,
"critical event": an empty loop that polls only the reset flag). GRBL first pushes ``[MSG:Reset to continue]``."""


def alarm_behaviour(code: int) -> AlarmBehaviour:
    """The behaviour of ``ALARM:code``; an unknown code is treated as the worst case (critical, position lost)."""
    try:
        return ALARM_BEHAVIOUR[GrblAlarm(code)]
    except ValueError:
        return AlarmBehaviour(critical=True, position_lost=True, resets_itself=False)


class Setting(IntEnum):
    """``$N`` settings of 1.1h that a station depends on (settings.md; doc/csv/setting_codes_en_US.csv)."""

    STEP_PULSE_US = 0
    STEP_IDLE_DELAY_MS = 1
    STEP_PORT_INVERT = 2
    DIRECTION_PORT_INVERT = 3
    STEP_ENABLE_INVERT = 4
    LIMIT_PINS_INVERT = 5
    PROBE_PIN_INVERT = 6
    STATUS_REPORT_MASK = 10
    JUNCTION_DEVIATION_MM = 11
    ARC_TOLERANCE_MM = 12
    REPORT_INCHES = 13
    SOFT_LIMITS = 20
    HARD_LIMITS = 21
    HOMING_CYCLE = 22
    HOMING_DIR_INVERT = 23
    HOMING_FEED_MM_MIN = 24
    HOMING_SEEK_MM_MIN = 25
    HOMING_DEBOUNCE_MS = 26
    HOMING_PULL_OFF_MM = 27
    SPINDLE_MAX_RPM = 30
    SPINDLE_MIN_RPM = 31
    LASER_MODE = 32
    X_STEPS_PER_MM = 100
    Y_STEPS_PER_MM = 101
    Z_STEPS_PER_MM = 102
    X_MAX_RATE_MM_MIN = 110
    Y_MAX_RATE_MM_MIN = 111
    Z_MAX_RATE_MM_MIN = 112
    X_ACCEL_MM_S2 = 120
    Y_ACCEL_MM_S2 = 121
    Z_ACCEL_MM_S2 = 122
    X_MAX_TRAVEL_MM = 130
    Y_MAX_TRAVEL_MM = 131
    Z_MAX_TRAVEL_MM = 132


AXIS_SETTING_BASES: tuple[int, int, int, int] = (100, 110, 120, 130)
"""Per-axis settings are ``base + axis index`` (X 0, Y 1, Z 2): steps/mm, max rate, acceleration, max travel."""

INTEGER_SETTINGS: frozenset[int] = frozenset({0, 1, 2, 3, 4, 5, 6, 10, 13, 20, 21, 22, 23, 26, 30, 31, 32})
"""Settings ``$$`` prints without decimals (report.c report_grbl_settings); the others print with 3."""

BOOLEAN_SETTINGS: frozenset[int] = frozenset({4, 5, 6, 13, 20, 21, 22, 32})
"""Settings that accept only 0 or 1 (settings.c settings_store_global_setting)."""

DEFAULT_SETTINGS: dict[int, float] = {
    0: 10, 1: 25, 2: 0, 3: 0, 4: 0, 5: 0, 6: 0, 10: 1, 11: 0.010, 12: 0.002, 13: 0, 20: 0, 21: 0, 22: 0, 23: 0,
    24: 25.0, 25: 500.0, 26: 250, 27: 1.0, 30: 1000, 31: 0, 32: 0,
    100: 250.0, 101: 250.0, 102: 250.0, 110: 500.0, 111: 500.0, 112: 500.0,
    120: 10.0, 121: 10.0, 122: 10.0, 130: 200.0, 131: 200.0, 132: 200.0,
}  # fmt: skip
"""What ``settings_restore`` writes after an EEPROM read failure (defaults.h DEFAULTS_GENERIC): 500 mm/min,
10 mm/s², 200 mm travel, homing and limits off -- a bench on these defaults is not the station's bench."""

STATUS_MASK_MPOS = 1
"""``$10`` bit 0: report MPos (set) or WPos (clear)."""
STATUS_MASK_BUFFER = 2
"""``$10`` bit 1: add ``Bf:planner,rx``."""

SETTING_LINE_RE = re.compile(r"^\$(?P<number>\d+)=(?P<value>[-+]?\d*\.?\d+)$")
"""One line of the ``$$`` dump, e.g. ``$110=600.000``."""


def format_setting(number: int, value: float) -> str:
    """One ``$$`` line as report_grbl_settings prints it."""
    return f"${number}={int(value)}" if number in INTEGER_SETTINGS else f"${number}={value:.3f}"


# ------------------------------------------------------------------------------------------- status reports
Triple = tuple[float, float, float]


@dataclass(frozen=True)
class StatusReport:
    """One realtime status report ``<State|MPos:..|Bf:..|Ln:..|FS:..|Pn:..|WCO:..|Ov:..|A:..>``.

    Field order and formats of report.c report_realtime_status() in 1.1h (interface.md "Real-time Status
    Reports"). Positions are in the report's units (inches when ``$13=1``); exactly one of ``mpos``/``wpos`` is
    given, as ``$10`` bit 0 chooses. ``wco`` is sent only every 10-30 reports (and on a change).
    """

    state: str  # Idle, Run, Hold, Jog, Alarm, Door, Check, Home, Sleep
    substate: int | None = None
    mpos: Triple | None = None
    wpos: Triple | None = None
    planner_blocks_free: int | None = None
    rx_bytes_free: int | None = None
    line_number: int | None = None
    feed: float = 0.0
    spindle: float | None = 0.0  # None: the ``F:`` form (no variable spindle)
    pins: str = ""
    wco: Triple | None = None
    overrides_pct: tuple[int, int, int] | None = None
    accessories: str = ""
    decimals: int = COORD_DECIMALS_MM

    def format(self) -> str:
        def triple(values: Triple) -> str:
            return ",".join(f"{v:.{self.decimals}f}" for v in values)

        state = self.state if self.substate is None else f"{self.state}:{self.substate}"
        out = [state]
        if self.mpos is not None:
            out.append(f"MPos:{triple(self.mpos)}")
        elif self.wpos is not None:
            out.append(f"WPos:{triple(self.wpos)}")
        if self.planner_blocks_free is not None:
            out.append(f"Bf:{self.planner_blocks_free},{self.rx_bytes_free}")
        if self.line_number is not None:
            out.append(f"Ln:{self.line_number}")
        out.append(f"F:{self.feed:.0f}" if self.spindle is None else f"FS:{self.feed:.0f},{self.spindle:.0f}")
        if self.pins:
            out.append(f"Pn:{self.pins}")
        if self.wco is not None:
            out.append(f"WCO:{triple(self.wco)}")
        elif self.overrides_pct is not None:
            out.append("Ov:" + ",".join(str(v) for v in self.overrides_pct))
            if self.accessories:
                out.append(f"A:{self.accessories}")
        return "<" + "|".join(out) + ">"


def _triple(text: str) -> Triple:
    parts = text.split(",")
    if len(parts) < 3:
        raise ValueError(f"need 3 axes in {text!r}")
    return float(parts[0]), float(parts[1]), float(parts[2])


def parse_status_report(line: str) -> StatusReport:
    """Parse a 1.1 status report (fields in any order); raises ValueError on anything else."""
    if not (line.startswith("<") and line.endswith(">")):
        raise ValueError("not enclosed in < >")
    fields = line[1:-1].split("|")
    state, _, sub = fields[0].partition(":")
    values: dict[str, str] = {}
    for item in fields[1:]:
        key, _, value = item.partition(":")
        values[key] = value
    if "MPos" not in values and "WPos" not in values:
        raise ValueError("neither MPos nor WPos")
    feed, spindle = 0.0, None
    if "FS" in values:
        feed_text, _, spindle_text = values["FS"].partition(",")
        feed, spindle = float(feed_text), float(spindle_text)
    elif "F" in values:
        feed = float(values["F"])
    planner = rx = None
    if "Bf" in values:
        planner_text, _, rx_text = values["Bf"].partition(",")
        planner, rx = int(planner_text), int(rx_text)
    overrides = None
    if "Ov" in values:
        ov = [int(v) for v in values["Ov"].split(",")]
        overrides = (ov[0], ov[1], ov[2])
    return StatusReport(
        state=state,
        substate=int(sub) if sub.isdigit() else None,
        mpos=_triple(values["MPos"]) if "MPos" in values else None,
        wpos=_triple(values["WPos"]) if "WPos" in values else None,
        planner_blocks_free=planner,
        rx_bytes_free=rx,
        line_number=int(values["Ln"]) if "Ln" in values else None,
        feed=feed,
        spindle=spindle,
        pins=values.get("Pn", ""),
        wco=_triple(values["WCO"]) if "WCO" in values else None,
        overrides_pct=overrides,
        accessories=values.get("A", ""),
    )


PARSER_STATE_RE = re.compile(r"^\[GC:(?P<words>[^\]]*)\]$")
"""``$G``: ``[GC:G0 G54 G17 G21 G90 G94 M5 M9 T0 F0 S0]`` (interface.md "Feedback messages")."""
PROBE_RE = re.compile(r"^\[PRB:(?P<pos>[-0-9.,]+):(?P<ok>[01])\]$")
"""A probe result ``[PRB:x,y,z:success]`` (machine coordinates)."""
PARAMETER_RE = re.compile(r"^\[(?P<name>G5[4-9]|G28|G30|G92|TLO):(?P<values>[-0-9.,]+)\]$")
"""A ``$#`` line: ``[G54:-305.000,-95.000,-105.000]`` (work coordinate offsets are stored in EEPROM)."""
