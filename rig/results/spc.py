"""Statistical process control across runs: yield, first-pass yield, failure Pareto, capability, control charts.

Pure functions of the store's tables (:meth:`ResultsStore.runs` and :meth:`ResultsStore.measurements` frames);
no I/O. Definitions:

* **scope**: one plan, one lens and one limits revision at a time by default (:func:`scope_runs`), because their
  limits differ: a decentre judged against the calibration's 100 µm is not the sign-off's 40 µm, and a Cpk
  against last month's limits says nothing about this month's. The default revision is the newest present among
  the plan's runs of that lens (:func:`rig.config.limits.revision_order`); runs stored before limits had
  revisions form their own, oldest revision, :data:`UNREVISED`.
* **yield** = runs with verdict PASS / runs judged. A run that ended ERROR before any measurement had a value
  never reached the hardware: it is counted apart (``unmeasured_runs``), not as a failure, in yield, first-pass
  yield and the Pareto alike (they are computed from the same runs).
* **first-pass yield** = units whose *first* run (earliest ``started``) passed / units seen.
* **Pareto** of failure causes: for each measurement name, the number of runs in which it FAILed at least once
  (several zones failing in one run count once), largest first, with share and cumulative share.
* **capability**, per measurement name and zone, over values judged PASS or FAIL (ERROR/SKIP have no value),
  in time order: mean, overall σ (sample, ddof = 1), within σ = mean moving range / d₂ (d₂ = 1.128 for spans
  of 2), and

  - Cp = (USL − LSL) / 6σ_within, with both limits only;
  - Cpk = min((USL − μ) / 3σ_within, (μ − LSL) / 3σ_within), one-sided (Cpu or Cpl) when one limit is set;
  - Pp and Ppk, the same with the overall σ.

  Limits are those of the latest row (a limit set can change over time). NaN when n < 2, σ = 0 or no limit,
  and withheld (NaN, with the note "n too small") below :data:`MIN_CAPABILITY_N` values: AIAG's SPC manual asks
  for at least 25 subgroups before a capability index is estimated.
* **control chart** (individuals, "I-MR"): centre line μ, control limits μ ± 3 σ_within; points outside are
  flagged (Western Electric rule 1).

References: AIAG, *Statistical Process Control (SPC) Reference Manual*, 2nd ed. (2005), ch. II (individuals and
moving range charts) and ch. IV (Cpk, Ppk); D. C. Montgomery, *Introduction to Statistical Quality Control*,
7th ed., §6.4 (individuals chart, d₂) and §8.2 (process capability ratios).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from rig.config.limits import revision_order
from rig.results.numbers import format_fixed, format_fraction_pct, format_index, statistic_decimals
from rig.results.record import Verdict

D2_SPAN2 = 1.128
"""d₂ for moving ranges of span 2 (Montgomery, Appendix VI)."""

MIN_CAPABILITY_N = 25
"""Fewest values a Cpk/Ppk is reported from (AIAG SPC manual, 2nd ed., ch. II: 25 or more subgroups)."""

KEY_COLUMNS = ["name", "zone"]
SPC_MEASUREMENT_COLUMNS = ("run_id", "name", "zone", "value", "unit", "low", "high", "verdict", "marginal")
"""The measurement columns SPC reads (pass as ``columns=`` to :meth:`ResultsStore.measurements`)."""
CAPABILITY_COLUMNS = [
    "name",
    "zone",
    "unit",
    "n",
    "mean",
    "sigma",
    "sigma_within",
    "low",
    "high",
    "cp",
    "cpk",
    "pp",
    "ppk",
    "fail_count",
    "fail_rate",
    "marginal_count",
    "note",
]
PARETO_COLUMNS = ["cause", "failed_runs", "share", "cumulative_share"]


@dataclass(frozen=True)
class YieldSummary:
    """Yield figures over a set of runs (fractions in [0, 1], NaN when there is nothing to divide)."""

    runs: int
    passed_runs: int
    yield_frac: float
    units: int
    first_pass_units: int
    first_pass_yield_frac: float
    unmeasured_runs: int = 0  # ended ERROR before any value was measured: not judged, not a failure


@dataclass(frozen=True)
class ControlChart:
    """Individuals chart of one measurement key, values in time order."""

    name: str
    zone: str | None
    unit: str
    run_ids: list[str]
    values: np.ndarray
    center: float
    sigma_within: float
    ucl: float
    lcl: float
    low: float | None
    high: float | None
    out_of_control: np.ndarray  # indices of points beyond the control limits

    @property
    def key(self) -> str:
        return f"{self.name}[{self.zone}]" if self.zone else self.name


@dataclass(frozen=True)
class SpcResult:
    yields: YieldSummary
    pareto: pd.DataFrame
    capability: pd.DataFrame
    charts: list[ControlChart] = field(default_factory=list)


def _ratio(a: int, b: int) -> float:
    return a / b if b else math.nan


def unmeasured_run_ids(runs: pd.DataFrame, measurements: pd.DataFrame) -> set[str]:
    """Runs that ended ERROR without a single measured value (they never reached the hardware)."""
    measured = set(measurements.loc[measurements["value"].notna(), "run_id"])
    errored = runs.loc[runs["verdict"] == Verdict.ERROR.value, "run_id"]
    return {r for r in errored if r not in measured}


def yield_summary(runs: pd.DataFrame, unmeasured: set[str] | None = None) -> YieldSummary:
    """Yield and first-pass yield from a runs frame (``run_id``, ``unit_serial``, ``started``, ``verdict``);
    ``unmeasured`` run ids are counted apart and left out of both."""
    unmeasured = unmeasured or set()
    done = runs[runs["verdict"].notna() & ~runs["run_id"].isin(unmeasured)]
    passed = int((done["verdict"] == Verdict.PASS.value).sum())
    first = done.sort_values(["started", "run_id"]).drop_duplicates("unit_serial", keep="first")
    first_pass = int((first["verdict"] == Verdict.PASS.value).sum())
    return YieldSummary(
        runs=len(done),
        passed_runs=passed,
        yield_frac=_ratio(passed, len(done)),
        units=len(first),
        first_pass_units=first_pass,
        first_pass_yield_frac=_ratio(first_pass, len(first)),
        unmeasured_runs=len(unmeasured),
    )


def pareto(measurements: pd.DataFrame) -> pd.DataFrame:
    """Failure causes by measurement name: runs failing it, share of all such failures, cumulative share."""
    fails = measurements.loc[measurements["verdict"] == Verdict.FAIL.value, ["name", "run_id"]].drop_duplicates()
    counts = fails.groupby("name").size().rename("failed_runs").reset_index().rename(columns={"name": "cause"})
    counts = counts.sort_values(["failed_runs", "cause"], ascending=[False, True], kind="stable").reset_index(drop=True)
    total = counts["failed_runs"].sum()
    counts["share"] = counts["failed_runs"] / total if total else np.nan
    counts["cumulative_share"] = counts["share"].cumsum()
    return counts[PARETO_COLUMNS]


def cpk(mean: float, sigma: float, low: float | None, high: float | None) -> float:
    """Capability index against ``[low, high]`` (one-sided when one is ``None``); NaN if undefined."""
    if not (sigma > 0 and math.isfinite(sigma) and math.isfinite(mean)):
        return math.nan
    sides = []
    if high is not None:
        sides.append((high - mean) / (3 * sigma))
    if low is not None:
        sides.append((mean - low) / (3 * sigma))
    return min(sides) if sides else math.nan


def cp(sigma: float, low: float | None, high: float | None) -> float:
    """Potential capability (USL − LSL) / 6σ; NaN without both limits or a positive finite σ."""
    if low is None or high is None or not (sigma > 0 and math.isfinite(sigma)):
        return math.nan
    return (high - low) / (6 * sigma)


def sigma_within(values: np.ndarray) -> float:
    """Short-term σ from the average moving range of span 2: MR̄ / d₂."""
    if len(values) < 2:
        return math.nan
    return float(np.mean(np.abs(np.diff(values)))) / D2_SPAN2


def _limit(value: object) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)  # type: ignore[arg-type]


def _valued(measurements: pd.DataFrame) -> pd.DataFrame:
    valued = [Verdict.PASS.value, Verdict.FAIL.value, Verdict.INFO.value]
    judged = measurements["verdict"].isin(valued) & measurements["value"].notna()
    frame = measurements.loc[judged].copy()
    frame["zone"] = frame["zone"].fillna("")  # groupby drops None keys; "" stands for "no zone"
    return frame


def _groups(measurements: pd.DataFrame) -> list[tuple[tuple[str, str], pd.DataFrame]]:
    # Input order is time order (the store returns run start, run id, record order); groupby keeps it.
    return list(_valued(measurements).groupby(KEY_COLUMNS, sort=True))


def capability(measurements: pd.DataFrame) -> pd.DataFrame:
    """One row per (name, zone) with the columns of :data:`CAPABILITY_COLUMNS` (see the module docstring)."""
    rows = []
    for (name, zone), g in _groups(measurements):
        values = g["value"].to_numpy(dtype=float)
        last = g.iloc[-1]
        low, high = _limit(last["low"]), _limit(last["high"])
        mean = float(values.mean())
        sigma = float(values.std(ddof=1)) if len(values) > 1 else math.nan
        within = sigma_within(values)
        fails = int((g["verdict"] == Verdict.FAIL.value).sum())
        marginal = int(g["marginal"].fillna(False).astype(bool).sum()) if "marginal" in g else 0
        enough = len(values) >= MIN_CAPABILITY_N
        rows.append(
            {
                "name": name,
                "zone": zone or None,
                "unit": last["unit"],
                "n": len(values),
                "mean": mean,
                "sigma": sigma,
                "sigma_within": within,
                "low": low,
                "high": high,
                "cp": cp(within, low, high) if enough else math.nan,
                "cpk": cpk(mean, within, low, high) if enough else math.nan,
                "pp": cp(sigma, low, high) if enough else math.nan,
                "ppk": cpk(mean, sigma, low, high) if enough else math.nan,
                "fail_count": fails,
                "fail_rate": fails / len(values),
                "marginal_count": marginal,
                "note": "" if enough else f"n too small for Cpk/Ppk (< {MIN_CAPABILITY_N})",
            }
        )
    frame = pd.DataFrame(rows, columns=CAPABILITY_COLUMNS)
    frame["zone"] = frame["zone"].astype(object).where(frame["zone"].notna(), None)
    return frame


def control_charts(measurements: pd.DataFrame) -> list[ControlChart]:
    """Individuals charts, one per (name, zone), in the order of :func:`capability`."""
    charts = []
    for (name, zone), g in _groups(measurements):
        values = g["value"].to_numpy(dtype=float)
        center = float(values.mean())
        within = sigma_within(values)
        ucl, lcl = center + 3 * within, center - 3 * within
        outside = np.flatnonzero((values > ucl) | (values < lcl)) if math.isfinite(within) else np.array([], int)
        last = g.iloc[-1]
        charts.append(
            ControlChart(
                name=name,
                zone=zone or None,
                unit=str(last["unit"]),
                run_ids=g["run_id"].tolist(),
                values=values,
                center=center,
                sigma_within=within,
                ucl=ucl,
                lcl=lcl,
                low=_limit(last["low"]),
                high=_limit(last["high"]),
                out_of_control=outside,
            )
        )
    return charts


UNREVISED = "unrevised"
"""The revision label of runs stored before limit sets had revisions (``limits_revision`` NULL): the oldest."""


def revision_labels(runs: pd.DataFrame) -> pd.Series:
    """Each run's limits revision, :data:`UNREVISED` where it has none."""
    return runs["limits_revision"].astype(object).where(runs["limits_revision"].notna(), UNREVISED)


def revisions_present(runs: pd.DataFrame) -> list[str]:
    """The limits revisions of ``runs``, oldest first (:data:`UNREVISED` before every real one)."""
    labels = set(revision_labels(runs))
    return ([UNREVISED] if UNREVISED in labels else []) + revision_order(list(labels - {UNREVISED}))


@dataclass(frozen=True)
class SpcScope:
    """What one SPC report covers: one plan, and one lens / one limits revision unless pooled (None)."""

    plan: str
    lens: str | None  # None: every lens of the plan pooled
    limits_revision: str | None  # None: every revision pooled
    revisions: tuple[str, ...]  # the revisions present for the plan (and lens), oldest first
    lens_pooled: bool = False

    def select(self, runs: pd.DataFrame) -> pd.DataFrame:
        """The runs of this scope (``runs`` with a ``limits_revision`` column)."""
        chosen = runs[runs["plan"] == self.plan]
        if not self.lens_pooled:
            chosen = chosen[chosen["lens"].isna()] if self.lens is None else chosen[chosen["lens"] == self.lens]
        if self.limits_revision is not None:
            chosen = chosen[revision_labels(chosen) == self.limits_revision]
        return chosen

    def describe(self) -> str:
        """One line naming the scope and how to widen it."""
        lens = "all lenses" if self.lens_pooled else f"lens {self.lens or '(none)'}"
        if self.limits_revision is None:
            revision = f"all limits revisions ({', '.join(self.revisions) or 'none'}; limits of the latest run)"
        else:
            others = [r for r in self.revisions if r != self.limits_revision]
            newest = bool(self.revisions) and self.revisions[-1] == self.limits_revision
            also = f"; also stored: {', '.join(others)} (--revision R, --all-revisions)" if others else ""
            revision = f"limits revision {self.limits_revision}{' (newest)' if newest else ''}{also}"
        return f"plan {self.plan}, {lens}, {revision}"


def scope_runs(
    runs: pd.DataFrame,
    *,
    plan: str | None,
    lens: str | None,
    all_lenses: bool,
    revision: str | None = None,
    all_revisions: bool = False,
) -> SpcScope:
    """The scope of an SPC report over ``runs``: what was asked for, else the plan of the latest run, that plan's
    lens of its latest run, and the newest limits revision among the plan's runs of that lens."""
    ordered = runs.sort_values(["started", "run_id"])
    chosen_plan = plan or (str(ordered.iloc[-1]["plan"]) if len(ordered) else "")
    of_plan = ordered[ordered["plan"] == chosen_plan]
    chosen_lens = lens if (lens or all_lenses) else (of_plan.iloc[-1]["lens"] if len(of_plan) else None)
    scope = SpcScope(chosen_plan, None if all_lenses else chosen_lens, None, (), lens_pooled=all_lenses)
    present = tuple(revisions_present(scope.select(runs)))
    chosen_revision = None if all_revisions else (revision or (present[-1] if present else None))
    return SpcScope(scope.plan, scope.lens, chosen_revision, present, lens_pooled=all_lenses)


def capability_text(row: Mapping[str, Any]) -> dict[str, str]:
    """The text of one :func:`capability` row, the same in the CLI (terminal and pipe) and on the SPC page.

    Mean, σ, σ within and the limits at one resolution (:func:`rig.results.numbers.statistic_decimals`), the
    indices at two decimals, rates as percentages.
    """
    low, high = _limit(row["low"]), _limit(row["high"])
    decimals = statistic_decimals(str(row["unit"]), low, high, float(row["mean"]), float(row["sigma"]))
    text = {k: format_fixed(_limit(row[k]), decimals) for k in ("mean", "sigma", "sigma_within", "low", "high")}
    text |= {k: format_index(float(row[k])) for k in ("cp", "cpk", "pp", "ppk")}
    text["fail_rate"] = format_fraction_pct(float(row["fail_rate"]))
    return text


def compute_spc(runs: pd.DataFrame, measurements: pd.DataFrame, *, charts: bool = True) -> SpcResult:
    """All SPC figures over the given runs and their measurements (only those of ``runs``)."""
    measurements = measurements[measurements["run_id"].isin(set(runs["run_id"]))]
    unmeasured = unmeasured_run_ids(runs, measurements)
    measurements = measurements[~measurements["run_id"].isin(unmeasured)]
    return SpcResult(
        yields=yield_summary(runs, unmeasured),
        pareto=pareto(measurements),
        capability=capability(measurements),
        charts=control_charts(measurements) if charts else [],
    )
