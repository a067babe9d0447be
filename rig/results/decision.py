"""Judging a measured value with its expanded uncertainty: the ISO 14253-1 decision rule and our verdicts.

ISO 14253-1:2017 (*GPS — Inspection by measurement — Part 1: Decision rules for verifying conformity or
nonconformity with specifications*) §5: a measured value y with expanded uncertainty U proves **conformity** only
inside the specification zone narrowed by U at each limit (LSL + U ≤ y ≤ USL − U, §5.2), and **nonconformity**
only outside it widened by U (y < LSL − U or y > USL + U, §5.3). Between the two lies the uncertainty range where
neither is proven (:attr:`Decision.UNDECIDED`). The standard makes the uncertainty count against whoever provides
the proof: the supplier proving a unit good, the customer proving it bad.

How the four zones map onto our verdicts (:func:`judge_with_uncertainty`), for a station that is the
*supplier's* final test:

========================================  ==================  =========================================
zone of the measured value y              ISO 14253-1          verdict
========================================  ==================  =========================================
inside the limits by more than U          conformity proven    PASS (MARGINAL only by the limit's band)
inside the limits, within U of one        undecided            PASS + MARGINAL
outside the limits, within U of one       undecided            FAIL (the decision says: not proven)
outside the limits by more than U         nonconformity proven FAIL
========================================  ==================  =========================================

Why FAIL, not a PASS, a MARGINAL or an ERROR, for a value outside a limit but within U of it: the supplier
carries the burden of proving conformity (§5.2), and this value does not even appear conforming, so it cannot be
released; the plain rule already fails it, and an uncertainty must never turn a measured nonconformity into a
pass. ERROR is not it either: ERROR means the bench could not measure, and it did. The record keeps the ISO
decision (``undecided``) beside the FAIL, so a reviewer sees that a customer could not reject the unit on this
measurement alone and a remeasurement with a smaller U may decide it. Inside a limit but within U of it the
plain rule passes (the sign-off limits already carry a measurement allowance, see ``signoff.toml``), but
conformity is not proven: the value passes with the MARGINAL flag, the word our reports already use for a pass
close enough to a limit to watch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from rig.errors import InputError


class Decision(StrEnum):
    """ISO 14253-1 outcome of comparing one measured value, with its expanded uncertainty, with a specification."""

    CONFORMS = "conforms"
    DOES_NOT_CONFORM = "does not conform"
    UNDECIDED = "undecided"


class DecisionInputError(InputError):
    """A decision asked for with no limit or an impossible uncertainty."""


def iso14253_decision(value: float, expanded_u: float, *, low: float | None, high: float | None) -> Decision:
    """Judge one measured value against a specification with the ISO 14253-1 default rule.

    Parameters
    ----------
    value
        The measured value (figure's unit).
    expanded_u
        Its expanded uncertainty U ≥ 0 (same unit).
    low, high
        Specification limits; either may be ``None`` (one-sided), not both.

    Returns
    -------
    Decision
        CONFORMS inside [low + U, high − U]; DOES_NOT_CONFORM outside [low − U, high + U]; UNDECIDED otherwise.

    References
    ----------
    ISO 14253-1:2017, §5.2 (conformity) and §5.3 (nonconformity).
    """
    if low is None and high is None:
        raise DecisionInputError("ISO 14253-1 decision: no specification limit given")
    if not (math.isfinite(expanded_u) and expanded_u >= 0):
        raise DecisionInputError(f"expanded uncertainty U = {expanded_u!r}: expected a number ≥ 0")
    inside_narrowed = (low is None or value >= low + expanded_u) and (high is None or value <= high - expanded_u)
    if inside_narrowed:
        return Decision.CONFORMS
    outside_widened = (low is not None and value < low - expanded_u) or (high is not None and value > high + expanded_u)
    return Decision.DOES_NOT_CONFORM if outside_widened else Decision.UNDECIDED


@dataclass(frozen=True)
class UncertainJudgement:
    """A value judged with its uncertainty: ``passed`` (else FAIL), ``marginal`` (only with ``passed``), and the
    ISO 14253-1 ``decision`` behind them."""

    passed: bool
    marginal: bool
    decision: Decision


def judge_with_uncertainty(
    value: float, expanded_u: float, *, low: float | None, high: float | None, in_marginal_band: bool
) -> UncertainJudgement:
    """Verdict of a finite ``value`` with its expanded uncertainty under the ISO 14253-1 rule (module table).

    Parameters
    ----------
    value, expanded_u
        Measured value and its U (k = 2), figure's unit.
    low, high
        The limits (at least one).
    in_marginal_band
        Whether the value lies in the limit's own marginal band (``marginal_low``/``marginal_high``): a proven
        conforming value keeps that flag.
    """
    decision = iso14253_decision(value, expanded_u, low=low, high=high)
    inside = (low is None or value >= low) and (high is None or value <= high)
    if decision is Decision.CONFORMS:
        return UncertainJudgement(passed=True, marginal=in_marginal_band, decision=decision)
    if decision is Decision.UNDECIDED and inside:
        return UncertainJudgement(passed=True, marginal=True, decision=decision)
    return UncertainJudgement(passed=False, marginal=False, decision=decision)
