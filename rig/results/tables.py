"""Flat rows of a run record: one row per measurement, the shape shared by CSV/Parquet exports and the store.

Every :class:`~rig.results.record.MeasurementRecord` field is a column, so a row rebuilds the record exactly
(:func:`measurements_from_frame`): the expanded uncertainty (issue #18) is flattened into the ``u_*`` columns
(all empty for a figure without one), the decision rule, ISO 14253-1 decision and note are columns of their own.
Run-level columns (run id, plan, unit, station, run start, limits revision of issue #13) are repeated on each row
so one table answers SPC queries without a join.

For analysis across runs every ``measurements.parquet`` has the one explicit Arrow schema
:data:`MEASUREMENT_SCHEMA` (no type inferred from the data: an all-null column would otherwise become type
``null`` in one run and ``double`` in the next, and ``pyarrow.dataset`` would refuse the folder), so
``pyarrow.dataset.dataset(reports_dir, format="parquet")`` reads every run as one table. CSV timestamps are
ISO 8601 with a colon offset (``2026-11-02T08:00:02.000000+00:00``), the form SQLite's date functions and
``datetime.fromisoformat`` read.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from rig.config.limits import DecisionRule
from rig.results.decision import Decision
from rig.results.record import MeasurementRecord, RunRecord, Uncertainty, Verdict, atomic_write_bytes

UNCERTAINTY_COLUMNS: tuple[str, ...] = (
    "u_expanded",
    "u_coverage_factor",
    "u_study_id",
    "u_study_started",
    "u_bias_study_id",
    "decision_rule",
    "decision",
    "decision_note",
)
"""The measurement columns of issue #18: the figure's U (k = 2) with its studies, and the decision rule's verdict."""

MEASUREMENT_COLUMNS: tuple[str, ...] = (
    "run_id",
    "plan",
    "unit_serial",
    "station",
    "run_started",
    "limits_revision",
    "seq",
    "step",
    "name",
    "zone",
    "value",
    "unit",
    "low",
    "high",
    "margin",
    "verdict",
    "marginal",
    *UNCERTAINTY_COLUMNS,
    "error",
    "doc",
    "captures",
    "timestamp",
)
"""Column order of every measurement table (CSV, Parquet, :meth:`ResultsStore.measurements`)."""

_UTC_US = pa.timestamp("us", tz="UTC")
MEASUREMENT_SCHEMA = pa.schema(
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("plan", pa.string(), nullable=False),
        pa.field("unit_serial", pa.string(), nullable=False),
        pa.field("station", pa.string(), nullable=False),
        pa.field("run_started", _UTC_US, nullable=False),
        pa.field("limits_revision", pa.string()),
        pa.field("seq", pa.int64(), nullable=False),
        pa.field("step", pa.string(), nullable=False),
        pa.field("name", pa.string(), nullable=False),
        pa.field("zone", pa.string()),
        pa.field("value", pa.float64()),
        pa.field("unit", pa.string(), nullable=False),
        pa.field("low", pa.float64()),
        pa.field("high", pa.float64()),
        pa.field("margin", pa.float64()),
        pa.field("verdict", pa.string(), nullable=False),
        pa.field("marginal", pa.bool_(), nullable=False),
        pa.field("u_expanded", pa.float64()),
        pa.field("u_coverage_factor", pa.float64()),
        pa.field("u_study_id", pa.string()),
        pa.field("u_study_started", _UTC_US),
        pa.field("u_bias_study_id", pa.string()),
        pa.field("decision_rule", pa.string(), nullable=False),
        pa.field("decision", pa.string()),
        pa.field("decision_note", pa.string()),
        pa.field("error", pa.string()),
        pa.field("doc", pa.string(), nullable=False),
        pa.field("captures", pa.string(), nullable=False),
        pa.field("timestamp", _UTC_US, nullable=False),
    ]
)
"""The Arrow schema of every ``measurements.parquet``, identical in every run (columns :data:`MEASUREMENT_COLUMNS`).
"""

CAPTURE_SEPARATOR = ";"

# The order a reader wants: what failed, then what could not be measured, then the rest.
VERDICT_ORDER: dict[Verdict, int] = {
    Verdict.FAIL: 0,
    Verdict.ERROR: 1,
    Verdict.PASS: 2,
    Verdict.INFO: 3,
    Verdict.SKIP: 4,
}


def margin(value: float | None, low: float | None, high: float | None) -> float | None:
    """Distance from ``value`` to the nearer limit, in the value's unit: > 0 inside, < 0 outside.

    ``None`` when there is no value or no limit.
    """
    if value is None or not math.isfinite(value):
        return None
    sides = ([value - low] if low is not None else []) + ([high - value] if high is not None else [])
    return min(sides) if sides else None


def _uncertainty_columns(u: Uncertainty | None) -> dict[str, Any]:
    """The ``u_*`` columns of one figure: its :class:`~rig.results.record.Uncertainty` flattened (None without)."""
    return {
        "u_expanded": u.expanded_u if u else None,
        "u_coverage_factor": u.coverage_factor if u else None,
        "u_study_id": u.study_id if u else None,
        "u_study_started": u.study_started if u else None,
        "u_bias_study_id": u.bias_study_id if u else None,
    }


def measurement_rows(record: RunRecord) -> list[dict[str, Any]]:
    """One dict per measurement with :data:`MEASUREMENT_COLUMNS` as keys, in record order."""
    return [
        {
            "run_id": record.run_id,
            "plan": record.plan,
            "unit_serial": record.unit_serial,
            "station": record.station,
            "run_started": record.started,
            "limits_revision": record.limits_revision,
            "seq": i,
            "step": m.step,
            "name": m.name,
            "zone": m.zone,
            "value": m.value,
            "unit": m.unit,
            "low": m.low,
            "high": m.high,
            "margin": margin(m.value, m.low, m.high),
            "verdict": m.verdict.value,
            "marginal": m.marginal,
            **_uncertainty_columns(m.uncertainty),
            "decision_rule": m.decision_rule.value,
            "decision": m.decision.value if m.decision else None,
            "decision_note": m.decision_note,
            "error": m.error,
            "doc": m.doc,
            "captures": CAPTURE_SEPARATOR.join(m.captures),
            "timestamp": m.timestamp,
        }
        for i, m in enumerate(record.measurements)
    ]


def measurements_frame(record: RunRecord) -> pd.DataFrame:
    """The record's measurements as a DataFrame (UTC timestamps, float values with NaN for missing)."""
    frame = pd.DataFrame(measurement_rows(record), columns=list(MEASUREMENT_COLUMNS))
    return normalise_frame(frame)


FLOAT_COLUMNS = frozenset({"value", "low", "high", "margin", "u_expanded", "u_coverage_factor"})
TIME_COLUMNS = frozenset({"run_started", "timestamp", "u_study_started"})
OPTIONAL_TEXT_COLUMNS = frozenset(
    {"limits_revision", "zone", "error", "u_study_id", "u_bias_study_id", "decision", "decision_note"}
)
"""Text columns that may be empty (None in the record)."""
TEXT_COLUMNS = OPTIONAL_TEXT_COLUMNS | {"run_id", "plan", "unit_serial", "station", "step", "name", "verdict"}


def normalise_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Coerce column types so frames from the record, CSV, Parquet and SQL compare equal (any column subset)."""
    frame = frame.copy()
    present = set(frame.columns)
    for col in present & FLOAT_COLUMNS:
        frame[col] = pd.to_numeric(frame[col], errors="raise").astype("float64")
    if "seq" in present:
        frame["seq"] = frame["seq"].astype("int64")
    if "marginal" in present:  # a record or table from before marginal bands has none
        frame["marginal"] = frame["marginal"].fillna(False).astype("bool")
    for col in present & TIME_COLUMNS:
        frame[col] = pd.to_datetime(frame[col], utc=True, format="ISO8601").astype("datetime64[us, UTC]")
    for col in present & TEXT_COLUMNS:
        frame[col] = frame[col].astype("object").where(frame[col].notna(), None)
    if "decision_rule" in present:  # a row stored before decision rules was judged by the simple rule
        frame["decision_rule"] = frame["decision_rule"].fillna(DecisionRule.SIMPLE.value).astype("object")
    # Empty strings come back from CSV as missing: these columns are never None in the record.
    for col in present & {"unit", "doc", "captures"}:
        frame[col] = frame[col].fillna("").astype("object")
    return frame


def sorted_for_report(record: RunRecord) -> list[MeasurementRecord]:
    """Failures first, then errors, then passes, then skips; record order within each verdict."""
    return sorted(record.measurements, key=lambda m: VERDICT_ORDER[m.verdict])


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and math.isnan(value))


def _optional(value: Any) -> Any:
    return None if _missing(value) else value


def _uncertainty_from_row(row: dict[str, Any]) -> Uncertainty | None:
    """The figure's :class:`~rig.results.record.Uncertainty` from its ``u_*`` cells (None when they are empty)."""
    if _missing(row.get("u_expanded")):
        return None
    return Uncertainty(
        expanded_u=row["u_expanded"],
        coverage_factor=row["u_coverage_factor"],
        study_id=row["u_study_id"],
        study_started=row["u_study_started"].to_pydatetime(),
        bias_study_id=_optional(row["u_bias_study_id"]),
    )


def measurements_from_frame(frame: pd.DataFrame) -> list[MeasurementRecord]:
    """Rebuild measurement records from a table with :data:`MEASUREMENT_COLUMNS` (inverse of the export).

    A table written before the uncertainty and decision columns existed rebuilds records with their defaults
    (no uncertainty, the simple rule, no decision), as a record of that time loads.
    """
    out = []
    for row in normalise_frame(frame).sort_values("seq").to_dict("records"):
        decision = _optional(row.get("decision"))
        out.append(
            MeasurementRecord(
                name=row["name"],
                step=row["step"],
                zone=_optional(row["zone"]),
                value=_optional(row["value"]),
                unit=row["unit"],
                low=_optional(row["low"]),
                high=_optional(row["high"]),
                verdict=Verdict(row["verdict"]),
                marginal=bool(row.get("marginal", False)),
                uncertainty=_uncertainty_from_row(row),
                decision_rule=DecisionRule(row.get("decision_rule", DecisionRule.SIMPLE.value)),
                decision=None if decision is None else Decision(decision),
                decision_note=_optional(row.get("decision_note")),
                doc=row["doc"],
                captures=[c for c in row["captures"].split(CAPTURE_SEPARATOR) if c],
                error=_optional(row["error"]),
                timestamp=row["timestamp"].to_pydatetime(),
            )
        )
    return out


def write_csv(record: RunRecord, path: Path) -> Path:
    """``measurements.csv``: UTF-8, ISO 8601 timestamps with a colon offset, empty cell for a missing value."""
    frame = measurements_frame(record)
    for col in TIME_COLUMNS:
        frame[col] = [None if _missing(t) else t.isoformat(timespec="microseconds") for t in frame[col]]
    text = frame.to_csv(index=False)
    return atomic_write_bytes(path, text.encode("utf-8"))


def read_csv(path: Path) -> pd.DataFrame:
    # as text, whatever they look like: a revision "7" or a study id "2026" is not a number
    text_cols = OPTIONAL_TEXT_COLUMNS | {"unit", "doc", "captures", "decision_rule"}
    frame = pd.read_csv(path, dtype=dict.fromkeys(text_cols, "object"))
    return normalise_frame(frame)


def measurements_table(record: RunRecord) -> pa.Table:
    """The record's measurements as an Arrow table of :data:`MEASUREMENT_SCHEMA` (no pandas metadata)."""
    table = pa.Table.from_pandas(measurements_frame(record), schema=MEASUREMENT_SCHEMA, preserve_index=False)
    return table.replace_schema_metadata(None)


def write_parquet(record: RunRecord, path: Path) -> Path:
    """``measurements.parquet`` (pyarrow) of :data:`MEASUREMENT_SCHEMA`: the same schema in every run."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(measurements_table(record), tmp)
    tmp.replace(path)
    return path


def read_parquet(path: Path) -> pd.DataFrame:
    return normalise_frame(pd.read_parquet(path, engine="pyarrow"))
