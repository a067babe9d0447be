"""Figures at their resolution (rig.results.numbers): table-driven cases of the rule in its module docstring."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rig.results.numbers import (
    decimals_for,
    display_unit,
    format_fraction_pct,
    format_index,
    format_value,
    statistic_decimals,
)

# value, unit, low, high → text. Each line says which part of the rule decides.
VALUE_CASES = [
    (0.038, "um", None, 3.0, "0.038"),  # sag shift under a whole-number limit: small values keep 2 digits
    (0.038, "um", -5, 5, "0.038"),  # int limits (TOML `low = -5`) as well
    (8.004, "um", -5.0, 5.0, "8.0"),  # a flange beyond ±5: the limits' resolution, one finer than written
    (1.234, "um", -5.0, 5.0, "1.2"),
    (0.38, "um", -5.0, 5.0, "0.38"),
    (-0.0004, "um", -5.0, 5.0, "0.000"),  # finer than the bench resolves: capped, and never "-0.000"
    (6.0436e-05, "stops", -0.15, 0.15, "0.0001"),  # the case: no exponent, no noise digits
    (0.1234, "stops", -0.15, 0.15, "0.123"),  # limits in hundredths → thousandths
    (0.0, "um", -5.0, 5.0, "0.0"),
    (123.44, "ms", None, 500.0, "123.4"),
    (1.0, "bool", 1.0, None, "1.0"),
    (0.3612, "cy/px", 0.30, None, "0.36"),  # 0.30 is the float 0.3: one decimal, so hundredths
    (0.00123, "cy/px", 0.30, None, "0.0012"),  # one digit beyond the unit's usual 3 decimals, no more
    (95.234, "%", None, None, "95.23"),  # no limits: the unit's usual resolution
    (0.0123, "%", None, None, "0.012"),
    (0.00012, "um", None, 0.0005, "0.00012"),  # limits written finer than the unit: they decide
    (2.5, "T", None, 1.6, "2.50"),  # an unknown unit: its limits (1.6 → 2 decimals)
    (1e20, "um", -5.0, 5.0, "100000000000000000000.0"),  # fixed point at any size
    (math.nan, "um", -5.0, 5.0, ""),
    (None, "um", None, None, ""),
]


@pytest.mark.parametrize(("value", "unit", "low", "high", "text"), VALUE_CASES)
def test_a_value_is_shown_at_its_resolution(
    value: float | None, unit: str, low: float | None, high: float | None, text: str
) -> None:
    assert format_value(value, unit, low, high) == text


# unit, low, high, mean, σ → decimals of the statistics row
STATISTIC_CASES = [
    ("um", -5.0, 5.0, 0.012, 1.8, 1),  # the spread decides, not a mean near zero
    ("um", -5.0, 5.0, 0.5, 0.038, 3),  # a small σ shows its two digits
    ("um", -5.0, 5.0, 0.5, 2.49e-06, 3),  # a σ below what the bench resolves: capped at the unit's finest
    ("um", None, 3.0, 0.038, math.nan, 3),  # one value (no σ): the mean's own size
    ("um", -5.0, 5.0, 8.004, 0.0, 1),  # all equal (σ = 0): the mean's size, here the limits' resolution
    ("ms", None, 200.0, 120.0, 30.0, 1),
    ("cy/px", 0.30, None, 0.36, 0.012, 3),
]


@pytest.mark.parametrize(("unit", "low", "high", "mean", "sigma", "decimals"), STATISTIC_CASES)
def test_statistics_share_one_resolution_from_their_spread(
    unit: str, low: float | None, high: float | None, mean: float, sigma: float, decimals: int
) -> None:
    assert statistic_decimals(unit, low, high, mean, sigma) == decimals


@pytest.mark.parametrize(
    ("value", "text"),
    [(26440.0, "26440.00"), (1.3333333, "1.33"), (0.995, "0.99"), (-0.5, "-0.50"), (math.nan, ""), (None, "")],
)
def test_capability_indices_have_two_decimals(value: float | None, text: str) -> None:
    # 0.995 is 0.99499999999999999555910790149937 as a double: it rounds down, as printf does
    assert format_index(value) == text


def test_no_figure_is_ever_written_with_an_exponent_or_more_than_the_cap() -> None:
    for value in np.concatenate([np.logspace(-12, 12, 97), -np.logspace(-12, 12, 97)]):
        for unit, low, high in (("um", -5, 5), ("stops", None, None), ("x", 1.0, 4.0), ("mm", None, 0.02)):
            text = format_value(float(value), unit, low, high)
            assert "e" not in text and "E" not in text, text
            assert len(text.partition(".")[2]) <= 6
            assert decimals_for(unit, low, high, value=float(value)) <= 6


def test_fractions_and_units_as_shown_to_a_person() -> None:
    assert format_fraction_pct(0.975) == "97.5 %" and format_fraction_pct(math.nan) == "—"
    assert display_unit("um") == "µm" and display_unit("stops") == "stops"
