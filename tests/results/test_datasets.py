"""Measurement tables for analysis: a folder of runs is one pyarrow dataset; timestamps tz-aware everywhere.

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

from rig.results.record import RunRecord, Verdict
from rig.results.store import open_store
from rig.results.tables import MEASUREMENT_COLUMNS, MEASUREMENT_SCHEMA, measurements_frame, write_csv, write_parquet
from tests.report.signoff import signoff_record
from tests.results.factory import BASE_TIME, make_run

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
