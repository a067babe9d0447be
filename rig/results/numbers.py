"""Figures at their resolution: how many decimals a value gets, from its limits, its unit and its own size.

A report that prints ``6.0436e-05 stops`` beside a ±0.15-stop limit claims a precision nobody measured and hides
the comparison that matters. The rule (:func:`decimals_for`):

1. **base**: one decimal finer than the limits are written (a limit of 0.15 stops gives 0.001-stop steps);
   without limits, the resolution its unit usually carries (:data:`UNIT_DECIMALS`, about a tenth of the usual
   repeatability).
2. **small figures stay visible**: a value (or, for a statistic, its spread σ) that would show fewer than
   :data:`SIGNIFICANT_DIGITS` significant digits at the base gets more decimals, so a sag shift of 0.038 µm
   against a whole-number limit of 3 µm reads ``0.038``, not ``0.0``;
3. **but never finer than the bench resolves**: at most one decimal beyond the unit's usual resolution (or the
   limits' own, when they are written finer), so a 6.04e-05-stop difference reads ``0.0001``, not noise digits.

Capability indices (Cp, Cpk, Pp, Ppk) are dimensionless ratios judged against 1.33 and 1.67: two decimals
(:data:`INDEX_DECIMALS`). Fixed point always, never an exponent and never cut: a number survives a terminal, a
pipe, a log or a spreadsheet whole, and the CLI and the HTML pages format with these same functions.

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
SIGNIFICANT_DIGITS = 2
"""Fewest significant digits a small value (or spread) is shown with, within the unit's resolution."""
INDEX_DECIMALS = 2
"""Decimals of a capability index (the targets 1.33 and 1.67 are written with two)."""

DISPLAY_UNITS = {"um": "µm"}


def display_unit(unit: str) -> str:
    """The unit as shown to a person (``um`` → ``µm``)."""
    return DISPLAY_UNITS.get(unit, unit)


def _decimals_of(limit: float) -> int:
    exponent = Decimal(repr(float(limit))).normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def _significant_decimals(x: float | None) -> int:
    """Decimals that show ``x`` with :data:`SIGNIFICANT_DIGITS` significant digits (0 for none, zero, ±inf)."""
    if x is None or not math.isfinite(x) or x == 0:
        return 0
    return SIGNIFICANT_DIGITS - 1 - math.floor(math.log10(abs(x)))


def decimals_for(
    unit: str,
    low: float | None = None,
    high: float | None = None,
    *,
    value: float | None = None,
    spread: float | None = None,
) -> int:
    """Decimals to show a figure in ``unit`` with (the rule of the module docstring).

    Parameters
    ----------
    unit
        The figure's unit as recorded (``um``, ``stops`` …).
    low, high
        Its limits (None: that side has none).
    value
        The figure itself, so a small one keeps its significant digits.
    spread
        Its repeatability (a σ, same unit), for a statistic shown beside it: the digits σ needs.
    """
    limits = [x for x in (low, high) if x is not None and math.isfinite(x)]
    unit_decimals = UNIT_DECIMALS.get(unit, DEFAULT_DECIMALS)
    base = max(_decimals_of(x) for x in limits) + 1 if limits else unit_decimals
    finest = max(base, unit_decimals + 1)
    needed = max(_significant_decimals(value), _significant_decimals(spread))
    return min(MAX_DECIMALS, finest, max(base, needed))


def format_fixed(value: float | None, decimals: int) -> str:
    """``value`` in fixed point with ``decimals`` (empty for a missing or non-finite value; never ``-0``)."""
    if value is None or not math.isfinite(value):
        return ""
    text = f"{value:.{decimals}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def format_value(value: float | None, unit: str = "", low: float | None = None, high: float | None = None) -> str:
    """``value`` in fixed point at :func:`decimals_for` of its unit, limits and size."""
    return format_fixed(value, decimals_for(unit, low, high, value=value))


def format_index(value: float | None) -> str:
    """A capability index (Cp, Cpk, Pp, Ppk) at :data:`INDEX_DECIMALS`, fixed point (``26440.00``, not ``2.6e4``)."""
    return format_fixed(value, INDEX_DECIMALS)


def format_fraction_pct(value: float | None) -> str:
    """A fraction as a percentage with one decimal (``0.975`` → ``97.5 %``); ``—`` when undefined."""
    return "—" if value is None or not math.isfinite(value) else f"{100 * value:.1f} %"


def format_plain(value: float | None) -> str:
    """A statistic in full (``repr`` of the float, fixed point when it is one): for CSV and pipes, never cut."""
    if value is None or not math.isfinite(value):
        return ""
    text = repr(float(value))
    if "e" in text or "E" in text:
        text = f"{Decimal(text):f}"
    return text


def statistic_decimals(unit: str, low: float | None, high: float | None, mean: float, sigma: float) -> int:
    """Decimals of a figure's statistics (mean, σ, limits, control limits), one resolution for the whole row.

    The spread decides, not the mean's size: a mean is known to about σ/√n, so a mean of 0.012 µm with σ 1.8 µm
    shows no more digits than σ does. Without a spread (one value, or all equal) the mean's own size counts.
    """
    if math.isfinite(sigma) and sigma > 0:
        return decimals_for(unit, low, high, spread=sigma)
    return decimals_for(unit, low, high, value=mean)
