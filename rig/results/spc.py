"""Statistical process control across runs: yield, first-pass yield, failure Pareto, capability, control charts.

Pure functions of the store's tables (:meth:`ResultsStore.runs` and :meth:`ResultsStore.measurements` frames);
no I/O. Definitions:

* **yield** = runs with verdict PASS / runs with a final verdict (an ERROR run did not pass).
* **first-pass yield** = units whose *first* run (earliest ``started``) passed / units seen.
* **Pareto** of failure causes: for each measurement name, the number of runs in which it FAILed at least once
  (several zones failing in one run count once), largest first, with share and cumulative share.
* **capability**, per measurement name and zone, over values judged PASS or FAIL (ERROR/SKIP have no value),
  in time order: mean, overall σ (sample, ddof = 1), within σ = mean moving range / d₂ (d₂ = 1.128 for spans
  of 2), and

  - Cpk = min((USL − μ) / 3σ_within, (μ − LSL) / 3σ_within), one-sided (Cpu or Cpl) when one limit is set;
  - Ppk, the same with the overall σ.

  Limits are those of the latest row (a limit set can change over time). NaN when n < 2, σ = 0 or no limit.
* **control chart** (individuals, "I-MR"): centre line μ, control limits μ ± 3 σ_within; points outside are
  flagged (Western Electric rule 1).

References: AIAG, *Statistical Process Control (SPC) Reference Manual*, 2nd ed. (2005), ch. II (individuals and
moving range charts) and ch. IV (Cpk, Ppk); D. C. Montgomery, *Introduction to Statistical Quality Control*,
7th ed., §6.4 (individuals chart, d₂) and §8.2 (process capability ratios).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from rig.results.record import Verdict

D2_SPAN2 = 1.128
"""d₂ for moving ranges of span 2 (Montgomery, Appendix VI)."""

KEY_COLUMNS = ["name", "zone"]
SPC_MEASUREMENT_COLUMNS = ("run_id", "name", "zone", "value", "unit", "low", "high", "verdict")
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
    "cpk",
    "ppk",
    "fail_count",
    "fail_rate",
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


def yield_summary(runs: pd.DataFrame) -> YieldSummary:
    """Yield and first-pass yield from a runs frame (``run_id``, ``unit_serial``, ``started``, ``verdict``)."""
    done = runs[runs["verdict"].notna()]
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


def sigma_within(values: np.ndarray) -> float:
    """Short-term σ from the average moving range of span 2: MR̄ / d₂."""
    if len(values) < 2:
        return math.nan
    return float(np.mean(np.abs(np.diff(values)))) / D2_SPAN2


def _limit(value: object) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)  # type: ignore[arg-type]


def _valued(measurements: pd.DataFrame) -> pd.DataFrame:
    judged = measurements["verdict"].isin([Verdict.PASS.value, Verdict.FAIL.value]) & measurements["value"].notna()
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
                "cpk": cpk(mean, within, low, high),
                "ppk": cpk(mean, sigma, low, high),
                "fail_count": fails,
                "fail_rate": fails / len(values),
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


def compute_spc(runs: pd.DataFrame, measurements: pd.DataFrame, *, charts: bool = True) -> SpcResult:
    """All SPC figures over the given runs and their measurements."""
    return SpcResult(
        yields=yield_summary(runs),
        pareto=pareto(measurements),
        capability=capability(measurements),
        charts=control_charts(measurements) if charts else [],
    )
