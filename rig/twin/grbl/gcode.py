"""The twin GRBL's line parser: what gc_execute_line (gcode.c) keeps of a line and the errors it gives first.

Supported (commands.md, gcode.c of 1.1h): G0 G1 G4 G10 L2/L20 G17 G20 G21 G28 G28.1 G30 G30.1 G38.2–G38.5 G53 G54–G59
G90 G91 G92 G92.1 G94, M0 M2 M3 M4 M5 M8 M9 M30, words F L N P S T X Y Z. Arcs (G2/G3) are outside what the bench
sends and answer ``error:20`` here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from rig.spec.grbl import GrblError

NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)")

# G codes ×10 (GRBL keeps the mantissa: G38.2 → 382) → modal group (gcode.h MODAL_GROUP_*)
G_GROUPS: dict[int, str] = {
    0: "motion", 10: "motion", 382: "motion", 383: "motion", 384: "motion", 385: "motion",
    40: "nonmodal", 100: "nonmodal", 280: "nonmodal", 281: "nonmodal", 300: "nonmodal", 301: "nonmodal",
    530: "nonmodal", 920: "nonmodal", 921: "nonmodal",
    170: "plane", 200: "units", 210: "units", 900: "distance", 910: "distance", 940: "feedmode",
    540: "coord", 550: "coord", 560: "coord", 570: "coord", 580: "coord", 590: "coord",
}  # fmt: skip
M_GROUPS: dict[int, str] = {0: "stop", 2: "stop", 30: "stop", 3: "spindle", 4: "spindle", 5: "spindle"}
M_GROUPS |= {8: "coolant", 9: "coolant"}
VALUE_LETTERS = frozenset("FLNPSTXYZ")
AXIS_LETTERS = "XYZ"


@dataclass
class Words:
    """One parsed block: modal-group → G/M number (G ×10), and value words."""

    g: dict[str, int] = field(default_factory=dict)
    m: dict[str, int] = field(default_factory=dict)
    values: dict[str, float] = field(default_factory=dict)

    @property
    def axes(self) -> dict[int, float]:
        return {i: self.values[letter] for i, letter in enumerate(AXIS_LETTERS) if letter in self.values}


def clean(raw: str) -> str:
    """What GRBL keeps of a line (protocol.c): no whitespace, no comments (``(...)`` and ``;...``), upper case."""
    out = []
    in_paren = False
    for char in raw:
        if in_paren:
            in_paren = char != ")"
        elif char == "(":
            in_paren = True
        elif char == ";":
            break
        elif not char.isspace() and char not in "/%":
            out.append(char.upper())
    return "".join(out)


def parse_words(line: str) -> Words | GrblError:
    """Split a cleaned G-code line into words, checking them the way gc_execute_line's first pass does."""
    words = Words()
    pos = 0
    while pos < len(line):
        letter = line[pos]
        if not "A" <= letter <= "Z":
            return GrblError.EXPECTED_COMMAND_LETTER
        match = NUMBER.match(line, pos + 1)
        if match is None:
            return GrblError.BAD_NUMBER_FORMAT
        pos = match.end()
        value = float(match[0])
        if letter in "GM":
            number = round(value * 10) if letter == "G" else round(value)
            if letter == "M" and value != int(value):
                return GrblError.GCODE_UNSUPPORTED_COMMAND
            groups = G_GROUPS if letter == "G" else M_GROUPS
            table = words.g if letter == "G" else words.m
            group = groups.get(number)
            if group is None:
                return GrblError.GCODE_UNSUPPORTED_COMMAND
            if group in table:
                return GrblError.GCODE_MODAL_GROUP_VIOLATION
            table[group] = number
        elif letter in VALUE_LETTERS:
            if letter in words.values:
                return GrblError.GCODE_WORD_REPEATED
            if letter in "FSPNT" and value < 0:
                return GrblError.NEGATIVE_VALUE
            words.values[letter] = value
        else:
            return GrblError.GCODE_UNSUPPORTED_COMMAND
    return words
