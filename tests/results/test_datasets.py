"""Measurement tables for analysis: a folder of runs is one pyarrow dataset; timestamps tz-aware everywhere; a
row rebuilds its record exactly, U and the ISO 14253-1 decision included (issue #18).

The three runs are a PASS, a FAIL and an ERROR run. The ERROR run has no value at all and the PASS run no error
text: with types inferred from the data those columns became Arrow type ``null`` in one file and ``double`` or
``string`` in the next, and ``pyarrow.dataset`` refused the folder (issue #14).
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from rig.config.limits import DecisionRule
from rig.results.decision import Decision
from rig.results.record import RunRecord, Verdict
from rig.results.store import open_store
from rig.results.tables import (
    MEASUREMENT_COLUMNS,
    MEASUREMENT_SCHEMA,
    measurements_frame,
    measurements_from_frame,
    normalise_frame,
    read_csv,
    read_parquet,
    write_csv,
    write_parquet,
)
from tests.report.signoff import signoff_record
from tests.results.factory import BASE_TIME, make_run, with_uncertainty

ISO_WITH_COLON_OFFSET = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00$")


def _three_runs() -> list[RunRecord]:
    passed = next(
        run
        for seed in range(100)
        if (run := make_run(np.random.default_rng(seed), run_id="r1-pass", unit_serial="XM12SU-000001",
                            started=BASE_TIME)).verdict is Verdict.PASS
    )  # fmt: skip
    failed = signoff_record(np.random.default_rng(2))
    errored = make_run(np.random.default_rng(3), run_id="r3-error", unit_serial="XM12SU-000003", started=BASE_TIME,
                       error_rate=1.0)  # fmt: skip
    assert [r.verdict for r in (passed, failed, errored)] == [Verdict.PASS, Verdict.FAIL, Verdict.ERROR]
    assert all(m.value is None for m in errored.measurements) and all(m.error is None for m in passed.measurements)
    return [passed, failed, errored]


@pytest.fixture
def reports(tmp_path: Path) -> tuple[Path, list[RunRecord]]:
    runs = _three_runs()
    for record in runs:
        write_parquet(record, tmp_path / record.run_id / "measurements.parquet")
    return tmp_path, runs


def test_the_schema_names_every_measurement_column() -> None:
    assert tuple(MEASUREMENT_SCHEMA.names) == MEASUREMENT_COLUMNS


def test_a_folder_of_runs_reads_as_one_dataset(reports: tuple[Path, list[RunRecord]]) -> None:
    folder, runs = reports
    for record in runs:
        assert pq.read_schema(folder / record.run_id / "measurements.parquet") == MEASUREMENT_SCHEMA
    table = ds.dataset(folder, format="parquet").to_table()
    assert table.schema == MEASUREMENT_SCHEMA
    assert table.num_rows == sum(len(r.measurements) for r in runs)
    frame = table.to_pandas()
    assert sorted(frame["run_id"].unique()) == sorted(r.run_id for r in runs)
    assert str(frame["timestamp"].dtype) == "datetime64[us, UTC]"
    counts = frame.groupby("run_id")["value"].count()
    assert counts["r3-error"] == 0 and counts["r1-pass"] == len(runs[0].measurements)
    # pandas reads the same folder as one frame too
    assert len(pd.read_parquet(folder, engine="pyarrow")) == table.num_rows


def test_inferred_types_would_have_split_the_folder() -> None:
    # what the bench wrote before (types inferred from the frame): the PASS run's all-None error column is type
    # null, the FAIL run's is string, so the files of one folder disagree
    passed, failed, _ = _three_runs()
    inferred = [pa.Table.from_pandas(measurements_frame(r), preserve_index=False).schema for r in (passed, failed)]
    assert inferred[0].field("error").type == pa.null()
    assert inferred[1].field("error").type == pa.string()


def test_csv_timestamps_are_iso_8601_with_a_colon_offset_that_sqlite_reads(tmp_path: Path) -> None:
    record = _three_runs()[1]
    path = write_csv(record, tmp_path / "measurements.csv")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    with sqlite3.connect(":memory:") as db:
        for col in ("run_started", "timestamp"):
            for text in frame[col]:
                assert ISO_WITH_COLON_OFFSET.match(text), text
                assert db.execute("SELECT julianday(?)", (text,)).fetchone()[0] is not None, text


def test_the_sqlite_store_keeps_utc_offsets_and_returns_aware_times(tmp_path: Path) -> None:
    db_path = tmp_path / "results.sqlite"
    store = open_store(db_path)
    try:
        runs = _three_runs()
        store.add_runs(runs)
        frame = store.measurements()
        assert str(frame["timestamp"].dtype).endswith("UTC]") and len(frame) == sum(len(r.measurements) for r in runs)
        # since ≤ run start < until, compared on the stored text: all three runs start at BASE_TIME
        assert len(store.measurements(since=BASE_TIME)) == len(frame)
        assert len(store.measurements(until=BASE_TIME)) == 0
        assert frame["run_started"].min() == pd.Timestamp(BASE_TIME)
    finally:
        store.close()
    with sqlite3.connect(db_path) as db:
        stamps = [row[0] for row in db.execute("SELECT timestamp FROM measurements")]
        assert stamps and all(s.endswith("+00:00") for s in stamps)
        assert db.execute("SELECT count(*) FROM measurements WHERE julianday(timestamp) IS NULL").fetchone()[0] == 0


def _run_with_u() -> RunRecord:
    record = with_uncertainty(make_run(np.random.default_rng(7), run_id="r4-u", unit_serial="XM12SU-000004",
                                       started=BASE_TIME))  # fmt: skip
    judged = record.measurements[0]
    assert judged.decision is Decision.UNDECIDED and judged.decision_rule is DecisionRule.ISO14253
    assert judged.uncertainty is not None and judged.uncertainty.bias_study_id is not None
    assert any(m.uncertainty is not None and m.uncertainty.bias_study_id is None for m in record.measurements)
    assert any(m.decision_note for m in record.measurements)
    return record


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_uncertainty_decision_and_revision_round_trip_through_the_files(tmp_path: Path, fmt: str) -> None:
    record = _run_with_u()
    if fmt == "csv":
        frame = read_csv(write_csv(record, tmp_path / "measurements.csv"))
    else:
        frame = read_parquet(write_parquet(record, tmp_path / "measurements.parquet"))
    rebuilt = measurements_from_frame(frame)
    assert rebuilt == record.measurements
    # enums and the study's instant, not their text
    assert type(rebuilt[0].decision) is Decision and type(rebuilt[0].decision_rule) is DecisionRule
    assert rebuilt[0].uncertainty is not None
    assert rebuilt[0].uncertainty.study_started == record.measurements[0].uncertainty.study_started  # type: ignore[union-attr]
    assert frame["limits_revision"].tolist() == ["0042"] * len(record.measurements)  # text, leading zeros kept


def test_a_table_from_before_uncertainty_rebuilds_plain_records(tmp_path: Path) -> None:
    # a measurements.parquet written before these columns existed: the records of that time, with the defaults
    record = _three_runs()[1]
    added = [c for c in MEASUREMENT_COLUMNS if c.startswith(("u_", "decision")) or c == "limits_revision"]
    assert len(added) == 9
    old = measurements_frame(record).drop(columns=added)
    old.to_parquet(tmp_path / "old.parquet", engine="pyarrow", index=False)
    assert measurements_from_frame(read_parquet(tmp_path / "old.parquet")) == record.measurements


def test_runs_with_and_without_uncertainty_read_as_one_dataset(tmp_path: Path) -> None:
    plain, with_u = _three_runs()[0], _run_with_u()
    for record in (plain, with_u):
        write_parquet(record, tmp_path / record.run_id / "measurements.parquet")
    table = ds.dataset(tmp_path, format="parquet").to_table()
    assert table.schema == MEASUREMENT_SCHEMA
    frame = normalise_frame(table.to_pandas())
    by_run = {run_id: rows.sort_values("seq") for run_id, rows in frame.groupby("run_id")}
    assert measurements_from_frame(by_run[plain.run_id]) == plain.measurements
    assert measurements_from_frame(by_run[with_u.run_id]) == with_u.measurements
    assert by_run[plain.run_id]["u_expanded"].isna().all()
    with_u_count = sum(m.uncertainty is not None for m in with_u.measurements)
    assert by_run[with_u.run_id]["u_expanded"].notna().sum() == with_u_count > 0
