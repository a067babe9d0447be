"""Figures at their resolution: how many decimals a value gets, from its limits or its unit, and one unit spelling.

A report that prints ``6.0436e-05 stops`` beside a ±0.15-stop limit claims a precision nobody measured and hides
the comparison that matters. A value is shown one decimal finer than its limits are written (a limit of 0.15
stops gives 0.001-stop steps), and without limits at the resolution its unit usually carries (:data:`UNIT_DECIMALS`).
Fixed-point always: no exponent, so a number survives a pipe, a log or a spreadsheet whole.

Units: records keep the ASCII spelling of the limit files (``um``); everything shown to a person spells it ``µm``,
as the plots do (:func:`display_unit`).
"""

from __future__ import annotations

import math
from decimal import Decimal

UNIT_DECIMALS: dict[str, int] = {
    "um": 2,
    "mm": 3,
    "cy/px": 3,
    "lp/mm": 1,
    "ms": 0,
    "arcmin": 2,
    "stops": 3,
    "%": 2,
    "px": 3,
    "x": 3,
    "bool": 0,
    "count": 0,
    "bit": 2,
    "bins": 2,
    "ratio": 3,
}
"""Decimals of a value without limits, per unit (about a tenth of the usual measurement repeatability)."""
DEFAULT_DECIMALS = 3
MAX_DECIMALS = 6

DISPLAY_UNITS = {"um": "µm"}


def display_unit(unit: str) -> str:
    """The unit as shown to a person (``um`` → ``µm``)."""
    return DISPLAY_UNITS.get(unit, unit)


def _decimals_of(limit: float) -> int:
    exponent = Decimal(repr(float(limit))).normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def decimals_for(unit: str, low: float | None = None, high: float | None = None) -> int:
    """Decimals to show a value with: one finer than its limits are written, else the unit's default."""
    limits = [x for x in (low, high) if x is not None and math.isfinite(x)]
    if limits:
        return min(MAX_DECIMALS, max(_decimals_of(x) for x in limits) + 1)
    return UNIT_DECIMALS.get(unit, DEFAULT_DECIMALS)


def format_value(value: float | None, unit: str = "", low: float | None = None, high: float | None = None) -> str:
    """``value`` in fixed point at :func:`decimals_for` (empty for a missing or non-finite value)."""
    if value is None or not math.isfinite(value):
        return ""
    text = f"{value:.{decimals_for(unit, low, high)}f}"
    return "0" + text[2:] if text.startswith("-0") and float(text) == 0 else text


def format_plain(value: float | None) -> str:
    """A statistic in full (``repr`` of the float, fixed point when it is one): for CSV and pipes, never cut."""
    if value is None or not math.isfinite(value):
        return ""
    text = repr(float(value))
    if "e" in text or "E" in text:
        text = f"{Decimal(text):f}"
    return text
